//! CPU time a process (and its child processes: nginx's workers) has used, from `/proc`.
//! Per request it is the figure a shared, noisy machine disturbs least: other load steals
//! wall-clock time from a server, not the work it does.

use std::time::Duration;

/// The kernel reports process times in USER_HZ ticks, which Linux fixes at 100 per second
/// for everything it exports to user space.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system time of `pid` and of its children, as they are now.
pub fn used(pid: u32) -> Duration {
    let mut ticks = own_ticks(pid).unwrap_or(0);
    for child in children(pid) {
        ticks += own_ticks(child).unwrap_or(0);
    }
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

fn own_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// User plus system time of every process named `name` (PostgreSQL's server processes),
/// as they are now.
pub fn used_by_name(name: &str) -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(own_ticks)
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}
