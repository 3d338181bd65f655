//! The CPUs this process may use, and the helper threads that run work
//! beside the thread that hands it over.
//!
//! Some kernels (those of small VMs among them) queue a new thread on the
//! CPU of the thread that created it, even with another CPU idle, and the
//! new thread waits there until its creator sleeps: work handed to it then
//! runs after the creator's, not beside it. Measured on a 2-CPU VM, 16 new
//! threads of 20 started on their creator's CPU, and half of them only
//! when it slept. Helper threads are therefore placed off their creator's
//! CPU before they run. They are also kept for the process's later work:
//! on such a VM a thread costs its creator 0.1–0.15 ms to start, and a
//! wrapper `create` hands work over three times.
//!
//! The same kernels wake a thread that slept on a helper (a lock, a
//! `OnceLock` the helper was filling) on the helper's CPU, behind it:
//! traced on a 2-CPU VM, the wrapper's main thread waited there for 2 ms
//! in 8 creates of 30, while the other CPU idled and the helper loaded
//! every plugin alone. A thread that hands work over for a short while
//! can therefore stay on its CPU ([`stay_here`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::os::unix::thread::JoinHandleExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{SysError, err};

/// How many CPUs this process may run on (this thread's affinity mask,
/// as it was before [`stay_here`]), at least 1.
/// One system call, where `std::thread::available_parallelism` also
/// reads the cgroup's CPU quota from several files: a cost every plugin
/// load would pay to size a pool of two or three threads.
pub fn usable_cpus() -> usize {
    affinity().map_or(1, |set| count(&set).max(1))
}

/// Keeps this thread on the CPU it runs on, and the helper threads
/// started from here on off it, until the guard is released or dropped;
/// [`usable_cpus`] still counts the whole mask. Nothing changes when the
/// mask has one CPU, or when this thread already stays.
pub fn stay_here() -> Stay {
    if UNPINNED.get().is_some() {
        return Stay { whole: None };
    }
    let (Ok(cpu), Some(whole)) = (nix::sched::sched_getcpu(), affinity()) else {
        return Stay { whole: None };
    };
    if count(&whole) < 2 {
        return Stay { whole: None };
    }
    // SAFETY: a cpu_set_t is an array of integers, valid all zeros, and
    // CPU_SET checks that `cpu` is within the set.
    let one = unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        one
    };
    if let Err(e) = set_affinity(&one) {
        tracing::debug!("this thread may move: {e}");
        return Stay { whole: None };
    }
    UNPINNED.set(Some(whole));
    Stay { whole: Some(whole) }
}

/// A thread kept on its CPU by [`stay_here`], and the mask to give back.
#[must_use = "the thread stays on its CPU only while this lives"]
pub struct Stay {
    whole: Option<libc::cpu_set_t>,
}

impl std::fmt::Debug for Stay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stay")
            .field("staying", &self.whole.is_some())
            .finish()
    }
}

impl Stay {
    /// Gives the thread its whole mask back, as a program it execs must
    /// inherit it.
    pub fn release(mut self) -> Result<(), SysError> {
        self.give_back()
    }

    fn give_back(&mut self) -> Result<(), SysError> {
        let Some(whole) = self.whole.take() else {
            return Ok(());
        };
        UNPINNED.set(None);
        set_affinity(&whole)
    }
}

impl Drop for Stay {
    fn drop(&mut self) {
        if let Err(e) = self.give_back() {
            tracing::debug!("this thread stays on its CPU: {e}");
        }
    }
}

thread_local! {
    /// This thread's mask before [`stay_here`] narrowed it.
    static UNPINNED: Cell<Option<libc::cpu_set_t>> = const { Cell::new(None) };
}

/// Runs `here` on this thread while helper threads run `helpers`, and
/// returns `here`'s result with the helpers', in their order, once all
/// have ended: `None` for a helper that panicked.
///
/// Helpers that no helper thread has started by the time `here` returns
/// (all busy, or none could be created) run here, after `here`: each
/// helper runs beside `here` or after it, and has ended when this call
/// returns or unwinds.
pub fn alongside<H: Send, R>(
    helpers: Vec<impl FnOnce() -> H + Send>,
    here: impl FnOnce() -> R,
) -> (R, Vec<Option<H>>) {
    let tasks: Vec<_> = helpers.into_iter().map(Task::new).collect();
    // On unwind too, no helper may run or stay running past this call.
    let _finished = Finish(&tasks);
    for task in &tasks {
        let task = Arc::clone(task);
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || task.run());
        // SAFETY: the helper, and what it borrows, is run or dropped before
        // this call returns or unwinds: `finish` takes back a helper that
        // no thread has started and waits for one that has, and a job run
        // after that finds its task taken and touches nothing borrowed.
        POOL.submit(unsafe { erase(job) });
    }
    let result = here();
    let outputs = tasks.iter().map(|task| task.finish(true)).collect();
    (result, outputs)
}

