//! Running a plan placed on several devices (`alexc compile --devices 2`): the ops the placement
//! pass adds — transfers between devices and from the host (the input batch), and the zero
//! padding that is a slice's gradient — and
//! the check that a run was given as many devices as its plan is placed on.
//!
//! A transfer copies through the host (`into_data` on the source device, `from_data` on the
//! destination): burn 0.21's `to_device` is unimplemented on wgpu, and a host round trip works on
//! every backend. The interpreter issues both devices' nodes in the plan's one schedule from one
//! thread; on CubeCL devices (wgpu, CUDA) launches are asynchronous, so each device works through
//! its queue while the host issues the other's, and the two wait for each other only where a
//! transfer reads a value back. On the CPU (`--device cpu,cpu`, two Flex devices sharing the
//! process's thread pool) the nodes run one after another: the form is for testing a placed plan
//! exactly, not for speed.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::RunError;
use crate::value::Value;
use crate::with_float;

/// `value` copied to `device` through the host, whatever its kind and rank.
pub fn transfer<B: Backend>(value: &Value<B>, device: &B::Device) -> Result<Value<B>, RunError> {
    let dims = value.dims();
    let n: usize = dims.iter().product();
    let flat = value.reshape(&[n])?;
    let moved: Value<B> = match &flat {
        Value::Float(_) => {
            // In its own element type (a bf16 activation stays bf16), not the device's default.
            let t = flat.float::<1>()?;
            let dtype = t.dtype();
            Tensor::<B, 1>::from_data(t.into_data(), (device, dtype)).into()
        }
        Value::Int(_) => Tensor::<B, 1, Int>::from_data(flat.int::<1>()?.into_data(), device).into(),
        Value::Mask(_) => Tensor::<B, 1, Bool>::from_data(flat.mask::<1>()?.into_data(), device).into(),
    };
    moved.into_shape(&dims)
}

/// The input batch, which a placed plan holds on the host ([`alexir::ir::HOST`]), uploaded to
/// `device`: a transfer from the host, run once for the forward pass and again for the backward
/// pass (conv1's weight gradient) rather than held on the device in between.
pub fn upload<B: Backend>(images: &TensorData, device: &B::Device) -> Value<B> {
    Tensor::<B, 4>::from_data(images.clone(), device).into()
}

/// `value` with `before` zeros ahead of it and `after` behind it along dimension `dim`.
pub fn pad<B: Backend>(
    value: &Value<B>,
    dim: usize,
    before: usize,
    after: usize,
) -> Result<Value<B>, RunError> {
    Ok(with_float!(value, |x| {
        let zeros = |len: usize| {
            let mut dims = x.dims();
            dims[dim] = len;
            Tensor::zeros(dims, &x.device())
        };
        let mut parts = Vec::with_capacity(3);
        if before > 0 {
            parts.push(zeros(before));
        }
        parts.push(x.clone());
        if after > 0 {
            parts.push(zeros(after));
        }
        Tensor::cat(parts, dim)
    }))
}

/// Checks that a run of a plan placed on `placed` devices was given as many.
pub fn check_device_count(placed: u8, given: usize) -> Result<(), RunError> {
    if usize::from(placed) == given {
        return Ok(());
    }
    Err(RunError::Input(if placed > 1 {
        format!(
            "the plan is placed on {placed} devices (alexc --devices {placed}) but the run was given {given}; \
             only `alexrt train` runs a placed plan: pass it {placed} devices (--device cpu,cpu or \
             --device cuda:0,cuda:1); for eval, infer and bench, compile the plan without --devices"
        )
    } else {
        format!(
            "the plan runs on one device but the run was given {given}; compile it with \
             `alexc compile --devices {given}` to place it on several, or pass one --device"
        )
    }))
}
