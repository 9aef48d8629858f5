//! Every engine algorithm against a naive convolution written from the definition, in f64 and
//! f32, on shapes chosen to break index arithmetic: groups, strides larger and smaller than the
//! kernel, padding wider than the kernel, batch 1, non-square planes, odd channel counts, and
//! batches that the engine packs side by side.

use super::*;

/// A shape from batch, input channels, input size, output channels and `[kernel, stride, padding,
/// groups]`.
fn shape(batch: usize, cin: usize, hw: [usize; 2], cout: usize, [k, s, p, g]: [usize; 4]) -> ConvShape {
    ConvShape {
        batch,
        in_channels: cin,
        in_hw: hw,
        out_channels: cout,
        kernel: k,
        stride: s,
        padding: p,
        groups: g,
    }
}

pub(crate) fn odd_shapes() -> Vec<ConvShape> {
    vec![
        shape(1, 3, [7, 5], 4, [3, 1, 1, 1]),
        shape(3, 6, [9, 11], 10, [3, 2, 1, 2]),
        shape(2, 5, [8, 8], 7, [5, 1, 2, 1]),
        shape(5, 4, [13, 13], 6, [3, 1, 1, 2]),
        shape(2, 3, [15, 12], 8, [4, 3, 0, 1]),
        shape(4, 6, [5, 6], 9, [1, 1, 2, 3]),
        shape(3, 2, [10, 7], 4, [2, 3, 1, 2]),
        shape(9, 17, [6, 6], 19, [3, 1, 1, 1]),
        shape(3, 4, [7, 10], 6, [3, 1, 0, 2]),
        shape(2, 5, [5, 4], 3, [3, 1, 2, 1]),
        shape(20, 8, [13, 13], 12, [3, 1, 1, 4]),
        // Column matrices past the forward pass's budget: products of a few output rows, cut
        // across rows (36 wide), and across images laid side by side (380 columns each).
        shape(2, 8, [40, 38], 5, [5, 1, 1, 1]),
        shape(4, 16, [20, 19], 6, [5, 1, 2, 2]),
    ]
}

/// Deterministic values in [-1, 1) (the CPU engine's tests share them).
pub(crate) fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Calls `f(n, co, oy, ox, ci, ky, kx, input index, weight index)` for every multiply-add of the
/// convolution that reads inside the input.
fn each_tap(s: &ConvShape, mut f: impl FnMut([usize; 3], usize, usize)) {
    let [oh, ow] = s.out_hw();
    let [h, w] = s.in_hw;
    let (cg, mg, k) = (s.in_channels / s.groups, s.out_channels / s.groups, s.kernel);
    for n in 0..s.batch {
        for co in 0..s.out_channels {
            let grp = co / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    for c in 0..cg {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                                let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                    continue;
                                }
                                let ci = grp * cg + c;
                                let xi = ((n * s.in_channels + ci) * h + iy as usize) * w + ix as usize;
                                let wi = ((co * cg + c) * k + ky) * k + kx;
                                let yi = ((n * s.out_channels + co) * oh + oy) * ow + ox;
                                f([xi, wi, yi], n, co);
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn naive_forward(
    s: &ConvShape,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    relu: bool,
) -> Vec<f64> {
    let [oh, ow] = s.out_hw();
    let mut y = vec![0.0; s.batch * s.out_channels * oh * ow];
    each_tap(s, |[xi, wi, yi], _, _| y[yi] += x[xi] * w[wi]);
    for (i, v) in y.iter_mut().enumerate() {
        *v += bias.map_or(0.0, |b| b[(i / (oh * ow)) % s.out_channels]);
        if relu {
            *v = v.max(0.0);
        }
    }
    y
}

pub(crate) fn naive_data_grad(s: &ConvShape, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.input_dims().iter().product()];
    each_tap(s, |[xi, wi, yi], _, _| dx[xi] += dy[yi] * w[wi]);
    dx
}

pub(crate) fn naive_weight_grad(s: &ConvShape, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; s.weight_dims().iter().product()];
    each_tap(s, |[xi, wi, yi], _, _| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// The largest difference relative to the largest magnitude of `want`.
pub(crate) fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&v| v as f32).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| v as f64).collect()
}