/// Runs `task` on a helper thread, and does not wait for it: work that
/// this thread may need later, or not at all (the process may exec
/// first, which ends the thread). When no helper thread can be created,
/// the work is left undone.
pub fn start_elsewhere(task: impl FnOnce() + Send + 'static) {
    // A panic has been reported by the hook; the thread serves on.
    POOL.submit(Box::new(move || drop(catch_unwind(AssertUnwindSafe(task)))));
}

/// Work for a helper thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Gives a job the lifetime of the pool's queue.
///
/// # Safety
///
/// What `job` borrows must not be used once it ends, whenever the job
/// runs or is dropped.
unsafe fn erase<'a>(job: Box<dyn FnOnce() + Send + 'a>) -> Job {
    // SAFETY: the two types differ only in a lifetime, which the caller
    // vouches for.
    unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(job) }
}

/// The process's helper threads and their queue.
static POOL: Pool = Pool {
    queue: Mutex::new(Queue {
        jobs: VecDeque::new(),
        idle: 0,
        threads: 0,
    }),
    wake: Condvar::new(),
};

struct Pool {
    queue: Mutex<Queue>,
    wake: Condvar,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads started, or being started.
    threads: usize,
}

impl Pool {
    /// Queues `job`, and starts a thread for it when none is idle and
    /// there are fewer than one per CPU of the mask beyond the first (at
    /// least one); otherwise it waits for a busy thread.
    fn submit(&'static self, job: Job) {
        let mut queue = lock(&self.queue);
        queue.jobs.push_back(job);
        if queue.idle > 0 {
            self.wake.notify_one();
            return;
        }
        if queue.threads >= usable_cpus().saturating_sub(1).max(1) {
            return;
        }
        queue.threads += 1;
        drop(queue);
        if let Err(e) = spawn_off(other_cpus().as_ref(), || self.serve()) {
            tracing::debug!(
                "no helper thread ({e}): work waits for another, or runs where it was handed over"
            );
            lock(&self.queue).threads -= 1;
        }
    }

    /// A helper thread's life: the queue's jobs, one after another.
    fn serve(&self) {
        let mut queue = lock(&self.queue);
        loop {
            match queue.jobs.pop_front() {
                Some(job) => {
                    drop(queue);
                    job();
                    queue = lock(&self.queue);
                }
                None => {
                    queue.idle += 1;
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                    queue.idle -= 1;
                }
            }
        }
    }
}

/// A lock that a panic elsewhere does not make unusable: jobs run outside
/// it, so what it guards is never left half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One helper of [`alongside`], shared by the job that may run it and the
/// caller that may take it back.
struct Task<H, F> {
    state: Mutex<State<H, F>>,
    ended: Condvar,
}

enum State<H, F> {
    Waiting(F),
    Running,
    /// The result; `None` if the helper panicked.
    Ended(Option<H>),
    Taken,
}

impl<H, F: FnOnce() -> H> Task<H, F> {
    fn new(helper: F) -> Arc<Self> {
        Arc::new(Task {
            state: Mutex::new(State::Waiting(helper)),
            ended: Condvar::new(),
        })
    }

    /// Runs the helper on a helper thread, unless the caller took it back.
    fn run(&self) {
        let helper = {
            let mut state = lock(&self.state);
            match std::mem::replace(&mut *state, State::Running) {
                State::Waiting(helper) => helper,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        // A panic has been reported by the hook.
        let output = catch_unwind(AssertUnwindSafe(helper)).ok();
        *lock(&self.state) = State::Ended(output);
        self.ended.notify_all();
    }

    /// The helper's result: run here if no thread started it (dropped
    /// instead unless `run`), waited for if one did. Later calls get
    /// `None`.
    fn finish(&self, run: bool) -> Option<H> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Waiting(helper) => {
                    drop(state);
                    if !run {
                        return None;
                    }
                    return catch_unwind(AssertUnwindSafe(helper)).ok();
                }
                State::Running => {
                    *state = State::Running;
                    state = self
                        .ended
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                State::Ended(output) => return output,
                State::Taken => return None,
            }
        }
    }
}

/// Ends every task when dropped: what makes [`alongside`] wait for the
/// helpers that have started, and drop the others, when `here` unwinds.
struct Finish<'a, H, F: FnOnce() -> H>(&'a [Arc<Task<H, F>>]);

impl<H, F: FnOnce() -> H> Drop for Finish<'_, H, F> {
    fn drop(&mut self) {
        for task in self.0 {
            task.finish(false);
        }
    }
}

/// Starts a detached thread running `work`, restricted to `cpus` when
/// given. The new thread waits until its creator has restricted it: most
/// often it has not run yet, and starts on one of `cpus`; and it cannot
/// have ended, which matters because glibc's `pthread_setaffinity_np` on
/// an ended thread restricts the caller instead, a mask that the runtime
/// and the container exec'd after would inherit.
fn spawn_off(
    cpus: Option<&libc::cpu_set_t>,
    work: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let builder = std::thread::Builder::new().name("specgate-helper".into());
    let Some(cpus) = cpus else {
        return builder.spawn(work).map(drop);
    };
    // Dropped, hence closed, once the thread is placed.
    let (placed, wait) = std::sync::mpsc::channel::<std::convert::Infallible>();
    let thread = builder.spawn(move || {
        let _ = wait.recv();
        work();
    })?;
    keep_off(&thread, cpus);
    drop(placed);
    Ok(())
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

/// This thread's affinity mask, as it was before [`stay_here`].
fn affinity() -> Option<libc::cpu_set_t> {
    if let Some(whole) = UNPINNED.get() {
        return Some(whole);
    }
    // SAFETY: a cpu_set_t is an array of integers, valid all zeros, and
    // the kernel writes at most the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0).then_some(set)
    }
}

