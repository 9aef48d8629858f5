//! Parameter initialisation, deterministic from the graph's seed and each parameter's name, so that
//! a parameter's values do not change when others are added.

use alexir::catalog::Param;
use alexir::ir::Init;

/// SplitMix64: a small, fast, well-distributed generator; enough for initialisation and masks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for a stream named by `parts` under `seed`.
    pub fn for_stream(seed: u64, parts: &[&[u8]]) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed; // FNV-1a over the parts
        for p in parts {
            for b in *p {
                h ^= *b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        Rng(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }
}

/// The initial values of `param`, named `name`, under the graph's `seed`.
pub fn init_values(param: &Param, name: &str, seed: u64) -> Vec<f32> {
    let n: usize = param.shape.iter().product();
    let mut rng = Rng::for_stream(seed, &[b"init", name.as_bytes()]);
    match param.init {
        Init::Constant(c) => vec![c as f32; n],
        Init::Normal { mean, std } => (0..n).map(|_| (mean + std * rng.normal()) as f32).collect(),
        Init::Uniform { low, high } => (0..n).map(|_| (low + (high - low) * rng.uniform()) as f32).collect(),
        Init::KaimingUniform => {
            let bound = 1.0 / (param.fan_in.max(1) as f64).sqrt();
            (0..n).map(|_| (-bound + 2.0 * bound * rng.uniform()) as f32).collect()
        }
    }
}
