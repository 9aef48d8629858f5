//! The CPU convolution engine: a grouped, strided, padded 2-D convolution, its data gradient and
//! its weight gradient on NCHW slices, in `f32` or `f64`, by an algorithm chosen per call.
//!
//! - [`ConvAlgo::Im2colGemm`] ([`im2col_gemm`]): each image (or, where one image's output plane is
//!   small, several images side by side) lowered to a column matrix ([`lowering`]) and multiplied
//!   by the weight with the `gemm` crate's AVX-512 kernels ([`matmul`]). Images run in parallel on
//!   rayon's pool and each matrix product runs on one thread, so no pool nests in another. The
//!   weight gradient sums partial products over runs of images in a fixed order.
//! - [`ConvAlgo::Winograd`] ([`winograd`]): F(2x2, 3x3) for 3x3 stride-1 convolutions, forward and
//!   data gradient (the weight gradient is im2col + gemm's).
//! - [`ConvAlgo::Burn`]: burn's own convolution, which the backend glue runs itself (this module
//!   only says it supports everything).
//!
//! [`supported_algos`] says which algorithms take a given convolution and [`default_algo`] which
//! one runs when a plan names none. The bias and ReLU of a fused convolution are applied as the
//! output is written.

mod im2col_gemm;
mod lowering;
mod matmul;
#[cfg(test)]
pub(crate) mod tests;
mod winograd;

use alexir::catalog::ConvAttrs;
pub use alexir::catalog::{ConvAlgo, ConvPass};

pub(crate) use im2col_gemm::Dims as ConvDims;
pub(crate) use lowering::col2im;
pub use matmul::ConvElement;
pub(crate) use matmul::{matmul, matmul_on, MatRef, Threads};

/// The fewest tasks the engine splits a batch into, where its images allow.
const MIN_TASKS: usize = 4;

/// How many images one task of the engine takes, where `wide_enough` images side by side make a
/// matrix product wide enough to run near the machine's peak: that many, but no more than leave
/// [`MIN_TASKS`] tasks (the four 13x13 runs of 4 images of AlexNet's batch 16 keep two cores
/// busy). It depends on the shape alone, never on the pool's thread count: which images share a
/// product, and so every result's bits, are the same on one thread or sixteen.
fn images_per_task(batch: usize, wide_enough: usize) -> usize {
    wide_enough.min(batch.div_ceil(MIN_TASKS)).max(1)
}

/// Whether `algo` computes `pass` of `shape`: burn takes everything; the engine's algorithms, by
/// the compiler's rule for the attributes, shapes whose sizes make sense.
pub fn supports(algo: ConvAlgo, shape: &ConvShape, pass: ConvPass) -> bool {
    algo == ConvAlgo::Burn || (shape.is_valid() && algo.supports(&shape.attrs(), pass))
}

/// The algorithms that compute `pass` of `shape`, best first.
pub fn supported_algos(shape: &ConvShape, pass: ConvPass) -> Vec<ConvAlgo> {
    ConvAlgo::ALL.into_iter().filter(|a| supports(*a, shape, pass)).collect()
}

/// The algorithm the CPU runs for `pass` of `shape` when the plan names none: the compiler's
/// by-shape choice ([`ConvAlgo::by_shape`]), burn for sizes the engine does not take.
pub fn default_algo(shape: &ConvShape, pass: ConvPass) -> ConvAlgo {
    if shape.is_valid() {
        ConvAlgo::by_shape(&shape.attrs(), pass)
    } else {
        ConvAlgo::Burn
    }
}

