//! The reference kernels against direct evaluation of their formulas, and their backward passes
//! against finite differences in f64: odd sizes, batch 1, fewer channels than the LRN window,
//! padding, and windows whose maximum ties.

use alexrt::init::Rng;
use alexrt::kernels::reference::{
    lrn_backward, lrn_forward, max_pool_backward, max_pool_forward, max_pool_values, pooled,
};
use alexrt::kernels::{LrnParams, PoolParams};

fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal()).collect()
}

const PAPER: LrnParams = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
// Exaggerated so that the normalisation matters in the checks.
const STRONG: LrnParams = LrnParams { size: 3, scale: 0.5, beta: 0.6, k: 1.0 };

/// The paper's formula, evaluated directly, element by element.
fn lrn_direct(x: &[f64], [n, c, h, w]: [usize; 4], p: &LrnParams) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    let half = p.size as isize / 2;
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h * w {
                let mut sum = 0.0;
                for cc in (ch as isize - half)..=(ch as isize + half) {
                    if cc >= 0 && (cc as usize) < c {
                        let v = x[(b * c + cc as usize) * h * w + i];
                        sum += v * v;
                    }
                }
                let at = (b * c + ch) * h * w + i;
                y[at] = x[at] / (p.k + p.scale * sum).powf(p.beta);
            }
        }
    }
    y
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn lrn_forward_matches_the_formula() {
    for (shape, p) in
        [([2, 7, 5, 3], PAPER), ([1, 3, 4, 4], PAPER), ([1, 2, 3, 5], STRONG), ([3, 1, 2, 2], STRONG)]
    {
        let x = random(shape.iter().product(), 1);
        assert_close(&lrn_forward(&x, shape, &p), &lrn_direct(&x, shape, &p), 1e-12, "lrn");
        // And in f32, within f32 precision.
        let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let y32: Vec<f64> = lrn_forward(&x32, shape, &p).iter().map(|v| *v as f64).collect();
        assert_close(&y32, &lrn_direct(&x, shape, &p), 1e-6, "lrn f32");
    }
}

/// Checks `backward(x, dy)` against central differences of `sum(forward(x) * dy)`.
fn check_gradient(x: &[f64], dy: &[f64], forward: impl Fn(&[f64]) -> Vec<f64>, analytic: &[f64], what: &str) {
    let h = 1e-6;
    let objective = |x: &[f64]| forward(x).iter().zip(dy).map(|(a, b)| a * b).sum::<f64>();
    for i in 0..x.len() {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h);
        let err = (numeric - analytic[i]).abs();
        assert!(
            err <= 1e-6 * (1.0 + numeric.abs()),
            "{what}[{i}]: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn lrn_backward_matches_finite_differences() {
    for (shape, p) in
        [([1, 7, 3, 2], PAPER), ([2, 4, 2, 3], STRONG), ([1, 2, 2, 2], STRONG), ([1, 1, 3, 1], STRONG)]
    {
        let n: usize = shape.iter().product();
        let (x, dy) = (random(n, 2), random(n, 3));
        let y = lrn_forward(&x, shape, &p);
        let dx = lrn_backward(&x, &y, &dy, shape, &p);
        check_gradient(&x, &dy, |x| lrn_forward(x, shape, &p), &dx, &format!("lrn {shape:?}"));
    }
}

fn pool_direct(x: &[f64], [n, c, h, w]: [usize; 4], p: &PoolParams) -> Vec<f64> {
    let (oh, ow) = (pooled(h, p), pooled(w, p));
    let mut y = Vec::new();
    for plane in 0..n * c {
        for r in 0..oh {
            for col in 0..ow {
                let mut best = f64::NEG_INFINITY;
                for i in 0..p.kernel {
                    for j in 0..p.kernel {
                        let (ii, jj) = (
                            (r * p.stride + i) as isize - p.padding as isize,
                            (col * p.stride + j) as isize - p.padding as isize,
                        );
                        if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                            best = best.max(x[plane * h * w + ii as usize * w + jj as usize]);
                        }
                    }
                }
                y.push(best);
            }
        }
    }
    y
}

