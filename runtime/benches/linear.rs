//! The fully connected layers of alexnet.ron (fc6, fc7, fc8; batch 16 or `ALEXRT_LINEAR_BATCH`),
//! forward, data gradient and weight gradient, on the CPU backend's `KernelBackend` methods (the
//! engine's products, [`alexrt::kernels::cpu_linear`]) beside burn's `matmul` on the same
//! tensors ([`alexrt::kernels::linear`], what ran before). Criterion reports throughput in
//! Gelem/s, one element per floating-point operation, so the figure is GFLOP/s; a summary table at
//! the end gives each beside the machine's peak (`ALEXRT_PEAK_GFLOPS`, 475) and the weight's bytes
//! per second (at batch 16 these products are bound by reading or writing the weight).
//!
//! `cargo bench -p alexrt --bench linear [-- fc6]`.

mod common;

use alexrt::kernels::{linear, KernelBackend};
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Throughput};

type B = Flex;

#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Forward,
    DataGrad,
    WeightGrad,
}

impl Pass {
    const ALL: [Pass; 3] = [Pass::Forward, Pass::DataGrad, Pass::WeightGrad];
    fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::DataGrad => "data-grad",
            Pass::WeightGrad => "weight-grad",
        }
    }
}

struct Case {
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    dy: Tensor<B, 2>,
    flops: f64,
    weight_bytes: f64,
}

impl Case {
    fn new(batch: usize, inputs: usize, outputs: usize) -> Self {
        let device = Default::default();
        let random = |dims: [usize; 2]| Tensor::<B, 2>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        Case {
            x: random([batch, inputs]),
            w: random([outputs, inputs]),
            dy: random([batch, outputs]),
            flops: 2.0 * (batch * inputs * outputs) as f64,
            weight_bytes: 4.0 * (inputs * outputs) as f64,
        }
    }

    fn run(&self, pass: Pass, engine: bool) -> usize {
        let (x, w, dy) = (self.x.clone(), self.w.clone(), self.dy.clone());
        let y = match (pass, engine) {
            (Pass::Forward, true) => B::linear_forward(x, w),
            (Pass::Forward, false) => linear::burn_linear(x, w),
            (Pass::DataGrad, true) => B::linear_data_grad(dy, w),
            (Pass::DataGrad, false) => linear::burn_linear_data_grad(dy, w),
            (Pass::WeightGrad, true) => B::linear_weight_grad(x, dy),
            (Pass::WeightGrad, false) => linear::burn_linear_weight_grad(x, dy),
        };
        y.dims()[0]
    }
}

fn main() {
    let batch = common::env_number("ALEXRT_LINEAR_BATCH", 16.0) as usize;
    let peak = common::env_number("ALEXRT_PEAK_GFLOPS", 475.0);
    let (mut criterion, filter) = common::setup();
    let mut summary = Vec::new();
    for (name, inputs, outputs) in [("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)] {
        if !filter.wants(name) {
            continue;
        }
        let case = Case::new(batch, inputs, outputs);
        for pass in Pass::ALL {
            let mut group = criterion.benchmark_group(format!("{name}/{}", pass.name()));
            group.throughput(Throughput::Elements(case.flops as u64));
            let mut row = (name, pass, case.flops, case.weight_bytes, Vec::new());
            for (label, engine) in [("burn-matmul", false), ("engine", true)] {
                group.bench_function(BenchmarkId::from_parameter(label), |b| {
                    b.iter(|| case.run(pass, engine))
                });
                row.4.push((label, common::median_seconds(7, || case.run(pass, engine))));
            }
            group.finish();
            summary.push(row);
        }
    }
    criterion.final_summary();
    println!("\nbatch {batch}, medians of 7 calls; GFLOP/s beside the {peak:.0} GFLOP/s peak, and the weight's GB/s");
    println!("| layer | pass | product | ms | GFLOP/s | of peak | weight GB/s | vs burn |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (name, pass, flops, weight_bytes, rows) in summary {
        let burn = rows[0].1;
        for (label, secs) in &rows {
            let gflops = flops / secs / 1e9;
            println!(
                "| {name} | {} | {label} | {:.2} | {gflops:.0} | {:.0}% | {:.1} | {:.2}x |",
                pass.name(),
                secs * 1e3,
                100.0 * gflops / peak,
                weight_bytes / secs / 1e9,
                burn / secs
            );
        }
    }
}
