//! `.npy` reading and writing, and a cross-check against numpy: the fixture
//! `tests/data/normal_60x40.npy` and its statistics in `normal_60x40.json` were
//! written by numpy (`np.random.default_rng(1).normal(3, 2, (60, 40))`).

use std::path::PathBuf;

use brisk_array::{Agg, Axes, from_npy, random};
use brisk_scheduler::{Compute, Scheduler};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

#[test]
fn statistics_of_a_numpy_file_equal_numpys() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("normal_60x40.json")).unwrap())
            .unwrap();
    let num = |k: &str| reference[k].as_f64().unwrap();
    for chunks in [[60, 40], [7, 9], [1, 40], [60, 1]] {
        let x = from_npy(fixture("normal_60x40.npy"), &chunks).unwrap();
        assert_eq!(x.shape(), &[60, 40]);
        assert!(close(x.mean(Axes::all()).compute().unwrap(), num("mean")), "chunks {chunks:?}");
        assert!(close(x.std(Axes::all(), 0).compute().unwrap(), num("std0")));
        assert!(close(x.std(Axes::all(), 1).compute().unwrap(), num("std1")));
        assert!(close(x.var(Axes::all(), 0).compute().unwrap(), num("var0")));
        assert!(close(x.sum(Axes::all()).compute().unwrap(), num("sum")));
        assert_eq!(x.min(Axes::all()).compute().unwrap(), num("min"));
        assert_eq!(x.max(Axes::all()).compute().unwrap(), num("max"));
        let mean0 = x
            .reduce(Agg::Mean, Axes::from([0]).split_every(3).unwrap())
            .unwrap()
            .compute()
            .unwrap();
        let want0 = reference["mean_axis0"].as_array().unwrap();
        assert!(mean0.iter().zip(want0).all(|(a, b)| close(*a, b.as_f64().unwrap())));
        let std1 = x
            .reduce(Agg::Std { ddof: 0 }, Axes::from([1]).split_every(2).unwrap())
            .unwrap()
            .compute()
            .unwrap();
        let want1 = reference["std_axis1"].as_array().unwrap();
        assert!(std1.iter().zip(want1).all(|(a, b)| close(*a, b.as_f64().unwrap())));
    }
}

#[test]
fn to_npy_round_trips_and_leaves_no_partial_file() {
    let dir = std::env::temp_dir().join(format!("brisk-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.npy");
    let x = random(&[123, 45], &[50, 20], 3).unwrap() * 7.0;
    x.to_npy_on(&path, &Scheduler::threads(2)).unwrap();
    let back = from_npy(&path, &[30, 45]).unwrap().compute().unwrap();
    assert_eq!(back, x.compute().unwrap());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["x.npy"]);
    // A failing compute leaves neither the file nor its temporary behind.
    let bad = dir.join("bad.npy");
    let failing = from_npy(&path, &[30, 45]).unwrap();
    std::fs::write(&path, b"\x93NUMPY truncated").unwrap();
    assert!(failing.to_npy_on(&bad, &Scheduler::threads(2)).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = std::env::temp_dir().join(format!("brisk-npy-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("not.npy");
    std::fs::write(&p, b"hello, world").unwrap();
    let err = from_npy(&p, &[1]).unwrap_err().to_string();
    assert!(err.contains("not.npy") && err.contains("not an .npy file"), "{err}");
    let err = from_npy(dir.join("missing.npy"), &[1]).unwrap_err().to_string();
    assert!(err.contains("missing.npy") && err.contains("cannot open"), "{err}");
    let mut header = std::fs::read(fixture("normal_60x40.npy")).unwrap();
    header.truncate(1000);
    let cut = dir.join("cut.npy");
    std::fs::write(&cut, header).unwrap();
    assert!(from_npy(&cut, &[10, 10]).unwrap_err().to_string().contains("truncated"));
    std::fs::remove_dir_all(&dir).unwrap();
}
