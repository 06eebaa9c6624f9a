//! Telling whether the process that ran a run still runs: its id and its start time (so a new
//! process that got the same id later is not mistaken for it).

/// This process's id and start time.
pub fn current() -> (i64, Option<i64>) {
    let pid = std::process::id() as i64;
    (pid, start_time(pid))
}

/// The start time of process `pid` in clock ticks since boot (Linux `/proc/PID/stat` field
/// 22), or `None` when it cannot be read.
pub fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when process `pid` has exited but was not reaped yet (state `Z`).
fn is_zombie(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat[stat.rfind(')')? + 1..].to_string();
            rest.split_whitespace().next().map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(false)
}

/// Whether process `pid`, started at `started`, still runs. Where the OS offers no `/proc`,
/// a process is assumed alive (runs are then never marked interrupted automatically).
pub fn is_alive(pid: i64, started: Option<i64>) -> bool {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    if is_zombie(pid) {
        return false;
    }
    match (start_time(pid), started) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        let (pid, started) = current();
        assert!(is_alive(pid, started));
        assert!(
            !is_alive(pid, started.map(|s| s + 1)),
            "same id, other start: another process"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_pid = child.id() as i64;
        child.wait().unwrap();
        assert!(!is_alive(child_pid, None));
    }
}
