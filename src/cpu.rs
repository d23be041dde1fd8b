//! A fixed set of threads for the rule backends' CPU work (filter and
//! extract).
//!
//! Why not tokio's blocking pool: the rules are a few hundred compiled
//! regexes, and the regex crate keeps a match cache per regex for each
//! thread that has used it (one for the first thread, and up to eight more
//! in stacks keyed by thread id), sized by the largest text it has seen.
//! The blocking pool starts threads as it needs them and lets them go after
//! ten idle seconds, so over a day every regex gathers all nine caches,
//! each grown by the largest documents: an extract worker kept about 90
//! MiB more after a burst of large documents and never gave it back. On a
//! fixed set of threads that never exit there are at most as many caches
//! per regex as threads, and a burst leaves what the first large document
//! left (measured in the README's Memory section).
//!
//! It also bounds the work: an attempt abandoned at the handler timeout
//! keeps its thread until it ends, and later jobs wait for a free thread,
//! where the blocking pool would start one more thread for each.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// A job for a pool thread.
type Job = Box<dyn FnOnce() + Send>;

/// Jobs that may wait for a free thread before a submit waits for room
/// (the handlers of a worker: its prefetch bounds them, so this is never
/// reached in practice).
const QUEUE: usize = 1024;

/// Threads that run CPU-bound jobs, started once and kept.
#[derive(Debug)]
pub struct Pool {
    jobs: SyncSender<Job>,
    threads: usize,
}

/// Why a job gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The job panicked; its thread goes on with the next job.
    #[error("the job panicked: {0}")]
    Panicked(String),
    /// The pool's threads are gone (the process is ending).
    #[error("the CPU pool has stopped")]
    Stopped,
}

impl Pool {
    /// Starts `threads` threads (at least one), named `tenderflow-cpu-N`.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tenderflow-cpu-{i}"))
                .spawn(move || serve(&queue))?;
        }
        Ok(Pool { jobs, threads })
    }

    /// The process's pool for the rule backends, started at the first use
    /// with `threads` threads (0: one per core). Later calls get the same
    /// pool whatever they ask for.
    pub fn shared(threads: usize) -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = match threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            };
            Pool::new(threads).expect("the CPU pool's threads start")
        })
    }

    /// How many threads the pool has.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job`, on `input_bytes` of input, and waits for its answer
    /// without holding an async thread: a job on at most [`SMALL_INPUT`]
    /// bytes runs where it is called, any other on a pool thread.
    pub async fn run_sized<T, F>(&self, input_bytes: u64, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if input_bytes <= SMALL_INPUT {
            return guarded(job);
        }
        self.run(job).await
    }

    /// Runs `job` on a pool thread and waits for its answer without
    /// holding an async thread.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (its attempt timed out): nothing to
            // tell then.
            let _ = answer.send(guarded(job));
        });
        let jobs = self.jobs.clone();
        // A full queue blocks the sender: wait for room off the async
        // threads.
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|_| PoolError::Stopped)?
                    .map_err(|_| PoolError::Stopped)?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        answered.await.map_err(|_| PoolError::Stopped)?
    }
}

/// Inputs up to this size are worked on where the job is asked for. The
/// rules take tens of microseconds on a few kilobytes, less than handing
/// the job to a pool thread and waking the caller again (two thread
/// switches, which on two cores were most of a small document's cost);
/// the runtime's threads are fixed too, so the regex caches they add are
/// bounded, and by inputs this small.
pub const SMALL_INPUT: u64 = 16 * 1024;

/// `job`'s answer, or its panic as an error.
fn guarded<T>(job: impl FnOnce() -> T) -> Result<T, PoolError> {
    catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        PoolError::Panicked(message)
    })
}

/// A pool thread: takes the next job until the pool is dropped.
fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            // A job never runs while the lock is held, so it cannot be
            // poisoned by one; end the thread if it somehow is.
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn jobs_run_on_the_pools_own_threads_and_no_others() {
        let pool = Pool::new(2).unwrap();
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for _ in 0..20 {
            let (name, id) = pool
                .run(|| {
                    let me = std::thread::current();
                    (me.name().map(str::to_string), me.id())
                })
                .await
                .unwrap();
            names.insert(name.unwrap());
            ids.insert(id);
        }
        assert!(ids.len() <= 2, "{ids:?}");
        assert!(
            names.iter().all(|n| n.starts_with("tenderflow-cpu-")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_job_on_a_small_input_runs_where_it_is_asked_for_a_larger_one_on_the_pool() {
        let pool = Pool::new(1).unwrap();
        let name = || std::thread::current().name().map(str::to_string);
        let here = name();
        assert_eq!(pool.run_sized(SMALL_INPUT, name).await.unwrap(), here);
        let there = pool.run_sized(SMALL_INPUT + 1, name).await.unwrap();
        assert_eq!(there.as_deref(), Some("tenderflow-cpu-0"));
        // A small job's panic is an error too, not the caller's panic.
        let err = pool
            .run_sized(10, || -> u32 { panic!("bad rule") })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PoolError::Panicked(m) if m == "bad rule"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let pool = Pool::new(1).unwrap();
        let err = pool
            .run(|| -> u32 { panic!("bad rule") })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PoolError::Panicked(m) if m == "bad rule"),
            "{err}"
        );
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn jobs_beyond_the_threads_wait_and_all_finish() {
        let pool = Arc::new(Pool::new(2).unwrap());
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..8 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            handles.push(tokio::spawn(async move {
                pool.run(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, SeqCst);
                    i
                })
                .await
                .unwrap()
            }));
        }
        let mut done = Vec::new();
        for h in handles {
            done.push(h.await.unwrap());
        }
        done.sort();
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
