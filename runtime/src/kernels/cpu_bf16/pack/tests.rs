//! The vector packing against the scalar loops, bit for bit.
use super::*;

/// Whether this CPU packs by vectors; where it does not, the test says it is skipped (it would
/// compare the scalar loop with itself).
fn vectors_here(operand: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512bw() {
        return true;
    }
    eprintln!("skipped: this CPU has no AVX512BW, so {operand} is packed by the scalar loop alone");
    false
}

/// A `rows x cols` matrix's elements as bf16 bits, and as f32 with every kind of value
/// ([`specials`]) among them.
fn matrices(rows: usize, cols: usize) -> (Vec<u16>, Vec<f32>) {
    let data = (0..rows * cols).map(|i| (i as u16).wrapping_mul(40503) | 1).collect();
    let special = specials();
    let wide = (0..rows * cols)
        .map(|i| if i % 7 == 3 { special[i % special.len()] } else { (i as f32 * 0.61).sin() * 1e3 })
        .collect();
    (data, wide)
}

/// The vector packing of B (where this CPU has it) gives the scalar loop's bits, for rows and
/// columns, on every edge: odd and even slices of k, partial strips, offsets into the matrix.
#[test]
fn packing_b_by_vectors_gives_the_scalar_bits() {
    if !vectors_here("B") {
        return;
    }
    let (rows, cols) = (301, 97);
    let (data, wide) = matrices(rows, cols);
    for (rs, cs) in [(cols, 1), (1, rows)] {
        let m = MatRef { data: &data[..], rows, cols, rs, cs };
        let f = MatRef { data: &wide[..], rows, cols, rs, cs };
        same_packing(m, Operand::Bf16(m));
        same_packing(f, Operand::F32(f));
    }
}

/// f32 values whose rounding each step of `f32_to_bf16_bits` decides: quiet and signalling NaNs
/// (a signalling one would round to infinity, an all-ones one wrap to zero), infinity, ties to
/// even both ways, a subnormal, and a value that rounds up to infinity.
fn specials() -> Vec<f32> {
    vec![
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffff_ffff),
        f32::INFINITY,
        -0.0,
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        f32::MIN_POSITIVE / 3.0,
        f32::MAX,
    ]
}

/// The same for A (rows along k take the vector path; columns the scalar loop), bf16 and f32.
#[test]
fn packing_a_by_vectors_gives_the_scalar_bits() {
    if !vectors_here("A") {
        return;
    }
    let (rows, cols) = (97, 301);
    let (data, wide) = matrices(rows, cols);
    for (rs, cs) in [(cols, 1), (1, rows)] {
        same_packing_a(
            MatRef { data: &data[..], rows, cols, rs, cs },
            MatRef { data: &wide[..], rows, cols, rs, cs },
        );
    }
}

fn same_packing_a(m: MatRef<'_, u16>, f: MatRef<'_, f32>) {
    for (ic, mc) in [(0usize, 12usize), (0, 97), (5, 13), (60, 37), (90, 7)] {
        for (pc, kc) in [(0usize, 256usize), (3, 1), (0, 7), (45, 256), (1, 2), (0, 33), (45, 255), (2, 45)] {
            let len = mc.div_ceil(MR) * kc.div_ceil(2) * MR;
            let (mut want, mut want_f) = (vec![0u32; len], vec![0u32; len]);
            pack_a_of(&mut want, &m, ic, mc, pc, kc);
            pack_a_of(&mut want_f, &f, ic, mc, pc, kc);
            let (mut got, mut got_f) = (vec![0xdead_beef; len + 16], vec![0xdead_beef; len + 16]);
            pack_a(&mut got, &Operand::Bf16(m), ic, mc, pc, kc);
            pack_a(&mut got_f, &Operand::F32(f), ic, mc, pc, kc);
            assert_eq!(&got[..len], &want[..], "bf16 rs {}: rows {ic}+{mc}, k {pc}+{kc}", m.rs);
            assert_eq!(&got_f[..len], &want_f[..], "f32 rs {}: rows {ic}+{mc}, k {pc}+{kc}", m.rs);
            assert!(got[len..].iter().all(|&x| x == 0xdead_beef), "written past the block");
        }
    }
}

fn same_packing<T: Element>(m: MatRef<'_, T>, operand: Operand<'_>) {
    for (pc, kc) in [(0usize, 256usize), (3, 1), (0, 7), (45, 256), (1, 2), (45, 255), (2, 45)] {
        for (jc, nc) in [(0usize, 32usize), (0, 97), (5, 17), (64, 33), (90, 7)] {
            let len = nc.div_ceil(NR) * kc.div_ceil(2) * 2 * NR;
            let mut want = vec![0u16; len];
            pack_b_of(&mut want, &m, pc, kc, jc, nc);
            // Stale values in the buffer, as a thread's kept buffer has.
            let mut got = vec![0xdead; len + 64];
            pack_b(&mut got, &operand, pc, kc, jc, nc);
            assert_eq!(&got[..len], &want[..], "rs {} cs {}: k {pc}+{kc}, columns {jc}+{nc}", m.rs, m.cs);
        }
    }
}
