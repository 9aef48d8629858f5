//! The bf16 engine against the f64 definitions on the same bf16-rounded inputs: the products are
//! summed in f32 (relative error about 1e-6 of the largest term), the outputs rounded once to bf16
//! (2^-9 relative): tolerance 5e-3 of the largest output. The weight gradient, which stays f32,
//! to 1e-4. Its bits do not depend on the number of threads.

use super::conv::{self, Weight};
use super::convert::{bf16_bits_to_f32, f32_to_bf16_bits};
use super::gemm::{gemm, has_avx512_bf16, Operand};
use super::linear;
use crate::kernels::cpu_conv::tests::{
    naive_data_grad, naive_forward, naive_weight_grad, odd_shapes, relative_error, values,
};
use crate::kernels::cpu_conv::MatRef;

fn bf16(v: &[f64]) -> Vec<u16> {
    v.iter().map(|&x| f32_to_bf16_bits(x as f32)).collect()
}

fn widened(v: &[u16]) -> Vec<f64> {
    v.iter().map(|&b| f64::from(bf16_bits_to_f32(b))).collect()
}

#[test]
fn rounding_to_bf16_is_to_nearest_even_and_keeps_nans() {
    assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even, 1.
    assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even, 1 + 2^-6.
    assert_eq!(f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    assert_eq!(bf16_bits_to_f32(f32_to_bf16_bits(f32::INFINITY)), f32::INFINITY);
}

#[test]
fn the_product_sums_bf16_pairs_in_f32_on_every_edge_of_its_blocks() {
    for &(m, n, k) in
        &[(1, 1, 1), (12, 32, 2), (13, 33, 3), (7, 70, 255), (30, 9, 257), (150, 520, 600), (5, 3, 1)]
    {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let (ab, bb) = (bf16(&a), bf16(&b));
        let mut want = vec![0f64; m * n];
        let mut scale = vec![0f64; m * n];
        let (aw, bw) = (widened(&ab), widened(&bb));
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    want[i * n + j] += aw[i * k + p] * bw[p * n + j];
                    scale[i * n + j] += (aw[i * k + p] * bw[p * n + j]).abs();
                }
            }
        }
        // Each operand as f32 (rounded as it is packed) or bf16, stored by rows or transposed
        // (each layout has its own packing); then accumulated onto itself.
        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let (a32t, abt, b32t, bbt) =
            (transpose(&a32, m, k), transpose(&ab, m, k), transpose(&b32, k, n), transpose(&bb, k, n));
        for layout in 0..16 {
            let (a_f32, a_t, b_f32, b_t) =
                (layout & 1 != 0, layout & 2 != 0, layout & 4 != 0, layout & 8 != 0);
            let ao = match (a_f32, a_t) {
                (true, false) => Operand::F32(MatRef { data: &a32, rows: m, cols: k, rs: k, cs: 1 }),
                (true, true) => Operand::F32(MatRef { data: &a32t, rows: m, cols: k, rs: 1, cs: m }),
                (false, false) => Operand::Bf16(MatRef { data: &ab, rows: m, cols: k, rs: k, cs: 1 }),
                (false, true) => Operand::Bf16(MatRef { data: &abt, rows: m, cols: k, rs: 1, cs: m }),
            };
            let bo = match (b_f32, b_t) {
                (true, false) => Operand::F32(MatRef { data: &b32, rows: k, cols: n, rs: n, cs: 1 }),
                (true, true) => Operand::F32(MatRef { data: &b32t, rows: k, cols: n, rs: 1, cs: k }),
                (false, false) => Operand::Bf16(MatRef { data: &bb, rows: k, cols: n, rs: n, cs: 1 }),
                (false, true) => Operand::Bf16(MatRef { data: &bbt, rows: k, cols: n, rs: 1, cs: k }),
            };
            // Whatever `c` held is overwritten (NaN here would show through).
            let mut c = vec![f32::NAN; m * n];
            gemm(&mut c, n, false, ao, bo);
            gemm(&mut c, n, true, ao, bo);
            for i in 0..m * n {
                let err = (f64::from(c[i]) - 2.0 * want[i]).abs();
                assert!(
                    err <= 1e-5 * (2.0 * scale[i] + 1e-30),
                    "{m}x{n}x{k}, layout {layout}: element {i}: {} vs {}",
                    c[i],
                    2.0 * want[i]
                );
            }
        }
    }
    eprintln!("AVX512_BF16: {}", has_avx512_bf16());
}

