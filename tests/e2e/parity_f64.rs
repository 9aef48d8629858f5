//! The runtime in f64 against PyTorch in float64: the same arithmetic up to summation order, so
//! the bound is tight (see common/parity.rs). This binary sets the CPU device to f64 first.

#[path = "common/parity.rs"]
mod parity;

fn use_f64() {
    let device = Default::default();
    let _ = burn::tensor::backend::set_default_float_dtype::<alexrt::Cpu>(&device, burn::tensor::DType::F64);
}

/// tiny.ron at batch 4 in f64: relative error at most 1e-10.
#[test]
fn tiny_matches_pytorch_in_f64() {
    use_f64();
    parity::parity("graphs/tiny.ron", "tests/fixtures/tiny.json", 1e-10);
}

/// alexnet.ron at batch 2 in f64: relative error at most 1e-10.
#[test]
fn alexnet_matches_pytorch_in_f64() {
    use_f64();
    parity::parity("graphs/alexnet.ron", "tests/fixtures/alexnet.json", 1e-10);
}
