//! Giving freed heap memory back to the system during a long run.
//!
//! A run that holds a million customers' state also makes and drops many
//! short-lived allocations (decoded records, feature vectors waiting for the
//! model, predictions on their way to a file) among the long-lived ones, and
//! each customer's held events move to a larger buffer as they grow. glibc's
//! allocator keeps the pages of the chunks freed between long-lived ones:
//! they stay resident, and the peak RSS grows past the live heap.
//! `malloc_trim(0)` hands every whole free page inside the heap back (glibc
//! ≥ 2.8 advises them away, not only the heap's top), and a page is faulted
//! in again only if it is written later.
//!
//! [`Trimmer`] calls it on a thread of its own every interval. Measured on
//! 100,000 customers × 30 days scored (`pulse replay` of a piped
//! `pulse generate --customers 100000 --days 30 --seed 5`, `--score
//! --no-reasons`): peak RSS 398 MB without, 370 MB at one call a second
//! (the default), 361 MB at four, for 2.3 and 4.8 s more system time over
//! ~140 s of CPU; a million customers in docs/MEASUREMENTS.md (goal 5). Where the allocator is not glibc's,
//! there is nothing to call and no thread is started.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Gives the allocator's free pages back to the system now. `true` when
/// memory was released; `false` when there was none to release, or on a
/// platform without `malloc_trim`.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own free lists, under its
        // arena locks; any thread may call it at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Whether [`trim`] can do anything on this platform.
pub const SUPPORTED: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// What a [`Trimmer`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimStats {
    /// Calls made.
    pub calls: u64,
    /// The longest one (it holds the allocator's locks meanwhile).
    pub longest: Duration,
    /// All of them.
    pub total: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    stop: bool,
    stats: TrimStats,
}

/// A thread calling [`trim`] every interval until dropped (or
/// [`Trimmer::stop`]ped).
#[derive(Debug)]
pub struct Trimmer {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Trimmer {
    /// Starts trimming every `every`; `None` when `every` is zero (off) or
    /// the platform has nothing to trim.
    pub fn start(every: Duration) -> Option<Trimmer> {
        if every.is_zero() || !SUPPORTED {
            return None;
        }
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("pulse-trim".into()).spawn(move || {
            let (lock, wake) = &*theirs;
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !state.stop {
                state = wake.wait_timeout(state, every).unwrap_or_else(|e| e.into_inner()).0;
                if state.stop {
                    break;
                }
                // Not under our lock's guard while trimming: `stop`
                // must not wait for a long trim to be asked.
                drop(state);
                let started = Instant::now();
                trim();
                let took = started.elapsed();
                state = lock.lock().unwrap_or_else(|e| e.into_inner());
                state.stats.calls += 1;
                state.stats.total += took;
                state.stats.longest = state.stats.longest.max(took);
            }
        });
        match thread {
            Ok(thread) => Some(Trimmer { shared, thread: Some(thread) }),
            // Not fatal: the run goes on, its freed pages kept.
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the memory trimmer's thread; freed memory stays resident");
                None
            }
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> TrimStats {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// Stops the thread (after the trim under way, if any) and says what it did.
    pub fn stop(mut self) -> TrimStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the memory trimmer's thread panicked");
            }
        }
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        self.halt();
    }
}
