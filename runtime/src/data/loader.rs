//! The loader: batches are decoded and augmented on worker threads, up to `prefetch` batches
//! ahead of the training loop, and handed over in order. Augmentation is seeded per sample from
//! the epoch's seed and the sample's index, so the batches are the same whatever the thread count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use super::Dataset;
use crate::exec::Batch;
use crate::init::Rng;

/// The shuffled sample order of one epoch, in full batches of `batch` (the plan's batch size is
/// fixed; the remainder waits for a later epoch's shuffle).
pub fn epoch_order(len: usize, batch: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = Rng::for_stream(seed, &[b"shuffle", &(epoch as u64).to_le_bytes()]);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order.chunks_exact(batch).map(|c| c.to_vec()).collect()
}

/// How batches are made.
#[derive(Debug, Clone, Copy)]
pub struct Loader {
    /// Decoding threads.
    pub workers: usize,
    /// Batches made ahead of the consumer.
    pub prefetch: usize,
}

impl Default for Loader {
    fn default() -> Self {
        Loader { workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2), prefetch: 4 }
    }
}

/// A batch and the samples that could not be read (left out of it).
pub struct Loaded {
    pub index: usize,
    pub batch: Batch,
    pub failed: Vec<(usize, String)>,
}

impl Loader {
    /// Calls `f` on each batch of `batches`, in order, while workers prepare the next ones.
    /// `augment` seeds the training augmentation (`None`: test-time preprocessing). Stops at the
    /// first error `f` returns.
    pub fn run<E: Send>(
        &self,
        data: &dyn Dataset,
        batches: &[Vec<usize>],
        augment: Option<u64>,
        mut f: impl FnMut(Loaded) -> Result<(), E>,
    ) -> Result<(), E> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let consumed = Mutex::new(0usize);
        let room = Condvar::new();
        let (tx, rx) = mpsc::channel::<Loaded>();
        /// Stops the workers when the consumer finishes, fails or panics: set under the lock
        /// the workers wait with, so that no wakeup is lost.
        struct StopGuard<'a>(&'a AtomicBool, &'a Mutex<usize>, &'a Condvar);
        impl Drop for StopGuard<'_> {
            fn drop(&mut self) {
                let _held = self.1.lock().unwrap_or_else(|e| e.into_inner());
                self.0.store(true, Ordering::SeqCst);
                self.2.notify_all();
            }
        }
        std::thread::scope(|s| {
            for _ in 0..self.workers.max(1) {
                let tx = tx.clone();
                let (next, stop, consumed, room) = (&next, &stop, &consumed, &room);
                s.spawn(move || loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    if b >= batches.len() || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    {
                        let mut done = consumed.lock().unwrap_or_else(|e| e.into_inner());
                        while b >= *done + self.prefetch.max(1) && !stop.load(Ordering::SeqCst) {
                            done = room.wait(done).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (batch, failed) = data.batch(&batches[b], augment);
                    if tx.send(Loaded { index: b, batch, failed }).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let _guard = StopGuard(&stop, &consumed, &room);
            let mut pending = BTreeMap::new();
            let mut want = 0;
            let mut result = Ok(());
            for loaded in rx.iter() {
                pending.insert(loaded.index, loaded);
                while let Some(l) = pending.remove(&want) {
                    want += 1;
                    *consumed.lock().unwrap_or_else(|e| e.into_inner()) = want;
                    room.notify_all();
                    if let Err(e) = f(l) {
                        result = Err(e);
                        break;
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            result
        })
    }
}
