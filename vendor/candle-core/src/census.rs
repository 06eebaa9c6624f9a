//! A count of the backend operations a piece of work runs (added by Hone; not in upstream
//! candle).
//!
//! Each [`crate::storage::Storage`] operation is one kernel launch on a GPU (a handful launch
//! two), so counting them on the CPU tells how many kernels a training step would launch on a
//! GPU and how many bytes they would move, without a GPU. Off unless [`start`] was called: a
//! disabled census costs one relaxed atomic load per operation.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ON: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<State> = Mutex::new(State {
    phase: "",
    counts: BTreeMap::new(),
});

thread_local! {
    /// This thread's operations are not counted ([`as_one`] counts them as one).
    static MUTED: Cell<bool> = const { Cell::new(false) };
}

struct State {
    phase: &'static str,
    counts: BTreeMap<(&'static str, &'static str), Count>,
}

/// Launches and bytes of one operation kind in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// How many times the operation ran.
    pub launches: u64,
    /// Bytes its inputs and outputs span (a broadcast input counts at its broadcast size).
    pub bytes: u64,
}

/// One row of a census: the phase, the operation and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub phase: &'static str,
    pub op: &'static str,
    pub count: Count,
}

/// Clears the counts and starts counting, in phase `phase`.
pub fn start(phase: &'static str) {
    let mut state = lock();
    state.counts.clear();
    state.phase = phase;
    ON.store(true, Ordering::Relaxed);
}

/// Stops counting and returns what was counted since [`start`].
pub fn stop() -> Vec<Row> {
    ON.store(false, Ordering::Relaxed);
    let mut state = lock();
    std::mem::take(&mut state.counts)
        .into_iter()
        .map(|((phase, op), count)| Row { phase, op, count })
        .collect()
}

/// Counts what follows under `phase` (a no-op while no census runs).
pub fn phase(phase: &'static str) {
    if ON.load(Ordering::Relaxed) {
        lock().phase = phase;
    }
}

/// Whether a census is counting.
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Runs `f`, counting the operations this thread runs in it as one run of `op` spanning
/// `bytes`: work a GPU does in one launch that another device does in several operations.
pub fn as_one<R>(op: &'static str, bytes: usize, f: impl FnOnce() -> R) -> R {
    if !is_on() {
        return f();
    }
    struct Unmute(bool);
    impl Drop for Unmute {
        fn drop(&mut self) {
            MUTED.with(|m| m.set(self.0));
        }
    }
    let was_muted = MUTED.with(|m| m.replace(true));
    let out = {
        let _unmute = Unmute(was_muted);
        f()
    };
    if !was_muted {
        record(op, bytes);
    }
    out
}

/// Counts one run of `op` spanning `bytes`.
pub(crate) fn record(op: &'static str, bytes: usize) {
    if !ON.load(Ordering::Relaxed) || MUTED.with(|m| m.get()) {
        return;
    }
    let mut state = lock();
    let phase = state.phase;
    let count = state.counts.entry((phase, op)).or_default();
    count.launches += 1;
    count.bytes += bytes as u64;
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
