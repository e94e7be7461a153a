//! `brisk demo`: Brisk's two sentences on a small dataset it writes itself.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use brisk::Compute;
use brisk::frame::{CsvOptions, read_csv};

use crate::failure::Failure;
use crate::output::print_line;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 200,000 rows shaped like the db-benchmark's group-by data, from a fixed seed.
fn write_dataset(dir: &std::path::Path) -> Result<PathBuf, Failure> {
    let path = dir.join("demo.csv");
    let mut text = String::from("id1,id2,v1,v2,v3\n");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // SplitMix64: a fixed, portable sequence.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for _ in 0..200_000 {
        let (a, b, c, d, e) = (next(), next(), next(), next(), next());
        writeln!(
            text,
            "id{:03},id{:03},{},{},{:.6}",
            a % 10 + 1,
            b % 100 + 1,
            c % 5 + 1,
            d % 15 + 1,
            (e >> 11) as f64 / (1u64 << 53) as f64 * 100.0
        )
        .expect("writing to a String");
    }
    std::fs::write(&path, text).map_err(|e| {
        Failure::User(format!("{}: cannot write the demo data: {e}", path.display()))
    })?;
    Ok(path)
}

/// Runs the demo.
pub(crate) fn run() -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("brisk-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::User(format!("{}: cannot create: {e}", dir.display())))?;
    let dir = TempDir(dir);

    print_line("## 1. A dataset: 200,000 rows of keys and values, written as CSV")?;
    let path = write_dataset(&dir.0)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    print_line(&format!("wrote {} ({:.1} MB)\n", path.display(), bytes as f64 / 1e6))?;

    print_line("## 2. read_csv(path).groupby([\"id1\"]).mean().compute()")?;
    let start = Instant::now();
    let opts = CsvOptions::default().blocksize(1 << 20);
    let frame = read_csv(path.to_string_lossy().as_ref(), opts)?;
    let means = frame.groupby(["id1"])?.mean()?;
    let table = means.compute()?;
    print_line(&format!(
        "{table}\n{} partitions of 1 MB, {} groups, in {:.3} s\n",
        frame.npartitions(),
        table.num_rows(),
        start.elapsed().as_secs_f64()
    ))?;

    print_line("## 3. random((10000, 10000), chunks=(1000, 1000), seed=0).mean().compute()")?;
    let start = Instant::now();
    let x = brisk::array::random(&[10_000, 10_000], &[1_000, 1_000], 0)
        .map_err(|e| Failure::Internal(e.to_string()))?;
    let mean = x.mean(brisk::array::Axes::all()).compute()?;
    print_line(&format!(
        "mean = {mean:.6} over 100,000,000 values (800 MB if held at once), in {:.3} s\n",
        start.elapsed().as_secs_f64()
    ))?;

    print_line(
        "## Your turn\n\
         brisk groupby 'data/*.csv' --by id1                  # every numeric column's mean\n\
         brisk groupby data.csv --by id1,id2 --agg v1:sum,v3:mean --filter \"v2 > 3\"\n\
         brisk describe data.csv\n\
         brisk --help",
    )
}
