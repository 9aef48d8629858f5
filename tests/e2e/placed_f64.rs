//! A plan placed on two devices on two Flex devices, in f64: the same step as on one device up
//! to summation order (the towers sum a gradient's halo contributions separately).

#[path = "common/placed.rs"]
mod placed;

#[test]
fn the_placed_step_on_two_cpu_devices_equals_the_one_device_step_in_f64() {
    let device = Default::default();
    let _ = burn::tensor::backend::set_default_float_dtype::<alexrt::Cpu>(&device, burn::tensor::DType::F64);
    placed::placed_step_equals_one_device_step(1e-12);
}
