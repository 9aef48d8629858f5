//! The gradient all-reduce on device memory (NCCL on CUDA): one process's bucket averaged by a
//! one-rank communicator into fresh device buffers, checked against the host's mean; and
//! `ALEXRT_NCCL=off` leaving the bucket to the host path. Needs the `cuda` feature, a CUDA GPU
//! and a loadable libnccl.so; without them each test says it is skipped and why.

#[cfg(feature = "cuda")]
mod on_cuda {
    use alexrt::distributed::check::check_all_reduce;
    use alexrt::distributed::on_device::all_reduce_mean_on_device;
    use alexrt::distributed::Single;
    use alexrt::value::Value;
    use cubecl::cuda::CudaDevice;

    /// Why NCCL cannot run here, if it cannot.
    fn missing() -> Option<String> {
        if let Err(why) = alexrt::device::cuda_devices() {
            return Some(why);
        }
        // SAFETY: only tries to open libnccl by its usual names.
        if !unsafe { cudarc::nccl::sys::is_culib_present() } {
            return Some("libnccl.so cannot be loaded (see docs/distributed.md, NCCL on CUDA)".into());
        }
        None
    }

    #[test]
    fn nccl_averages_a_bucket_on_device_memory_and_the_off_setting_leaves_it_to_the_host() {
        if let Some(why) = missing() {
            println!("SKIPPED: {why}");
            return;
        }
        let device = CudaDevice::new(0);
        let shapes: [&[usize]; 3] = [&[64, 3, 11, 11], &[64], &[10, 256]];
        let report = check_all_reduce::<alexrt::Cuda>(&device, &Single, &shapes, 2).unwrap();
        assert!(report.max_abs_error <= report.tolerance, "{report:?}");

        let bucket = vec![Value::<alexrt::Cuda>::from_host(vec![1.0f32, 2.0], &[2], &device).unwrap()];
        // The only test in this binary that sets the variable (tests run on threads).
        std::env::set_var("ALEXRT_NCCL", "off");
        let off = all_reduce_mean_on_device(&bucket, &Single);
        std::env::remove_var("ALEXRT_NCCL");
        assert!(off.unwrap().is_none());
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn nccl_averages_a_bucket_on_device_memory_and_the_off_setting_leaves_it_to_the_host() {
    println!("SKIPPED: built without the `cuda` feature (cargo test -p alexrt --features cuda --test nccl)");
}
