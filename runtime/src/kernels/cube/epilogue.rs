//! Elementwise epilogues, in place on the result they follow: bias (+ ReLU) after a convolution
//! or matrix product; the ReLU mask (and dropout mask) after a gradient producer; and the SGD
//! update. Any rank; each tensor is indexed through its own strides. Values are stored in `E` and
//! computed in `A` (f32 for f16 and bf16 tensors: one rounding per result).

use cubecl::prelude::*;

use super::lrn::relu_of;

/// The memory offset of row-major element `i` of `t`'s shape, through `t`'s strides, and its
/// index along dimension 1 (the channel).
#[cube]
pub fn offset_and_channel<E: CubePrimitive>(t: &Tensor<E>, i: usize) -> (usize, usize) {
    let rank = t.rank();
    let mut rem = i;
    let mut offset = 0;
    let mut channel = 0;
    for k in 0..rank {
        let d = rank - 1 - k;
        let at = rem % t.shape(d);
        rem /= t.shape(d);
        offset += at * t.stride(d);
        if d == 1 {
            channel = at;
        }
    }
    (offset, channel)
}

/// `x <- x + bias[channel]`, then ReLU when `relu`.
#[cube(launch)]
pub fn bias_act_kernel<E: Float, A: Float>(
    x: &mut Tensor<E>,
    bias: &Tensor<E>,
    n: usize,
    #[comptime] relu: bool,
    #[define(E, A)] _dtypes: [StorageType; 2],
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (at, c) = offset_and_channel(x, ABSOLUTE_POS);
    let mut v = A::cast_from(x[at]) + A::cast_from(bias[c * bias.stride(0)]);
    if relu {
        v = relu_of::<A>(v);
    }
    x[at] = E::cast_from(v);
}

/// `dy` through a dropout mask when `masked` (zero where `mask` is false, times `scale` where it
/// is true), then through a ReLU when `relu` (zero where its output `y <= 0`); an argument whose
/// flag is off is a placeholder never read.
#[cube(launch)]
pub fn masked_grad_kernel<E: Float, M: Int, A: Float>(
    dy: &mut Tensor<E>,
    y: &Tensor<E>,
    mask: &Tensor<M>,
    n: usize,
    scale: InputScalar,
    #[comptime] relu: bool,
    #[comptime] masked: bool,
    #[define(E, M, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (at, _) = offset_and_channel(dy, ABSOLUTE_POS);
    let mut g = A::cast_from(dy[at]);
    if masked {
        let (m_at, _) = offset_and_channel(mask, ABSOLUTE_POS);
        if mask[m_at] == M::from_int(0) {
            g = A::from_int(0);
        } else {
            g *= scale.get::<A>();
        }
    }
    if relu {
        let (y_at, _) = offset_and_channel(y, ABSOLUTE_POS);
        if y[y_at] <= E::from_int(0) {
            g = A::from_int(0);
        }
    }
    dy[at] = E::cast_from(g);
}

/// One SGD step in place: `v <- momentum v - rate (g + decay w); w <- w + v`.
#[cube(launch)]
pub fn sgd_update_kernel<E: Float, A: Float>(
    w: &mut Tensor<E>,
    g: &Tensor<E>,
    v: &mut Tensor<E>,
    n: usize,
    momentum: InputScalar,
    rate: InputScalar,
    decay: InputScalar,
    #[define(E, A)] _dtypes: [StorageType; 2],
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (w_at, _) = offset_and_channel(w, ABSOLUTE_POS);
    let (g_at, _) = offset_and_channel(g, ABSOLUTE_POS);
    let (v_at, _) = offset_and_channel(v, ABSOLUTE_POS);
    let wv = A::cast_from(w[w_at]);
    let vv = momentum.get::<A>() * A::cast_from(v[v_at])
        - rate.get::<A>() * (A::cast_from(g[g_at]) + decay.get::<A>() * wv);
    v[v_at] = E::cast_from(vv);
    w[w_at] = E::cast_from(wv + vv);
}