const OVERLAP: PoolParams = PoolParams { kernel: 3, stride: 2, padding: 0 };
const PADDED: PoolParams = PoolParams { kernel: 3, stride: 2, padding: 1 };
const TILED: PoolParams = PoolParams { kernel: 2, stride: 2, padding: 0 };

#[test]
fn max_pool_forward_matches_the_formula_and_argmax_points_at_the_max() {
    for (shape, p) in
        [([2, 3, 7, 7], OVERLAP), ([1, 1, 13, 11], OVERLAP), ([1, 2, 6, 5], PADDED), ([2, 2, 4, 6], TILED)]
    {
        let x = random(shape.iter().product(), 4);
        let (y, arg) = max_pool_forward(&x, shape, &p);
        assert_eq!(y, pool_direct(&x, shape, &p), "{shape:?}");
        let (h, w) = (shape[2], shape[3]);
        let per_plane = pooled(h, &p) * pooled(w, &p);
        for (k, (&v, &a)) in y.iter().zip(&arg).enumerate() {
            assert_eq!(x[(k / per_plane) * h * w + a as usize], v);
        }
    }
}

#[test]
fn ties_go_to_the_first_maximum_in_row_major_order() {
    // A constant plane: every window ties; each picks its top-left element, as PyTorch does.
    let x = vec![1.0f64; 5 * 5];
    let (_, arg) = max_pool_forward(&x, [1, 1, 5, 5], &OVERLAP);
    assert_eq!(arg, vec![0, 2, 10, 12]);
    // The shared border of two windows holds the maximum: both pick the same input, whose
    // gradient is then the sum of both windows' gradients.
    let mut x = vec![0.0f64; 5 * 5];
    x[2] = 5.0; // row 0, column 2: in windows (0,0) and (0,1)
    let (_, arg) = max_pool_forward(&x, [1, 1, 5, 5], &OVERLAP);
    assert_eq!(&arg[..2], &[2, 2]);
    let dx = max_pool_backward(&[1.0, 10.0, 0.0, 0.0], &arg, [5, 5], [2, 2], &OVERLAP);
    assert_eq!(dx[2], 11.0);
}

/// The first maximum of each window in row-major order (NaN beats every number; the first NaN
/// wins), by scanning the window: the definition the separable, vectorised kernel must meet.
fn pool_scan<T: Copy + PartialOrd>(x: &[T], [n, c, h, w]: [usize; 4], p: &PoolParams) -> (Vec<T>, Vec<i32>) {
    let (oh, ow) = (pooled(h, p), pooled(w, p));
    let (mut y, mut arg) = (Vec::new(), Vec::new());
    for plane in 0..n * c {
        for r in 0..oh {
            for col in 0..ow {
                let mut best: Option<(T, usize)> = None;
                for i in 0..p.kernel {
                    for j in 0..p.kernel {
                        let ii = (r * p.stride + i) as isize - p.padding as isize;
                        let jj = (col * p.stride + j) as isize - p.padding as isize;
                        if ii < 0 || jj < 0 || ii as usize >= h || jj as usize >= w {
                            continue;
                        }
                        let at = ii as usize * w + jj as usize;
                        let v = x[plane * h * w + at];
                        #[allow(clippy::eq_op)]
                        let replace = match best {
                            None => true,
                            Some((b, _)) => b == b && (v > b || v != v),
                        };
                        if replace {
                            best = Some((v, at));
                        }
                    }
                }
                let (v, at) = best.expect("a window covers at least one input");
                y.push(v);
                arg.push(at as i32);
            }
        }
    }
    (y, arg)
}

