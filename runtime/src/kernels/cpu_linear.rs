//! The CPU's fully connected layer: the forward product `y = x W^T`, the data gradient
//! `dx = dy W` and the weight gradient `dW = dy^T x`, for a weight stored `out x in` (as PyTorch
//! stores it), on row-major slices in `f32` or `f64`, with the `gemm` crate's AVX-512 kernels.
//!
//! Each product is handed to gemm in the layout it runs fastest at AlexNet's shapes, where the
//! batch is far smaller than the layer (fc6 at batch 16 is `16 x 9216` by `9216 x 4096`), measured
//! by `cargo bench -p alexrt --bench linear`: the forward as `y^T = W x^T` (the weight read in
//! place as the left operand, in [`ROW_TASKS`] runs of output rows), the weight gradient with
//! `dy^T` as a column-major view rather than a copy. The runs do not depend on the thread count,
//! and gemm's own threads split the other two products by output tiles, never along a sum: each
//! product is the same bits on any pool. A product of burn's `matmul` on the same tensors
//! (the default for other backends) packs the weight on every call and runs several times slower.

use rayon::prelude::*;

use super::cpu_conv::{matmul, matmul_on, ConvElement, MatRef, Threads};

/// The runs of output rows the forward product is split into: a fixed number, not the thread
/// count, since the rows one matrix product takes decide how gemm blocks its sums. Each run packs
/// `x^T` again, which at batch 128 costs more than the runs gain: against one run per thread on
/// two cores (one process, alternated), 8 runs took fc6 and fc7 1.12-1.17x and fc8 2x as long
/// at batch 128; 4 runs 1.03x, 0.97x and 1.27x (fc8: 1.7 ms), and 0.94-1.06x at batch 16.
const ROW_TASKS: usize = 4;

/// A fully connected layer's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// Slices whose lengths do not fit the shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} of {got} values where {shape:?} needs {want}")]
pub struct LinearError {
    what: &'static str,
    got: usize,
    want: usize,
    shape: LinearShape,
}

impl LinearShape {
    fn check<T>(&self, what: &'static str, v: &[T], rows: usize, cols: usize) -> Result<(), LinearError> {
        let want = rows * cols;
        if v.len() == want {
            Ok(())
        } else {
            Err(LinearError { what, got: v.len(), want, shape: *self })
        }
    }

    /// The weight (`out x in`), or a run of its rows from `first`.
    fn weight_rows<'a, T>(&self, w: &'a [T], first: usize, rows: usize) -> MatRef<'a, T> {
        let i = self.inputs;
        MatRef { data: &w[first * i..(first + rows) * i], rows, cols: i, rs: i, cs: 1 }
    }
}

/// `y = x W^T` (`batch x out`).
pub fn forward<T: ConvElement>(s: &LinearShape, x: &[T], w: &[T]) -> Result<Vec<T>, LinearError> {
    let LinearShape { batch: n, inputs: i, outputs: o } = *s;
    s.check("input", x, n, i)?;
    s.check("weight", w, o, i)?;
    // x^T as a column-major view: element (k, b) at x[b * i + k].
    let x_t = MatRef { data: x, rows: i, cols: n, rs: 1, cs: i };
    let mut y_t = vec![T::zero(); o * n];
    if n > 0 && o > 0 {
        let rows_per_task = o.div_ceil(ROW_TASKS);
        y_t.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(t, chunk)| {
            let rows = chunk.len() / n;
            matmul(chunk, n, false, s.weight_rows(w, t * rows_per_task, rows), x_t);
        });
    }
    let mut y = vec![T::zero(); n * o];
    for (b, row) in y.chunks_mut(o.max(1)).enumerate().take(n) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = y_t[j * n + b];
        }
    }
    Ok(y)
}

/// `dx = dy W` (`batch x in`).
pub fn data_grad<T: ConvElement>(s: &LinearShape, dy: &[T], w: &[T]) -> Result<Vec<T>, LinearError> {
    let LinearShape { batch: n, inputs: i, outputs: o } = *s;
    s.check("output gradient", dy, n, o)?;
    s.check("weight", w, o, i)?;
    let mut dx = vec![T::zero(); n * i];
    let dy_m = MatRef { data: dy, rows: n, cols: o, rs: o, cs: 1 };
    matmul_on(&mut dx, i, false, dy_m, s.weight_rows(w, 0, o), Threads::Pool);
    Ok(dx)
}

