//! A plan placed on two devices (`alexc compile --devices 2`) on two Flex devices, in f32: the
//! same step as on one device to 1e-4, and a run given the wrong number of devices is refused.

#[path = "common/placed.rs"]
mod placed;

use alexrt::exec::Executor;
use alexrt::Cpu;

#[test]
fn the_placed_step_on_two_cpu_devices_equals_the_one_device_step_in_f32() {
    placed::placed_step_equals_one_device_step(1e-4);
}

#[test]
fn a_plan_placed_on_two_devices_given_one_is_refused_with_what_to_pass() {
    let err = Executor::<Cpu>::new(&placed::tiny_plan(2), Default::default()).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("placed on 2 devices") && text.contains("cpu,cpu"), "{text}");
    // eval, infer and bench take one device: the message says which subcommand runs a placed plan.
    assert!(text.contains("only `alexrt train`") && text.contains("without --devices"), "{text}");
    let err =
        Executor::<Cpu>::new_on(&placed::tiny_plan(1), vec![Default::default(); 2]).err().expect("refused");
    assert!(err.to_string().contains("--devices 2"), "{err}");
}
