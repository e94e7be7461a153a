use brisk::core::Key;
use brisk::prelude::*;
use brisk::scheduler::Callback;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

struct T { t0: Instant, ev: Mutex<Vec<(String, bool, f64, usize)>> }
impl Callback for T {
    fn task_started(&self, k: &Key, w: usize) { self.ev.lock().unwrap().push((k.name().to_string(), false, self.t0.elapsed().as_secs_f64(), w)); }
    fn task_finished(&self, k: &Key, w: usize) { self.ev.lock().unwrap().push((k.name().to_string(), true, self.t0.elapsed().as_secs_f64(), w)); }
}
fn main() -> Result<(), Box<dyn std::error::Error>> {
    brisk::worker_if_asked();
    let file = std::env::args().nth(1).unwrap();
    let procs = std::env::args().nth(2).is_some();
    let frame = read_csv(file.as_str(), CsvOptions::default())?;
    let g = frame.groupby(["id1"])?.agg([("v1", brisk::frame::Agg::Mean), ("v2", brisk::frame::Agg::Mean), ("v3", brisk::frame::Agg::Mean)])?;
    let s = if procs { Scheduler::processes(2)? } else { Scheduler::threads(2) };
    let t = std::sync::Arc::new(T { t0: Instant::now(), ev: Mutex::new(vec![]) });
    let s = s.callback_arc(t.clone());
    let t0 = Instant::now();
    let _ = s.compute(&g)?;
    println!("total {:.3}", t0.elapsed().as_secs_f64());
    let ev = t.ev.lock().unwrap();
    let mut by: BTreeMap<String, (f64, f64, f64, usize)> = BTreeMap::new();
    let mut starts: std::collections::HashMap<(String, usize), f64> = Default::default();
    let _ = &mut starts;
    for (n, done, at, _) in ev.iter() {
        let e = by.entry(n.clone()).or_insert((f64::MAX, 0.0, 0.0, 0));
        if !done { e.0 = e.0.min(*at); } else { e.1 = e.1.max(*at); e.3 += 1; }
    }
    for (n, (a, b, _, c)) in by { println!("{n:50} first start {a:.3} last finish {b:.3} n={c}"); }
    Ok(())
}
