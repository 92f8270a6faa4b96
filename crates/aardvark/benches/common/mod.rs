//! What both benchmarks read of a process: its status fields (`VmRSS:`, `VmHWM:`) from /proc.

/// A `/proc/PID/status` field in kB, 0 when unreadable.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}
