//! What the benchmarks share: the median time of repeated calls, and numbers from the environment.

use std::time::Instant;

/// The median seconds of `runs` calls of `f` (its result kept from the optimiser).
pub fn median_seconds<R>(runs: usize, mut f: impl FnMut() -> R) -> f64 {
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The number in environment variable `name`, or `default`.
pub fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The layers named on the command line (`cargo bench --bench conv -- conv3`); all when none is.
pub struct LayerFilter(Vec<String>);

impl LayerFilter {
    pub fn wants(&self, layer: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| layer.contains(f.as_str()))
    }
}

/// Criterion set up as every benchmark here runs it (10 samples of about 2 s), the layer filter,
/// and the C allocator tuned as `alexrt` tunes it (without it each call page-faults a large output
/// in afresh).
pub fn setup() -> (criterion::Criterion, LayerFilter) {
    alexrt::tune_allocator();
    let criterion = criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args();
    let filter = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    (criterion, LayerFilter(filter))
}