/// Runs every pass of every engine algorithm on every odd shape, in f64 and f32, against the
/// naive reference.
fn check_all(tol64: f64, tol32: f64) {
    for s in odd_shapes() {
        let x = values(s.input_dims().iter().product(), 1);
        let w = values(s.weight_dims().iter().product(), 2);
        let dy = values(s.output_dims().iter().product(), 3);
        let b = values(s.out_channels, 4);
        let engine = |pass| supported_algos(&s, pass).into_iter().filter(|a| *a != ConvAlgo::Burn);
        for algo in engine(ConvPass::Forward) {
            for (bias, relu) in [(None, false), (Some(&b[..]), false), (Some(&b[..]), true), (None, true)] {
                let want = naive_forward(&s, &x, &w, bias, relu);
                let got = forward(algo, &s, &x, &w, bias, relu).unwrap();
                assert!(relative_error(&got, &want) < tol64, "{algo:?} f64 forward {s:?} bias relu {relu}");
                let b32 = bias.map(to_f32);
                let got = forward(algo, &s, &to_f32(&x), &to_f32(&w), b32.as_deref(), relu).unwrap();
                assert!(relative_error(&to_f64(&got), &want) < tol32, "{algo:?} f32 forward {s:?}");
            }
        }
        for algo in engine(ConvPass::DataGrad) {
            let want = naive_data_grad(&s, &dy, &w);
            let got = data_grad(algo, &s, &dy, &w).unwrap();
            assert!(relative_error(&got, &want) < tol64, "{algo:?} f64 data grad {s:?}");
            let got = data_grad(algo, &s, &to_f32(&dy), &to_f32(&w)).unwrap();
            assert!(relative_error(&to_f64(&got), &want) < tol32, "{algo:?} f32 data grad {s:?}");
        }
        for algo in engine(ConvPass::WeightGrad) {
            let want = naive_weight_grad(&s, &x, &dy);
            let got = weight_grad(algo, &s, &x, &dy).unwrap();
            assert!(relative_error(&got, &want) < tol64, "{algo:?} f64 weight grad {s:?}");
            let got = weight_grad(algo, &s, &to_f32(&x), &to_f32(&dy)).unwrap();
            assert!(relative_error(&to_f64(&got), &want) < tol32, "{algo:?} f32 weight grad {s:?}");
        }
    }
}

#[test]
fn every_engine_algorithm_matches_the_naive_convolution_on_odd_shapes() {
    check_all(1e-12, 1e-5);
}

#[test]
fn the_engine_gives_the_same_answer_on_one_thread() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| check_all(1e-12, 1e-5));
}

#[test]
fn burn_is_not_run_by_the_engine_and_says_so() {
    let s = shape(1, 3, [7, 5], 4, [3, 1, 1, 1]);
    let x = vec![0.0f32; 105];
    let err = forward(ConvAlgo::Burn, &s, &x, &[0.0; 108], None, false).unwrap_err();
    assert!(matches!(err, ConvError::Unsupported { algo: ConvAlgo::Burn, pass: ConvPass::Forward, .. }));
}

#[test]
fn a_tensor_of_the_wrong_length_is_an_error_not_a_panic() {
    let s = shape(1, 3, [7, 5], 4, [3, 1, 1, 1]);
    let err = weight_grad(ConvAlgo::Im2colGemm, &s, &[0.0f64; 104], &[0.0; 140]).unwrap_err();
    assert!(matches!(err, ConvError::WrongLength { what: "input", got: 104, want: 105, .. }));
}

#[test]
fn every_algorithm_is_checked_on_some_shape_for_every_pass_it_claims() {
    for algo in [ConvAlgo::Im2colGemm, ConvAlgo::Winograd] {
        assert!(odd_shapes().iter().any(|s| supports(algo, s, ConvPass::Forward)), "{algo:?}");
        assert!(odd_shapes().iter().any(|s| supports(algo, s, ConvPass::DataGrad)), "{algo:?}");
    }
    assert!(!supports(ConvAlgo::Winograd, &shape(2, 4, [13, 13], 6, [3, 1, 1, 2]), ConvPass::WeightGrad));
    assert!(!supports(ConvAlgo::Winograd, &shape(2, 4, [13, 13], 6, [3, 2, 1, 2]), ConvPass::Forward));
}

