//! What Linux says about a process in `/proc`: its memory, its threads and the
//! CPU time it has used. Elsewhere these fail (or give `None`), and the tests
//! that need them are Linux-only.

use anyhow::{Context, Result};

/// A process's memory as Linux reports it in `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: the memory resident right now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most that was ever resident (the "high water mark"), in KiB.
    pub peak_kib: u64,
}

/// One number field of `/proc/PID/status` (`VmRSS`, `Threads`, ...).
fn status_field(pid: u32, name: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Lines look like `VmRSS:\t    2048 kB` and `Threads:\t3`.
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .with_context(|| format!("no {name} in {path}"))?;
    let number = line.split_whitespace().next().unwrap_or("");
    number
        .parse()
        .with_context(|| format!("{name} in {path} is not a number: {line:?}"))
}

/// Reads the resident memory of process `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    Ok(Memory {
        rss_kib: status_field(pid, "VmRSS")?,
        peak_kib: status_field(pid, "VmHWM")?,
    })
}

/// How many threads process `pid` has right now.
pub fn threads(pid: u32) -> Result<u64> {
    status_field(pid, "Threads")
}

/// CPU time that process `pid` has used so far, all threads together, in
/// seconds: (user, system). User time is spent in the program itself,
/// system time in the kernel on its behalf (the socket calls). `pid` 0
/// means this process.
pub fn cpu_times(pid: u32) -> Option<(f64, f64)> {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file, utime and stime, in clock ticks of
    // 1/100 s (USER_HZ is 100 on every Linux platform Rust supports).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0))
}