/// A convolution's sizes: square kernel, equal stride and padding on both axes, no dilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl ConvShape {
    /// The layer's attributes (no algorithm chosen).
    pub fn attrs(&self) -> ConvAttrs {
        ConvAttrs {
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
            algo: None,
        }
    }

    /// The shape of convolving an `input` of NCHW dims by a layer with attributes `a`.
    pub fn new(a: &ConvAttrs, input: [usize; 4]) -> Self {
        ConvShape {
            batch: input[0],
            in_channels: input[1],
            in_hw: [input[2], input[3]],
            out_channels: a.out_channels,
            kernel: a.kernel,
            stride: a.stride,
            padding: a.padding,
            groups: a.groups,
        }
    }

    /// Whether the sizes describe a convolution with a non-empty output.
    pub fn is_valid(&self) -> bool {
        let fits = |i: usize| i + 2 * self.padding >= self.kernel;
        self.batch > 0
            && self.kernel > 0
            && self.stride > 0
            && self.groups > 0
            && self.in_channels > 0
            && self.in_channels.is_multiple_of(self.groups)
            && self.out_channels > 0
            && self.out_channels.is_multiple_of(self.groups)
            && fits(self.in_hw[0])
            && fits(self.in_hw[1])
    }

    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        let o = |i: usize| (i + 2 * self.padding - self.kernel) / self.stride + 1;
        [o(self.in_hw[0]), o(self.in_hw[1])]
    }

    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_hw[0], self.in_hw[1]]
    }

    pub fn output_dims(&self) -> [usize; 4] {
        let [oh, ow] = self.out_hw();
        [self.batch, self.out_channels, oh, ow]
    }

    pub fn weight_dims(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels / self.groups, self.kernel, self.kernel]
    }

    /// Floating-point operations of one pass (each the same: two per multiply-add).
    pub fn flops(&self) -> f64 {
        let [oh, ow] = self.out_hw();
        let per_output = (self.in_channels / self.groups * self.kernel * self.kernel) as f64;
        2.0 * (self.batch * self.out_channels * oh * ow) as f64 * per_output
    }
}

/// Why the engine did not run a convolution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    #[error("{algo:?} does not compute the {} of {shape:?}; ask `supported_algos` first", pass.name())]
    Unsupported { algo: ConvAlgo, pass: ConvPass, shape: ConvShape },
    #[error("a {what} of {got} values where {shape:?} needs {want}; pass NCHW tensors of the shape's dims")]
    WrongLength { what: &'static str, got: usize, want: usize, shape: ConvShape },
}

fn check_len<T>(what: &'static str, v: &[T], want: usize, shape: &ConvShape) -> Result<(), ConvError> {
    if v.len() == want {
        Ok(())
    } else {
        Err(ConvError::WrongLength { what, got: v.len(), want, shape: *shape })
    }
}

fn engine_algo(algo: ConvAlgo, shape: &ConvShape, pass: ConvPass) -> Result<(), ConvError> {
    if algo != ConvAlgo::Burn && supports(algo, shape, pass) {
        Ok(())
    } else {
        Err(ConvError::Unsupported { algo, pass, shape: *shape })
    }
}

/// `relu(conv(x, w) + bias)` (each part when asked), NCHW.
pub fn forward<T: ConvElement>(
    algo: ConvAlgo,
    shape: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Result<Vec<T>, ConvError> {
    engine_algo(algo, shape, ConvPass::Forward)?;
    check_len("input", x, shape.input_dims().iter().product(), shape)?;
    check_len("weight", w, shape.weight_dims().iter().product(), shape)?;
    if let Some(b) = bias {
        check_len("bias", b, shape.out_channels, shape)?;
    }
    Ok(match algo {
        ConvAlgo::Winograd => winograd::forward(shape, x, w, bias, relu),
        _ => im2col_gemm::forward(shape, x, w, bias, relu),
    })
}

/// The input gradient `dx` (NCHW, the input's dims) from the output gradient `dy` and the weight.
pub fn data_grad<T: ConvElement>(
    algo: ConvAlgo,
    shape: &ConvShape,
    dy: &[T],
    w: &[T],
) -> Result<Vec<T>, ConvError> {
    engine_algo(algo, shape, ConvPass::DataGrad)?;
    check_len("output gradient", dy, shape.output_dims().iter().product(), shape)?;
    check_len("weight", w, shape.weight_dims().iter().product(), shape)?;
    Ok(match algo {
        ConvAlgo::Winograd => winograd::data_grad(shape, dy, w),
        _ => im2col_gemm::data_grad(shape, dy, w),
    })
}

/// The weight gradient `dw` (the weight's dims) from the input `x` and the output gradient `dy`.
pub fn weight_grad<T: ConvElement>(
    algo: ConvAlgo,
    shape: &ConvShape,
    x: &[T],
    dy: &[T],
) -> Result<Vec<T>, ConvError> {
    engine_algo(algo, shape, ConvPass::WeightGrad)?;
    check_len("input", x, shape.input_dims().iter().product(), shape)?;
    check_len("output gradient", dy, shape.output_dims().iter().product(), shape)?;
    Ok(im2col_gemm::weight_grad(shape, x, dy))
}