/// Restricts this thread to `cpus`.
fn set_affinity(cpus: &libc::cpu_set_t) -> Result<(), SysError> {
    // SAFETY: `cpus` is a whole cpu_set_t; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), cpus) };
    if rc == 0 {
        Ok(())
    } else {
        Err(err(
            "sched_setaffinity",
            std::path::Path::new("/proc/thread-self"),
        )(nix::Error::last()))
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
fn keep_off<T>(thread: &std::thread::JoinHandle<T>, cpus: &libc::cpu_set_t) {
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
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

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

    /// How many CPUs this thread may run on.
    fn allowed() -> usize {
        let mask = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..CpuSet::count())
            .filter(|&cpu| mask.is_set(cpu).unwrap())
            .count()
    }

    #[test]
    fn helpers_run_on_threads_off_this_cpu() {
        let cpus = usable_cpus();
        let borrowed = [1, 2, 3];
        let ran = AtomicUsize::new(0);
        let helpers: Vec<_> = borrowed
            .iter()
            .map(|n| {
                let ran = &ran;
                move || {
                    let placed = (n * 10, allowed(), std::thread::current().id());
                    ran.fetch_add(1, Ordering::SeqCst);
                    placed
                }
            })
            .collect();
        let (here, helpers) = alongside(helpers, || {
            // None is left to run here.
            while ran.load(Ordering::SeqCst) < borrowed.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::current().id()
        });
        let expected = if cpus > 1 { cpus - 1 } else { 1 };
        for (helper, n) in helpers.into_iter().zip(borrowed) {
            let (value, mask, thread) = helper.unwrap();
            assert_eq!((value, mask), (n * 10, expected));
            assert_ne!(thread, here);
        }
    }

    #[test]
    fn a_helper_may_hand_work_over_in_turn() {
        // The outer helper runs on a helper thread, not taken back here,
        // and hands work over from there: with every helper thread busy,
        // the inner one runs where it was handed over.
        let started = AtomicBool::new(false);
        let (outer, inner) = alongside(
            vec![|| {
                started.store(true, Ordering::SeqCst);
                alongside(vec![|| 2], || 1)
            }],
            || {
                while !started.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                0
            },
        );
        assert_eq!(outer, 0);
        assert_eq!(inner, vec![Some((1, vec![Some(2)]))]);
    }

    #[test]
    fn a_panic_here_waits_for_the_helpers_that_started() {
        let started = AtomicBool::new(false);
        let ended = AtomicBool::new(false);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            alongside(
                vec![|| {
                    started.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    ended.store(true, Ordering::SeqCst);
                }],
                || {
                    while !started.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    panic!("here fails");
                },
            )
        }));
        assert!(unwound.is_err());
        assert!(ended.load(Ordering::SeqCst));
    }

    #[test]
    fn work_started_elsewhere_runs_off_this_cpu() {
        let (send, mask) = std::sync::mpsc::channel();
        start_elsewhere(move || send.send(allowed()).unwrap());
        let cpus = usable_cpus();
        let expected = if cpus > 1 { cpus - 1 } else { 1 };
        assert_eq!(mask.recv().unwrap(), expected);
    }

    #[test]
    fn a_thread_that_stays_here_keeps_one_cpu_and_its_helpers_the_others() {
        // A thread of its own: the mask is a thread's.
        std::thread::spawn(|| {
            let whole = allowed();
            let stay = stay_here();
            let here = nix::sched::sched_getcpu().unwrap();
            assert_eq!(allowed(), if whole > 1 { 1 } else { whole });
            assert_eq!(usable_cpus(), whole);
            // Staying again changes nothing, and giving that back neither.
            stay_here().release().unwrap();
            assert_eq!(allowed(), if whole > 1 { 1 } else { whole });
            let off = other_cpus();
            if whole > 1 {
                let off = off.unwrap();
                assert_eq!(count(&off), whole - 1);
                // SAFETY: CPU_ISSET checks that `here` is within the set.
                assert!(!unsafe { libc::CPU_ISSET(here, &off) });
            }
            // A helper thread started now is placed off this CPU.
            let (send, placed) = std::sync::mpsc::channel();
            spawn_off(off.as_ref(), move || {
                let mask = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
                send.send((mask.is_set(here).unwrap(), allowed())).unwrap();
            })
            .unwrap();
            let expected = if whole > 1 {
                (false, whole - 1)
            } else {
                (true, 1)
            };
            assert_eq!(placed.recv().unwrap(), expected);
            stay.release().unwrap();
            assert_eq!(allowed(), whole);
            assert_eq!(usable_cpus(), whole);
        })
        .join()
        .unwrap();
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
