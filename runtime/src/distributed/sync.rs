//! What keeps the replicas of a run one model: rank 0's weights, optimizer state and progress
//! broadcast to every rank at the start (fresh, from `--weights` or from a checkpoint, which only
//! rank 0 reads), the sums behind each batch's and each validation's metrics, and a check at the
//! end that every rank holds the same weights, bit for bit.

use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;
use crate::metrics::Tally;
use crate::progress::Progress;

use super::Collective;

/// Whether backend `B` computes in double precision (the all-reduce then sums doubles).
pub fn is_f64<B: KernelBackend>() -> bool {
    std::mem::size_of::<B::FloatElem>() == 8
}

/// Rank 0's parameters, optimizer state and step count on every rank.
pub fn broadcast_state<B: KernelBackend>(
    exec: &mut Executor<B>,
    world: &dyn Collective,
) -> Result<(), RunError> {
    if world.size() == 1 {
        return Ok(());
    }
    for (name, _) in exec.persistent_names() {
        let missing = || RunError::Internal(format!("no persistent value `{name}`"));
        if is_f64::<B>() {
            let mut values = exec.persistent_values_f64(&name).ok_or_else(missing)??;
            world.broadcast_f64(&mut values);
            exec.set_persistent(&name, values)?;
        } else {
            let mut values = exec.persistent_values(&name).ok_or_else(missing)??;
            world.broadcast_f32(&mut values);
            exec.set_persistent(&name, values)?;
        }
    }
    let mut steps = exec.steps_done.to_le_bytes().to_vec();
    world.broadcast_bytes(&mut steps);
    let steps: [u8; 8] = steps.try_into().map_err(|_| RunError::Internal("a broadcast step count".into()))?;
    exec.steps_done = u64::from_le_bytes(steps);
    Ok(())
}

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

/// A CRC-32 of every parameter and state tensor, checked equal on every rank: `Ok(crc)` when all
/// ranks hold the same weights, else an error naming how many ranks differ from rank 0.
pub fn check_identical<B: KernelBackend>(
    exec: &Executor<B>,
    world: &dyn Collective,
) -> Result<u32, RunError> {
    let mut crc = crc32fast::Hasher::new();
    for (name, _) in exec.persistent_names() {
        let missing = || RunError::Internal(format!("no persistent value `{name}`"));
        for v in exec.persistent_values_f64(&name).ok_or_else(missing)?? {
            crc.update(&v.to_le_bytes());
        }
    }
    let mine = crc.finalize();
    let mut rank0 = mine.to_le_bytes().to_vec();
    world.broadcast_bytes(&mut rank0);
    let mut differ = [f64::from(u8::from(rank0 != mine.to_le_bytes()))];
    world.all_reduce_sum_f64(&mut differ);
    if differ[0] > 0.0 {
        return Err(RunError::Internal(format!(
            "the replicas diverged: {} of {} ranks hold weights that differ from rank 0's",
            differ[0],
            world.size()
        )));
    }
    Ok(mine)
}
