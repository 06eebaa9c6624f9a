//! Telling whether the process that ran a run still runs: its id and its start time (so a new
//! process that got the same id later is not mistaken for it). Read through `sysinfo`, so it
//! works on Linux, macOS and Windows alike.

use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};

/// What the OS says about process `pid` now: its start time (seconds since the epoch) and
/// whether it has exited without being reaped yet; `None` when there is no such process.
fn inspect(pid: i64) -> Option<(u64, bool)> {
    let pid = Pid::from_u32(u32::try_from(pid).ok()?);
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing(),
    );
    let process = system.process(pid)?;
    let exited = matches!(
        process.status(),
        ProcessStatus::Zombie | ProcessStatus::Dead
    );
    Some((process.start_time(), exited))
}

/// This process's id and start time.
pub fn current() -> (i64, Option<i64>) {
    let pid = std::process::id() as i64;
    (pid, start_time(pid))
}

/// The start time of process `pid` in seconds since the epoch, or `None` when there is no
/// such process (or the OS does not say).
pub fn start_time(pid: i64) -> Option<i64> {
    inspect(pid).map(|(started, _)| started as i64)
}

/// Whether process `pid`, started at `started`, still runs: it exists, has not exited, and
/// started when it was recorded to (a start time recorded by earlier builds, in clock ticks
/// since boot, never matches: such a run is taken for dead once it is checked).
pub fn is_alive(pid: i64, started: Option<i64>) -> bool {
    match (inspect(pid), started) {
        (None, _) | (Some((_, true)), _) => false,
        (Some((now, false)), Some(then)) => now as i64 == then,
        (Some(_), None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        let (pid, started) = current();
        assert!(started.is_some(), "the OS tells this process's start time");
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

    #[test]
    fn a_child_that_exited_but_was_not_reaped_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        // Not waited for: a zombie until reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(pid, None) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
    }
}
