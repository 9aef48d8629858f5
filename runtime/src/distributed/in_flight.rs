//! Sums across the run's processes that go on while the caller computes: the gradient
//! all-reduce starts a bucket's sum when the schedule reaches it and waits for it only where the
//! bucket's averages are read (the updates), so that the backward pass hides the communication.
//! An engine says how it sums ([`super::Collective::start_sum_f32`]); this is what it hands back.

use crate::error::RunError;

use super::Collective;

/// A sum across ranks in progress: the engine reads the send buffer and writes the receive
/// buffer until it completes, so it holds both until then.
pub trait SumInFlight<E> {
    /// Lets the engine advance (MPI progresses a non-blocking collective only inside its calls);
    /// true once the sums are in.
    fn test(&mut self) -> bool;
    /// Waits for the sums (under the collective timeout) and hands back the send buffer and the
    /// receive buffer, which holds them.
    fn wait(self: Box<Self>) -> Buffers<E>;
}

/// The two host buffers of one sum, reused from step to step.
#[derive(Debug)]
pub struct Buffers<E> {
    pub send: Vec<E>,
    pub recv: Vec<E>,
}

impl<E> Default for Buffers<E> {
    fn default() -> Self {
        Buffers { send: Vec::new(), recv: Vec::new() }
    }
}

/// A sum complete when it was started (the blocking engines', and one process's).
pub struct Done<E>(pub Buffers<E>);

impl<E> SumInFlight<E> for Done<E> {
    fn test(&mut self) -> bool {
        true
    }
    fn wait(self: Box<Self>) -> Buffers<E> {
        self.0
    }
}

/// The float types the engines sum: the device's precision, `f32` or `f64`.
pub trait HostFloat: burn::tensor::Element + Copy + Default + std::ops::Mul<Output = Self> {
    /// `1 / n` in this type (the mean's scale).
    fn reciprocal(n: usize) -> Self;
    /// Starts summing `buffers.send` across the ranks of `world` into `buffers.recv`.
    fn start_sum(
        world: &dyn Collective,
        buffers: Buffers<Self>,
    ) -> Result<Box<dyn SumInFlight<Self>>, RunError>;
}

impl HostFloat for f32 {
    fn reciprocal(n: usize) -> Self {
        1.0 / n as f32
    }
    fn start_sum(
        world: &dyn Collective,
        buffers: Buffers<f32>,
    ) -> Result<Box<dyn SumInFlight<f32>>, RunError> {
        world.start_sum_f32(buffers)
    }
}

impl HostFloat for f64 {
    fn reciprocal(n: usize) -> Self {
        1.0 / n as f64
    }
    fn start_sum(
        world: &dyn Collective,
        buffers: Buffers<f64>,
    ) -> Result<Box<dyn SumInFlight<f64>>, RunError> {
        world.start_sum_f64(buffers)
    }
}

/// The blocking sum behind the default [`Collective::start_sum_f32`]: `recv` gets `send`'s
/// values, summed in place across ranks by `sum_in_place`.
pub fn sum_at_once<E: Copy>(mut buffers: Buffers<E>, sum_in_place: impl FnOnce(&mut [E])) -> Box<Done<E>> {
    buffers.recv.clear();
    buffers.recv.extend_from_slice(&buffers.send);
    sum_in_place(&mut buffers.recv);
    Box::new(Done(buffers))
}