/// `dW = dy^T x` (`out x in`).
pub fn weight_grad<T: ConvElement>(s: &LinearShape, x: &[T], dy: &[T]) -> Result<Vec<T>, LinearError> {
    let LinearShape { batch: n, inputs: i, outputs: o } = *s;
    s.check("input", x, n, i)?;
    s.check("output gradient", dy, n, o)?;
    let mut dw = vec![T::zero(); o * i];
    // dy^T as a column-major view: element (j, b) at dy[b * o + j].
    let dy_t = MatRef { data: dy, rows: o, cols: n, rs: 1, cs: o };
    let x_m = MatRef { data: x, rows: n, cols: i, rs: i, cs: 1 };
    matmul_on(&mut dw, i, false, dy_t, x_m, Threads::Pool);
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu_conv::tests::values;

    /// The three products by their definitions, in f64.
    fn naive(s: &LinearShape, x: &[f64], w: &[f64], dy: &[f64]) -> [Vec<f64>; 3] {
        let LinearShape { batch: n, inputs: i, outputs: o } = *s;
        let y = (0..n * o).map(|p| (0..i).map(|k| x[p / o * i + k] * w[p % o * i + k]).sum()).collect();
        let dx = (0..n * i).map(|p| (0..o).map(|j| dy[p / i * o + j] * w[j * i + p % i]).sum()).collect();
        let dw = (0..o * i).map(|p| (0..n).map(|b| dy[b * o + p / i] * x[b * i + p % i]).sum()).collect();
        [y, dx, dw]
    }

    fn assert_close<T: Into<f64> + Copy>(got: &[T], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (p, (g, w)) in got.iter().zip(want).enumerate() {
            let g: f64 = (*g).into();
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{p}]: {g} against {w}");
        }
    }

    #[test]
    fn the_three_products_match_their_definitions_in_f64_and_f32_on_odd_shapes() {
        for (n, i, o) in [(1, 1, 1), (1, 7, 3), (3, 5, 17), (16, 33, 65), (5, 130, 9), (2, 64, 1)] {
            let s = LinearShape { batch: n, inputs: i, outputs: o };
            let (x, w, dy) = (values(n * i, 1), values(o * i, 2), values(n * o, 3));
            let [y, dx, dw] = naive(&s, &x, &w, &dy);
            assert_close(&forward(&s, &x, &w).unwrap(), &y, 1e-12, "y f64");
            assert_close(&data_grad(&s, &dy, &w).unwrap(), &dx, 1e-12, "dx f64");
            assert_close(&weight_grad(&s, &x, &dy).unwrap(), &dw, 1e-12, "dw f64");
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (xf, wf, dyf) = (f(&x), f(&w), f(&dy));
            assert_close(&forward(&s, &xf, &wf).unwrap(), &y, 1e-5, "y f32");
            assert_close(&data_grad(&s, &dyf, &wf).unwrap(), &dx, 1e-5, "dx f32");
            assert_close(&weight_grad(&s, &xf, &dyf).unwrap(), &dw, 1e-5, "dw f32");
        }
    }

    #[test]
    fn the_three_products_give_the_same_bits_on_one_two_and_three_threads() {
        // tiny.ron's fc4 and fc3 at batch 32, and a layer of AlexNet's fc8's width.
        for (n, i, o) in [(32, 64, 10), (32, 1568, 64), (16, 256, 1000)] {
            let s = LinearShape { batch: n, inputs: i, outputs: o };
            let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
            let (x, w, dy) = (f(values(n * i, 1)), f(values(o * i, 2)), f(values(n * o, 3)));
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    [forward(&s, &x, &w), data_grad(&s, &dy, &w), weight_grad(&s, &x, &dy)]
                        .map(|r| r.unwrap().into_iter().map(f32::to_bits).collect::<Vec<u32>>())
                })
            };
            let one = run(1);
            for threads in [2, 3] {
                for (what, (a, b)) in ["y", "dx", "dw"].iter().zip(one.iter().zip(run(threads))) {
                    assert!(*a == b, "{what} of {s:?} differs between 1 and {threads} threads");
                }
            }
        }
    }

    #[test]
    fn slices_of_the_wrong_length_are_refused_naming_the_operand() {
        let s = LinearShape { batch: 2, inputs: 3, outputs: 4 };
        let err = forward(&s, &[0.0f32; 6], &[0.0f32; 11]).unwrap_err();
        assert!(err.to_string().contains("weight of 11 values"), "{err}");
        let err = weight_grad(&s, &[0.0f32; 6], &[0.0f32; 7]).unwrap_err();
        assert!(err.to_string().contains("output gradient of 7 values"), "{err}");
    }
}
