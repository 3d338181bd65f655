//! The CPUs this process may use, and helper threads that start on
//! another one than their creator's.
//!
//! Some kernels (those of small VMs among them) queue a new thread on the
//! CPU of the thread that created it, even with another CPU idle, and the
//! new thread waits there until its creator sleeps: work handed to it then
//! runs after the creator's, not beside it. Measured on a 2-CPU VM, 16 new
//! threads of 20 started on their creator's CPU, and half of them only
//! when it slept.

use std::os::unix::thread::JoinHandleExt;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// How many CPUs this process may run on (its affinity mask), at least 1.
/// One system call, where `std::thread::available_parallelism` also
/// reads the cgroup's CPU quota from several files: a cost every plugin
/// load would pay to size a pool of two or three threads.
pub fn usable_cpus() -> usize {
    affinity().map_or(1, |set| count(&set).max(1))
}

/// Runs `here` on this thread while each of `helpers` runs on a thread of
/// its own, and returns `here`'s result with the helpers', in their order,
/// once all have ended: `None` for a helper that panicked.
///
/// Each helper thread is kept off this thread's CPU when the affinity mask
/// leaves another, so that it starts at once. A helper whose thread cannot
/// be created (under a pids limit, say) runs here, after `here`.
pub fn alongside<H: Send, R>(
    helpers: Vec<impl FnOnce() -> H + Send>,
    here: impl FnOnce() -> R,
) -> (R, Vec<Option<H>>) {
    // A helper waits in its cell for the thread that takes it; one left
    // there had no thread.
    let cells: Vec<_> = helpers.into_iter().map(|h| Mutex::new(Some(h))).collect();
    let take = |cell: &Mutex<Option<_>>| cell.lock().ok().and_then(|mut h| h.take());
    let others = other_cpus();
    let mut threads = Joined(Vec::with_capacity(cells.len()));
    for cell in &cells {
        // SAFETY: the thread borrows `cell` and what the helper borrows,
        // all of which outlive this call, and `Joined` joins it before
        // this call returns or unwinds.
        match unsafe { spawn_off(others.as_ref(), move || take(cell).map(|helper| helper())) } {
            Ok(thread) => threads.0.push(Some(thread)),
            Err(e) => {
                tracing::debug!("no helper thread ({e}): its work runs on this one");
                threads.0.push(None);
            }
        }
    }
    let result = here();
    let outputs = threads
        .0
        .iter_mut()
        .zip(&cells)
        .map(|(thread, cell)| match thread.take() {
            Some(thread) => thread.join().ok().flatten(),
            None => take(cell).map(|helper| helper()),
        })
        .collect();
    (result, outputs)
}

/// Runs `task` on a thread of its own, kept off this thread's CPU as
/// [`alongside`]'s helpers are, and not waited for: work that this
/// thread may need later, or not at all (the process may exec first,
/// which ends the thread). A thread that cannot be created leaves the
/// work undone.
pub fn start_elsewhere(task: impl FnOnce() + Send + 'static) {
    // SAFETY: the task borrows nothing (it is 'static).
    if let Err(e) = unsafe { spawn_off(other_cpus().as_ref(), task) } {
        tracing::debug!("no thread for work ahead of time: {e}");
    }
}

/// Spawns `work` on a thread restricted to `cpus`, when given. The new
/// thread waits until its creator has restricted it: most often it has
/// not run yet, and starts on one of `cpus`; and it cannot have ended,
/// which matters because glibc's `pthread_setaffinity_np` on an ended
/// thread restricts the caller instead, a mask that the runtime and the
/// container exec'd after would inherit.
///
/// # Safety
///
/// As [`std::thread::Builder::spawn_unchecked`]: what `work` borrows must
/// outlive the thread.
unsafe fn spawn_off<T: Send>(
    cpus: Option<&libc::cpu_set_t>,
    work: impl FnOnce() -> T + Send,
) -> std::io::Result<JoinHandle<T>> {
    let builder = std::thread::Builder::new();
    let Some(cpus) = cpus else {
        // SAFETY: passed on to our caller.
        return unsafe { builder.spawn_unchecked(work) };
    };
    // Dropped, hence closed, once the thread is placed.
    let (placed, wait) = std::sync::mpsc::channel::<std::convert::Infallible>();
    // SAFETY: passed on to our caller; the channel's end is the thread's.
    let thread = unsafe {
        builder.spawn_unchecked(move || {
            let _ = wait.recv();
            work()
        })
    }?;
    keep_off(&thread, cpus);
    drop(placed);
    Ok(thread)
}

