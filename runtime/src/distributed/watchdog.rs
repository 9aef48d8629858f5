//! The collective timeout: a rank that waits in one collective call longer than
//! `ALEXRT_COLLECTIVE_TIMEOUT` seconds (default 300) says so and exits, and `mpirun` then ends
//! the other ranks. A rank that dies is noticed by `mpirun` itself; this catches one that hangs
//! (or a job whose ranks disagree about what comes next), so that a job never waits for ever.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The seconds a rank waits in one collective before ending the job.
pub fn timeout() -> Duration {
    let secs = std::env::var("ALEXRT_COLLECTIVE_TIMEOUT").ok().and_then(|v| v.parse::<u64>().ok());
    Duration::from_secs(secs.unwrap_or(300).max(1))
}

/// A thread that watches the collective call in progress, if any (a clone watches the same).
#[derive(Clone)]
pub struct Watchdog {
    waiting: Arc<Mutex<Option<(Instant, &'static str)>>>,
}

/// The mark of one collective call in progress; dropping it ends the wait.
pub struct Waiting<'a>(&'a Mutex<Option<(Instant, &'static str)>>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Watchdog {
    /// Starts the watching thread of `rank`.
    pub fn start(rank: usize) -> Self {
        let waiting: Arc<Mutex<Option<(Instant, &'static str)>>> = Arc::default();
        let limit = timeout();
        let watched = Arc::clone(&waiting);
        std::thread::Builder::new()
            .name("alexrt-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = *watched.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((since, what)) = now {
                    if since.elapsed() > limit {
                        super::say_from_rank(rank, &format!(
                            "waited {}s in {what}: another rank has stopped or hangs; ending the job (ALEXRT_COLLECTIVE_TIMEOUT=SECONDS waits longer)",
                            limit.as_secs()
                        ));
                        std::process::exit(3);
                    }
                }
            })
            .ok();
        Watchdog { waiting }
    }

    /// Marks the start of a collective call described by `what`.
    pub fn wait(&self, what: &'static str) -> Waiting<'_> {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), what));
        Waiting(&self.waiting)
    }
}
