//! What the CLI test files share: running the binary and a scratch directory.
// Each test file uses its own part of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/frame/tests/data");

pub(crate) struct Run {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn brisk_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn brisk(args: &[&str]) -> Run {
    brisk_in(Path::new(FIXTURES), args)
}

/// A fresh directory under the target dir for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `brisk ARGS` in `dir`, watching its peak resident memory (VmHWM, read
/// every few milliseconds until it exits): the exit status and the peak in bytes.
pub(crate) fn brisk_peak_memory(dir: &Path, args: &[&str]) -> (i32, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib * 1024);
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            return (exit.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A small tmpfs mounted at a directory of its own, unmounted when dropped however
/// the test ends: a full disk on demand. `None` where mounting needs root.
pub(crate) struct Tmpfs(PathBuf);

impl Tmpfs {
    pub(crate) fn mount(at: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&at).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs(at))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