/// Threads joined when dropped: before [`alongside`] returns or unwinds.
struct Joined<T>(Vec<Option<JoinHandle<T>>>);

impl<T> Drop for Joined<T> {
    fn drop(&mut self) {
        for thread in self.0.iter_mut().filter_map(Option::take) {
            let _ = thread.join();
        }
    }
}

/// The affinity mask without the CPU this thread runs on; `None` when
/// that leaves no CPU.
fn other_cpus() -> Option<libc::cpu_set_t> {
    let here = nix::sched::sched_getcpu().ok()?;
    let mut set = affinity()?;
    // SAFETY: CPU_CLR checks that `here` is within the set.
    unsafe { libc::CPU_CLR(here, &mut set) };
    (count(&set) > 0).then_some(set)
}

/// This thread's affinity mask.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: a cpu_set_t is an array of integers, valid all zeros, and
    // the kernel writes at most the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0).then_some(set)
    }
}

/// How many CPUs a mask holds.
fn count(set: &libc::cpu_set_t) -> usize {
    // SAFETY: CPU_COUNT reads the set, within its size.
    let n = unsafe { libc::CPU_COUNT(set) };
    usize::try_from(n).unwrap_or(0)
}

/// Restricts a thread that has not ended to `cpus`. A failure only
/// leaves it where the kernel put it.
fn keep_off<T>(thread: &JoinHandle<T>, cpus: &libc::cpu_set_t) {
    // SAFETY: the thread has not ended (it waits for its creator), so its
    // pthread_t and thread id are valid; `cpus` is a whole cpu_set_t.
    let rc = unsafe {
        libc::pthread_setaffinity_np(thread.as_pthread_t(), size_of::<libc::cpu_set_t>(), cpus)
    };
    if rc != 0 {
        tracing::debug!(
            "helper thread stays where it started: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

#[cfg(test)]
mod tests {
    use nix::sched::CpuSet;
    use nix::unistd::Pid;

    use super::*;

    /// The kernel's own account of the affinity mask, e.g. `0-3,8`.
    fn allowed_in_proc_status() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        list.split(',')
            .map(|range| match range.split_once('-') {
                Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                None => 1,
            })
            .sum()
    }

    #[test]
    fn usable_cpus_counts_the_affinity_mask() {
        assert_eq!(usable_cpus(), allowed_in_proc_status());
    }

    #[test]
    fn helpers_run_beside_this_thread_and_off_its_cpu() {
        let cpus = usable_cpus();
        let borrowed = [1, 2, 3];
        // The masks are read once every thread has been placed.
        let placed = std::sync::Barrier::new(borrowed.len() + 1);
        let helpers: Vec<_> = borrowed
            .iter()
            .map(|n| {
                let placed = &placed;
                move || {
                    placed.wait();
                    let mask = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
                    let allowed = (0..CpuSet::count())
                        .filter(|&cpu| mask.is_set(cpu).unwrap())
                        .count();
                    (n * 10, allowed)
                }
            })
            .collect();
        let (here, helpers) = alongside(helpers, || {
            placed.wait();
            "here"
        });
        assert_eq!(here, "here");
        let expected = if cpus > 1 { cpus - 1 } else { 1 };
        assert_eq!(
            helpers,
            vec![
                Some((10, expected)),
                Some((20, expected)),
                Some((30, expected))
            ]
        );
    }

    #[test]
    fn work_started_elsewhere_runs_off_this_cpu() {
        let (go, placed) = std::sync::mpsc::channel::<()>();
        let (send, allowed) = std::sync::mpsc::channel();
        start_elsewhere(move || {
            placed.recv().unwrap();
            let mask = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
            let count = (0..CpuSet::count())
                .filter(|&cpu| mask.is_set(cpu).unwrap())
                .count();
            send.send(count).unwrap();
        });
        go.send(()).unwrap();
        let cpus = usable_cpus();
        let expected = if cpus > 1 { cpus - 1 } else { 1 };
        assert_eq!(allowed.recv().unwrap(), expected);
    }

    #[test]
    fn a_helper_that_panics_gives_none_and_the_others_their_result() {
        let helpers: Vec<Box<dyn FnOnce() -> u8 + Send>> = vec![
            Box::new(|| 1),
            Box::new(|| panic!("helper fails")),
            Box::new(|| 3),
        ];
        let (_, outputs) = alongside(helpers, || ());
        assert_eq!(outputs, vec![Some(1), None, Some(3)]);
    }
}