#[test]
fn a_kernel_larger_than_the_padded_input_is_supported_by_burn_alone() {
    let s = shape(1, 3, [2, 2], 4, [5, 1, 1, 1]);
    assert_eq!(supported_algos(&s, ConvPass::Forward), vec![ConvAlgo::Burn]);
    assert_eq!(default_algo(&s, ConvPass::WeightGrad), ConvAlgo::Burn);
}

/// Every pass of every engine algorithm in `pool`, in f32, as bits.
fn bits_in(pool: &rayon::ThreadPool, s: &ConvShape) -> Vec<(ConvPass, ConvAlgo, Vec<u32>)> {
    let x = to_f32(&values(s.input_dims().iter().product(), 1));
    let w = to_f32(&values(s.weight_dims().iter().product(), 2));
    let dy = to_f32(&values(s.output_dims().iter().product(), 3));
    let b = to_f32(&values(s.out_channels, 4));
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
    let mut out = Vec::new();
    for pass in ConvPass::ALL {
        for algo in supported_algos(s, pass).into_iter().filter(|a| *a != ConvAlgo::Burn) {
            let got = pool.install(|| match pass {
                ConvPass::Forward => forward(algo, s, &x, &w, Some(&b), true),
                ConvPass::DataGrad => data_grad(algo, s, &dy, &w),
                ConvPass::WeightGrad => weight_grad(algo, s, &x, &dy),
            });
            out.push((pass, algo, bits(got.unwrap())));
        }
    }
    out
}

#[test]
fn every_pass_gives_the_same_bits_on_one_two_and_three_threads() {
    // tiny.ron's two convolutions at batch 32 (16 and 7 tasks of images whose weight gradients
    // are summed), and odd shapes of a few tasks.
    let shapes = [
        shape(32, 3, [31, 31], 16, [5, 1, 2, 1]),
        shape(32, 16, [15, 15], 32, [3, 1, 1, 2]),
        shape(20, 8, [13, 13], 12, [3, 1, 1, 4]),
        shape(9, 17, [6, 6], 19, [3, 1, 1, 1]),
    ];
    let pools: Vec<rayon::ThreadPool> =
        (1..=3).map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()).collect();
    for s in shapes {
        let one = bits_in(&pools[0], &s);
        for (threads, pool) in pools.iter().enumerate().skip(1) {
            for ((pass, algo, want), (_, _, got)) in one.iter().zip(bits_in(pool, &s)) {
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differ,
                    0,
                    "{algo:?} {}: {differ} values differ on {} threads, {s:?}",
                    pass.name(),
                    threads + 1
                );
            }
        }
    }
}

#[test]
fn the_weight_gradient_is_the_same_bits_every_time_on_a_busy_machine() {
    // tiny.ron's conv1 at batch 32 on a pool of 2 threads, while two more threads keep the cores
    // busy: the pool's threads are preempted at random points, so a sum grouped by which thread
    // steals which task would come out in different bits from call to call.
    let s = shape(32, 3, [31, 31], 16, [5, 1, 2, 1]);
    let x = to_f32(&values(s.input_dims().iter().product(), 1));
    let dy = to_f32(&values(s.output_dims().iter().product(), 3));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let gradient = || -> Vec<u32> {
        let dw = pool.install(|| weight_grad(ConvAlgo::Im2colGemm, &s, &x, &dy)).unwrap();
        dw.into_iter().map(f32::to_bits).collect()
    };
    let first = gradient();
    let busy = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut n = 0u64;
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
        }
        let differing = (0..40).filter(|_| gradient() != first).count();
        busy.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(differing, 0, "{differing} of 40 weight gradients differ from the first in some bit");
    });
}
