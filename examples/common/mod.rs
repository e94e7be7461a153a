//! Helpers shared by the examples.

/// The process's peak resident memory so far in MB (Linux: `VmHWM` in
/// `/proc/self/status`; `None` elsewhere).
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}
