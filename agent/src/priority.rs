//! The lowest CPU and I/O priority that still finishes, for captures on a suspect host (memory):
//! the host's own work — and the evidence in its RAM — should be disturbed as little as possible.
//!
//! - CPU: nice 19, the weakest share the scheduler gives; on an idle core the capture still runs
//!   at full speed, under load it yields. (SCHED_IDLE would be lower, but may never run on a
//!   host kept busy — an incident's usual state — and the capture must end.)
//! - I/O: best-effort class, level 7 (the lowest best-effort level), not the idle class, for the
//!   same reason: idle I/O may starve forever behind a busy disk.
//!
//! Both are per thread on Linux and inherited by threads created later, so this runs before the
//! run's first thread (the AWS runtime, the pipeline) starts.

/// `ioprio_set`'s "this process" (thread) selector.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// The best-effort class.
const IOPRIO_CLASS_BE: libc::c_int = 2;
/// Where the class sits in an I/O priority value.
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
/// The lowest best-effort level.
const LOWEST_BE_LEVEL: libc::c_int = 7;
/// The lowest CPU priority.
const LOWEST_NICE: libc::c_int = 19;

/// Lowers this thread's CPU and I/O priority; what could not be lowered, in words.
pub fn lower() -> Vec<String> {
    let mut failed = Vec::new();
    // PRIO_PROCESS with 0: the calling thread on Linux (nice is per thread).
    if let Err(e) = nix::errno::Errno::result(
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, LOWEST_NICE) },
    ) {
        failed.push(format!("nice {LOWEST_NICE}: {e}"));
    }
    let value = (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | LOWEST_BE_LEVEL;
    if let Err(e) = nix::errno::Errno::result(
        // SAFETY: ioprio_set takes three integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) },
    ) {
        failed.push(format!("I/O priority best-effort {LOWEST_BE_LEVEL}: {e}"));
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_ends_at_nice_19_and_the_lowest_best_effort_io_level() {
        std::thread::spawn(|| {
            assert!(lower().is_empty());
            // SAFETY: getpriority takes plain integers.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            assert_eq!(nice, LOWEST_NICE);
            // SAFETY: ioprio_get takes two integers.
            let io = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
            assert_eq!(
                io,
                i64::from((IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | LOWEST_BE_LEVEL)
            );
            // A thread started afterwards inherits both.
            let child = std::thread::spawn(|| {
                // SAFETY: as above.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
            });
            assert_eq!(child.join().unwrap(), LOWEST_NICE);
        })
        .join()
        .unwrap();
    }
}
