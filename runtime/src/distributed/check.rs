//! The all-reduce check of the GPU script (`alexrt check-all-reduce`): one bucket of gradients
//! (alexnet's fc7 and fc8 weights and biases, 84 MB) averaged across the run's ranks by the
//! device's own collective (NCCL on CUDA), against the mean computed on the host from every
//! rank's values, and timed next to the host path (copy out, MPI sum, copy back) that the CPU and
//! wgpu take.
//!
//! Each rank fills the bucket with values of its own (a hash of rank, tensor and element), so
//! every rank also knows the others' and computes the expected mean alone. NCCL writes the means
//! into fresh buffers: with one rank (a machine with one GPU), a mean that NCCL did not write
//! would show as a wrong value, not pass as the unchanged input.

use std::time::Instant;

use serde::Serialize;

use super::on_device::all_reduce_mean_on_device;
use super::Collective;
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::value::Value;

/// The gradients of alexnet's last two fully connected layers: fc7's weight and bias, fc8's.
pub const ALEXNET_FC_BUCKET: [&[usize]; 4] = [&[4096, 4096], &[4096], &[1000, 4096], &[1000]];

/// The largest error the device's mean may have against the host's (values lie in [-1, 1]).
pub const TOLERANCE: f64 = 1e-5;

/// What the check found, as `check-all-reduce` prints it (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct AllReduceReport {
    /// The run's engine, in words (rank and size).
    pub world: String,
    pub ranks: usize,
    pub tensors: usize,
    pub bucket_bytes: usize,
    /// The largest absolute difference between the device's means and the host's.
    pub max_abs_error: f64,
    pub tolerance: f64,
    /// The first device all-reduce, which also joins the communicator (NCCL's set-up).
    pub first_ms: f64,
    /// Median of the following device all-reduces of the bucket.
    pub device_ms: f64,
    /// Median of the host path on the same bucket: copy to the host, MPI sum, scale, copy back.
    pub host_ms: f64,
}

/// Rank `rank`'s value at element `i` of tensor `tensor`: in [-1, 1], different for every rank.
pub fn rank_value(rank: usize, tensor: usize, i: usize) -> f32 {
    let mut x = (rank as u64) << 48 ^ (tensor as u64) << 40 ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// The mean over `ranks` ranks of element `i` of tensor `tensor`.
pub fn expected_mean(ranks: usize, tensor: usize, i: usize) -> f32 {
    ((0..ranks).map(|r| f64::from(rank_value(r, tensor, i))).sum::<f64>() / ranks as f64) as f32
}

/// Averages a bucket of `shapes` across `world` on `device`'s own collective `repeats + 1` times,
/// checks the means and times it next to the host path. An error when the backend has no
/// collective on device memory (the CPU, wgpu, `ALEXRT_NCCL=off`) or its means are wrong.
pub fn check_all_reduce<B: KernelBackend>(
    device: &B::Device,
    world: &dyn Collective,
    shapes: &[&[usize]],
    repeats: usize,
) -> Result<AllReduceReport, RunError> {
    let (rank, ranks) = (world.rank(), world.size());
    let bucket = shapes
        .iter()
        .enumerate()
        .map(|(t, shape)| {
            let n: usize = shape.iter().product();
            Value::<B>::from_host((0..n).map(|i| rank_value(rank, t, i)).collect(), shape, device)
        })
        .collect::<Result<Vec<_>, _>>()?;
    bucket.iter().for_each(Value::sync);
    let on_device = || -> Result<Vec<Value<B>>, RunError> {
        all_reduce_mean_on_device(&bucket, world)?.ok_or_else(|| {
            RunError::Input(
                "this device has no all-reduce on device memory: NCCL needs --device cuda, an alexrt built with the `cuda` feature, and ALEXRT_NCCL unset or on".into(),
            )
        })
    };
    let started = Instant::now();
    let means = on_device()?;
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut max_abs_error = 0f64;
    for (t, mean) in means.iter().enumerate() {
        for (i, got) in mean.to_f32_vec()?.into_iter().enumerate() {
            let error = f64::from((got - expected_mean(ranks, t, i)).abs());
            max_abs_error = if error.is_nan() { f64::INFINITY } else { max_abs_error.max(error) };
        }
    }
    let device_ms = median_ms(repeats, || {
        on_device()?.iter().for_each(Value::sync);
        Ok(())
    })?;
    let host_ms = median_ms(repeats, || {
        for (v, shape) in bucket.iter().zip(shapes) {
            let mut host = v.to_f32_vec()?;
            world.all_reduce_sum_f32(&mut host);
            host.iter_mut().for_each(|x| *x /= ranks as f32);
            Value::<B>::from_host(host, shape, device)?.sync();
        }
        Ok(())
    })?;
    let report = AllReduceReport {
        world: world.describe(),
        ranks,
        tensors: shapes.len(),
        bucket_bytes: shapes.iter().map(|s| s.iter().product::<usize>() * 4).sum(),
        max_abs_error,
        tolerance: TOLERANCE,
        first_ms,
        device_ms,
        host_ms,
    };
    Ok(report)
}

/// Median milliseconds of `repeats` runs of `f`.
fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<(), RunError>) -> Result<f64, RunError> {
    let mut times = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::Single;

    #[test]
    fn every_rank_fills_the_bucket_with_values_of_its_own_in_the_unit_range() {
        let values: Vec<f32> = (0..1000).map(|i| rank_value(0, 0, i)).collect();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(values.iter().any(|v| *v < -0.5) && values.iter().any(|v| *v > 0.5));
        let other: Vec<f32> = (0..1000).map(|i| rank_value(1, 0, i)).collect();
        assert_ne!(values, other);
        assert_ne!(rank_value(0, 0, 7), rank_value(0, 1, 7));
    }

    #[test]
    fn the_expected_mean_of_one_rank_is_its_own_value_and_of_two_their_average() {
        assert_eq!(expected_mean(1, 2, 5), rank_value(0, 2, 5));
        let two = (rank_value(0, 2, 5) + rank_value(1, 2, 5)) / 2.0;
        assert!((expected_mean(2, 2, 5) - two).abs() < 1e-7);
    }

    #[test]
    fn the_check_refuses_a_backend_without_a_collective_on_device_memory() {
        let e = check_all_reduce::<crate::Cpu>(&Default::default(), &Single, &[&[3]], 1).unwrap_err();
        assert!(e.to_string().contains("NCCL needs --device cuda"), "{e}");
    }
}
