//! What keeps the replicas of a run in step besides the weights (which the executor broadcasts
//! and checks: `Executor::broadcast_state`, `Executor::check_replicas_identical`): rank 0's
//! progress and run folder on every rank, and the sums behind each batch's and each
//! validation's metrics and its count of unreadable images.

use crate::error::RunError;
use crate::metrics::Tally;
use crate::progress::Progress;

use super::Collective;

/// Rank 0's progress (epoch, step, schedule, records) on every rank.
pub fn broadcast_progress(progress: &mut Progress, world: &dyn Collective) -> Result<(), RunError> {
    if world.size() == 1 {
        return Ok(());
    }
    let mut bytes = serde_json::to_vec(progress)
        .map_err(|e| RunError::Internal(format!("the progress does not serialise: {e}")))?;
    world.broadcast_bytes(&mut bytes);
    *progress = serde_json::from_slice(&bytes)
        .map_err(|e| RunError::Internal(format!("rank 0's progress does not decode: {e}")))?;
    Ok(())
}

/// A string from rank 0 (the run folder it chose) on every rank.
pub fn broadcast_text(text: &str, world: &dyn Collective) -> String {
    let mut bytes = text.as_bytes().to_vec();
    world.broadcast_bytes(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The sums of `tally` over every rank.
pub fn reduce_tally(tally: &Tally, world: &dyn Collective) -> Tally {
    let mut sums = tally.sums();
    world.all_reduce_sum_f64(&mut sums);
    Tally::from_sums(sums)
}

/// The sum of `count` over every rank (every rank calls it at the same point).
pub fn reduce_count(count: usize, world: &dyn Collective) -> usize {
    let mut sum = [count as f64];
    world.all_reduce_sum_f64(&mut sum);
    sum[0] as usize
}