#[test]
fn max_pooling_picks_the_row_major_first_maximum_on_ties_and_nans_in_both_precisions() {
    // Values from a handful of levels (ReLU outputs tie at zero), a few NaNs; odd and even
    // widths, the strides 1, 2 and 3 and padding take the kernel's different paths.
    let params = [
        OVERLAP,
        PADDED,
        TILED,
        PoolParams { kernel: 3, stride: 1, padding: 0 },
        PoolParams { kernel: 3, stride: 3, padding: 0 },
        PoolParams { kernel: 5, stride: 2, padding: 2 },
    ];
    for (case, p) in params.iter().enumerate() {
        for shape in [[2, 3, 11, 13], [1, 2, 55, 55], [1, 1, 6, 7]] {
            let n: usize = shape.iter().product();
            let x64: Vec<f64> = random(n, 40 + case as u64)
                .into_iter()
                .enumerate()
                .map(|(i, v)| if i % 97 == 5 { f64::NAN } else { (v * 2.0).round().max(0.0) })
                .collect();
            let x32: Vec<f32> = x64.iter().map(|v| *v as f32).collect();
            let same =
                |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            let (want_y, want_arg) = pool_scan(&x64, shape, p);
            let (y, arg) = max_pool_forward(&x64, shape, p);
            assert_eq!(arg, want_arg, "f64 argmax, {shape:?} {p:?}");
            assert!(same(&y, &want_y), "f64 maxima, {shape:?} {p:?}");
            assert!(same(&max_pool_values(&x64, shape, p), &want_y), "f64 maxima alone, {shape:?} {p:?}");
            let (y32, arg32) = max_pool_forward(&x32, shape, p);
            assert_eq!(arg32, want_arg, "f32 argmax, {shape:?} {p:?}");
            let y32: Vec<f64> = y32.iter().map(|v| *v as f64).collect();
            assert!(same(&y32, &want_y), "f32 maxima, {shape:?} {p:?}");
            let v32: Vec<f64> = max_pool_values(&x32, shape, p).iter().map(|v| *v as f64).collect();
            assert!(same(&v32, &want_y), "f32 maxima alone, {shape:?} {p:?}");
        }
    }
}

#[test]
fn max_pool_backward_gathers_what_a_scatter_would_add() {
    for (shape, p) in
        [([2, 3, 7, 7], OVERLAP), ([1, 1, 13, 11], OVERLAP), ([1, 2, 6, 5], PADDED), ([1, 1, 4, 4], TILED)]
    {
        let x = random(shape.iter().product(), 5);
        let (_, arg) = max_pool_forward(&x, shape, &p);
        let (h, w) = (shape[2], shape[3]);
        let out = [pooled(h, &p), pooled(w, &p)];
        let dy = random(arg.len(), 6);
        let dx = max_pool_backward(&dy, &arg, [h, w], out, &p);
        let mut scattered = vec![0.0; x.len()];
        let per_plane = out[0] * out[1];
        for (k, &a) in arg.iter().enumerate() {
            scattered[(k / per_plane) * h * w + a as usize] += dy[k];
        }
        assert_close(&dx, &scattered, 1e-12, &format!("pool {shape:?}"));
        // Random inputs have no ties, so finite differences agree too.
        let forward = |x: &[f64]| max_pool_forward(x, shape, &p).0;
        check_gradient(&x, &dy, forward, &dx, &format!("pool fd {shape:?}"));
    }
}

/// The check the GPU script runs, on the CPU backend with every part on (grouped convolutions
/// against their split included): it completes, reports each part, and finds no error.
#[test]
fn the_kernel_check_runs_whole_on_the_cpu() {
    let options = alexrt::check::CheckOptions { batch: 1, steps: 1, conv: true };
    let (report, verdict) = alexrt::check::check_kernels::<alexrt::Cpu>(&options, &Default::default());
    assert!(verdict.is_ok(), "{report}");
    assert!(report["worst_error"].as_f64().unwrap() < alexrt::check::TOLERANCE, "{report}");
    for layer in ["conv2", "conv4", "conv5"] {
        let speedup = report["grouped_conv"][layer]["split_speedup"].as_f64().unwrap();
        assert!(speedup.is_finite() && speedup > 0.0, "{report}");
    }
    assert!(report["copy_gbps"].as_f64().unwrap() > 0.0, "{report}");
}