#[test]
fn bf16_convolutions_match_the_definition_on_odd_shapes() {
    for s in odd_shapes() {
        let (x, w) =
            (values(s.input_dims().iter().product(), 3), values(s.weight_dims().iter().product(), 4));
        let dy = values(s.batch * s.out_channels * s.out_hw()[0] * s.out_hw()[1], 5);
        let bias: Vec<f64> = values(s.out_channels, 6);
        let (xb, wb, dyb) = (bf16(&x), bf16(&w), bf16(&dy));
        let (xw, ww, dyw) = (widened(&xb), widened(&wb), widened(&dyb));
        let w32: Vec<f32> = ww.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = bias.iter().map(|&v| v as f32).collect();
        let b64: Vec<f64> = b32.iter().map(|&v| f64::from(v)).collect();

        let y = widened(&conv::forward(&s, &xb, Weight::F32(&w32), Some(&b32), true));
        let e = relative_error(&y, &naive_forward(&s, &xw, &ww, Some(&b64), true));
        assert!(e < 5e-3, "{s:?}: forward {e}");
        let dx = widened(&conv::data_grad(&s, &dyb, Weight::Bf16(&wb)));
        let e = relative_error(&dx, &naive_data_grad(&s, &dyw, &ww));
        assert!(e < 5e-3, "{s:?}: data gradient {e}");
        let dw: Vec<f64> = conv::weight_grad(&s, &xb, &dyb).iter().map(|&v| f64::from(v)).collect();
        let e = relative_error(&dw, &naive_weight_grad(&s, &xw, &dyw));
        assert!(e < 1e-4, "{s:?}: weight gradient {e}");
    }
}

#[test]
fn bf16_fully_connected_layers_match_the_definition() {
    let (batch, out, inp) = (9, 300, 530);
    let (x, w, dy) = (bf16(&values(batch * inp, 7)), values(out * inp, 8), bf16(&values(batch * out, 9)));
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let (xw, ww, dyw) = (widened(&x), widened(&bf16(&w)), widened(&dy));
    let mut want_y = vec![0f64; batch * out];
    let mut want_dx = vec![0f64; batch * inp];
    let mut want_dw = vec![0f64; out * inp];
    for b in 0..batch {
        for o in 0..out {
            for i in 0..inp {
                want_y[b * out + o] += xw[b * inp + i] * ww[o * inp + i];
                want_dx[b * inp + i] += dyw[b * out + o] * ww[o * inp + i];
                want_dw[o * inp + i] += dyw[b * out + o] * xw[b * inp + i];
            }
        }
    }
    let y = widened(&linear::forward(&x, batch, Weight::F32(&w32), out, inp, None, false));
    assert!(relative_error(&y, &want_y) < 5e-3);
    let dx = widened(&linear::data_grad(&dy, batch, Weight::F32(&w32), out, inp));
    assert!(relative_error(&dx, &want_dx) < 5e-3);
    let dw: Vec<f64> = linear::weight_grad(&x, &dy, batch, out, inp).iter().map(|&v| f64::from(v)).collect();
    assert!(relative_error(&dw, &want_dw) < 1e-4);
}

#[test]
fn the_weight_gradients_bits_do_not_depend_on_the_thread_count() {
    let s = odd_shapes().into_iter().max_by_key(|s| s.batch).unwrap();
    let x = bf16(&values(s.input_dims().iter().product(), 10));
    let dy = bf16(&values(s.batch * s.out_channels * s.out_hw()[0] * s.out_hw()[1], 11));
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
        pool.install(|| {
            (
                bits(conv::weight_grad(&s, &x, &dy)),
                bits(linear::weight_grad(&x[..8 * 100], &dy[..8 * 30], 8, 30, 100)),
            )
        })
    };
    let one = on(1);
    for threads in [2, 3] {
        assert!(on(threads) == one, "{threads} threads give other bits than one");
    }
}

/// `v` (`rows x cols`, row-major) stored by columns.
fn transpose<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..rows * cols).map(|t| v[(t % rows) * cols + t / rows]).collect()
}
