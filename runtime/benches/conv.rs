//! Each convolution of alexnet.ron (conv1..conv5, batch 16 or `ALEXRT_CONV_BATCH`), forward, data
//! gradient and weight gradient, by every algorithm that takes it, through the CPU backend's
//! `KernelBackend` methods (what a training step runs). Criterion reports each as throughput in
//! Gelem/s, one element per floating-point operation, so the figure is GFLOP/s; a summary table at
//! the end puts every layer's figures beside the machine's peak (`ALEXRT_PEAK_GFLOPS`, 475 for two
//! Zen 5 cores with AVX-512 by default).
//!
//! `cargo bench -p alexrt --bench conv` (add `-- conv3` to run one layer).

mod common;

use alexir::catalog::ConvAttrs;
use alexrt::kernels::{cpu_conv, ConvAlgo, ConvPass, ConvShape, KernelBackend};
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Throughput};

type B = Flex;

/// alexnet.ron's convolutions: name, input channels, input size, attributes.
fn layers() -> Vec<(&'static str, usize, usize, ConvAttrs)> {
    let attrs = |out_channels, kernel, stride, padding, groups| ConvAttrs {
        out_channels,
        kernel,
        stride,
        padding,
        groups,
        algo: None,
    };
    vec![
        ("conv1", 3, 227, attrs(96, 11, 4, 0, 1)),
        ("conv2", 96, 27, attrs(256, 5, 1, 2, 2)),
        ("conv3", 256, 13, attrs(384, 3, 1, 1, 1)),
        ("conv4", 384, 13, attrs(384, 3, 1, 1, 2)),
        ("conv5", 384, 13, attrs(256, 3, 1, 1, 2)),
    ]
}

struct Case {
    shape: ConvShape,
    attrs: ConvAttrs,
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    dy: Tensor<B, 4>,
}

impl Case {
    fn new(batch: usize, cin: usize, hw: usize, attrs: ConvAttrs) -> Self {
        let shape = ConvShape::new(&attrs, [batch, cin, hw, hw]);
        let device = Default::default();
        let random = |dims: [usize; 4]| Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        Case {
            x: random(shape.input_dims()),
            w: random(shape.weight_dims()),
            dy: random(shape.output_dims()),
            shape,
            attrs,
        }
    }

    /// Runs one pass by `algo`, returning a value of the result so that it is not optimised away.
    fn run(&self, pass: ConvPass, algo: ConvAlgo) -> usize {
        let y = match pass {
            ConvPass::Forward => {
                B::conv2d_with_algo(self.x.clone(), self.w.clone(), None, &self.attrs, false, algo)
            }
            ConvPass::DataGrad => B::conv2d_data_grad_with_algo(
                self.dy.clone(),
                self.w.clone(),
                &self.attrs,
                self.shape.in_hw,
                algo,
            ),
            ConvPass::WeightGrad => {
                B::conv2d_weight_grad_with_algo(self.x.clone(), self.dy.clone(), &self.attrs, algo)
            }
        };
        y.dims()[0]
    }
}

fn main() {
    let batch = common::env_number("ALEXRT_CONV_BATCH", 16.0) as usize;
    let peak = common::env_number("ALEXRT_PEAK_GFLOPS", 475.0);
    let (mut criterion, filter) = common::setup();
    let mut summary = Vec::new();
    for (name, cin, hw, attrs) in layers() {
        if !filter.wants(name) {
            continue;
        }
        let case = Case::new(batch, cin, hw, attrs);
        for pass in ConvPass::ALL {
            let mut group = criterion.benchmark_group(format!("{name}/{}", pass.name()));
            group.throughput(Throughput::Elements(case.shape.flops() as u64));
            let mut row = (name, pass, Vec::new());
            for algo in cpu_conv::supported_algos(&case.shape, pass) {
                group.bench_function(BenchmarkId::from_parameter(algo.name()), |b| {
                    b.iter(|| case.run(pass, algo))
                });
                let gflops = case.shape.flops() / common::median_seconds(5, || case.run(pass, algo)) / 1e9;
                row.2.push((algo, gflops));
            }
            group.finish();
            summary.push(row);
        }
    }
    criterion.final_summary();
    println!("\nbatch {batch}, GFLOP/s (median of 5 calls) and share of the {peak:.0} GFLOP/s peak");
    println!("| layer | pass | algorithm | GFLOP/s | of peak | vs burn |");
    println!("|---|---|---|---:|---:|---:|");
    for (name, pass, algos) in summary {
        let burn = algos.iter().find(|(a, _)| *a == ConvAlgo::Burn).map(|(_, g)| *g);
        for (algo, g) in &algos {
            let vs = burn.map_or("".to_string(), |b| format!("{:.2}x", g / b));
            let share = 100.0 * g / peak;
            println!("| {name} | {} | {} | {g:.0} | {share:.0}% | {vs} |", pass.name(), algo.name());
        }
    }
}
