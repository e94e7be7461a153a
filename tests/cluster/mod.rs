//! What the cluster test programs (`processes.rs`, `hosts.rs`) share: a test op
//! whose answer depends on the order of its inputs, the graphs made of it,
//! fast heartbeats, and the count of child processes.

use std::time::Duration;

use brisk::core::{Key, Op, OpKind, Scalar, Value};
use brisk::graph::{Graph, Task};
use serde::{Deserialize, Serialize};

/// A test op: mixes its inputs (in order: a different order gives another
/// answer) into one float, after sleeping `sleep_ms`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Mix {
    pub(crate) salt: u64,
    pub(crate) sleep_ms: u64,
}

impl OpKind for Mix {
    const NAME: &'static str = "test.mix";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        if self.salt == ABORT {
            // What an out-of-memory kill or a crash in native code looks like.
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(self.sleep_ms));
        let mut acc = self.salt as f64 * 0.001 + 1.0;
        for (i, v) in inputs.iter().enumerate() {
            let Some(Scalar::F64(x)) = v.as_scalar() else {
                return Err(brisk::core::Error::user(format!("not a float: {}", v.kind())));
            };
            acc = acc * 1.000_1 + x / (i as f64 + 1.5);
        }
        Ok(Value::from(acc))
    }
}

/// The salt that makes a Mix task abort its process.
pub(crate) const ABORT: u64 = u64::MAX;

/// Numbers below a bound from `seed` (xorshift): the same graph every run.
pub(crate) fn numbers(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move |below| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    }
}

/// A layered DAG from `seed`: `layers` of `width` Mix tasks, each taking one to
/// three tasks of the layer before (repeats allowed); the last layer is the
/// outputs. Wide enough to keep every worker busy.
pub(crate) fn layered_dag(
    seed: u64,
    layers: usize,
    width: usize,
    sleep_ms: u64,
) -> (Graph, Vec<Key>) {
    let mut next = numbers(seed);
    let key = |layer: usize, i: usize| Key::new("layer", [layer as u32, i as u32]);
    let mut tasks = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            let op = Op::data(Mix { salt: (layer * width + i) as u64, sleep_ms });
            tasks.push(match layer {
                0 => Task::root(key(0, i), op),
                _ => Task::new(
                    key(layer, i),
                    op,
                    (0..1 + next(3)).map(|_| key(layer - 1, next(width))),
                ),
            });
        }
    }
    let outputs = (0..width).map(|i| key(layers - 1, i)).collect();
    (Graph::from_tasks(tasks).unwrap(), outputs)
}

/// Processes whose parent is this one.
pub(crate) fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ").map(|(_, rest)| rest.split(' ').nth(1) == Some(&me))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Heartbeats fast enough for a test.
pub(crate) fn fast() -> brisk::distributed::Timing {
    brisk::distributed::Timing {
        heartbeat: Duration::from_millis(100),
        death_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}
