//! The gradient all-reduce on device memory, where the backend has a collective of its own: NCCL
//! on CUDA (`nccl`, cargo feature `cuda`). The executor asks [`start_all_reduce_mean_on_device`]
//! first and goes through the host with MPI when it answers `None`: on the CPU, on wgpu, and on
//! CUDA with `ALEXRT_NCCL=off`. A device mean runs while the executor goes on with the backward
//! pass ([`DeviceMeanInFlight`]), as the host's MPI sums do.
//!
//! What does not need a GPU lives here, compiled on every build so that CI tests it: the
//! `ALEXRT_NCCL` setting, the errors and their fixes, and rank 0's NCCL id broadcast over the
//! run's [`Collective`] (MPI, or the identity for one process).

use burn::tensor::backend::Backend;

use super::Collective;
use crate::error::RunError;
use crate::value::Value;

/// A bucket's mean on the device in progress: the device's collective runs on a stream of its
/// own while the caller goes on, and the means are handed over once it is done.
pub trait DeviceMeanInFlight<B: Backend> {
    /// True once the collective is done (it never blocks).
    fn test(&mut self) -> bool;
    /// Waits for the collective (under the collective timeout); the means, in the bucket's order.
    fn finish(self: Box<Self>) -> Result<Vec<Value<B>>, RunError>;
}

/// Starts the mean over every rank of `world` of each tensor of a gradient bucket, computed on
/// the device; `Ok(None)` where this backend has no device collective (the caller then reduces
/// through the host). Every rank calls it with the same bucket, as every collective.
pub fn start_all_reduce_mean_on_device<B: Backend>(
    bucket: &[Value<B>],
    world: &dyn Collective,
) -> Result<Option<Box<dyn DeviceMeanInFlight<B>>>, RunError> {
    #[cfg(feature = "cuda")]
    {
        super::nccl::start_all_reduce_mean(bucket, world)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (bucket, world);
        Ok(None)
    }
}

/// The same, waited for: the means, or `Ok(None)`.
pub fn all_reduce_mean_on_device<B: Backend>(
    bucket: &[Value<B>],
    world: &dyn Collective,
) -> Result<Option<Vec<Value<B>>>, RunError> {
    start_all_reduce_mean_on_device(bucket, world)?.map(|m| m.finish()).transpose()
}

/// The environment variable that chooses the all-reduce of a CUDA run.
pub const NCCL_VAR: &str = "ALEXRT_NCCL";

/// `ALEXRT_NCCL`: whether a CUDA run averages its gradients with NCCL on device memory (`on`, the
/// default) or copies them to the host and sums them with MPI (`off`), as the CPU and wgpu do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcclSetting {
    On,
    Off,
}

impl NcclSetting {
    /// The setting a value of `ALEXRT_NCCL` asks for (unset or empty: on).
    pub fn parse(value: Option<&str>) -> Result<Self, DeviceCollectiveError> {
        match value.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("on") | Some("1") => Ok(NcclSetting::On),
            Some("off") | Some("0") => Ok(NcclSetting::Off),
            Some(_) => Err(DeviceCollectiveError::Setting(value.unwrap_or_default().to_string())),
        }
    }

    /// The setting of this process's environment.
    pub fn from_env() -> Result<Self, DeviceCollectiveError> {
        Self::parse(std::env::var(NCCL_VAR).ok().as_deref())
    }
}

/// How to make NCCL's library loadable, for the messages that need it.
pub const NCCL_INSTALL_HELP: &str = "install NCCL (`pip install nvidia-nccl-cu12`, or NVIDIA's \
apt packages libnccl2 libnccl-dev) and make `libnccl.so` loadable: the pip wheel ships only \
`nvidia/nccl/lib/libnccl.so.2`, so link it, `ln -s $SITE/nvidia/nccl/lib/libnccl.so.2 DIR/libnccl.so`, \
and put DIR on LD_LIBRARY_PATH for every rank (`mpirun -x LD_LIBRARY_PATH ...`)";

/// What goes wrong with the all-reduce on device memory, each with its fix.
#[derive(Debug, thiserror::Error)]
pub enum DeviceCollectiveError {
    #[error(
        "{NCCL_VAR}={0}: use `on` (NCCL on device memory, the default on CUDA) or `off` (copy the gradients to the host and sum them with MPI)"
    )]
    Setting(String),
    #[error(
        "NCCL's library (libnccl.so) cannot be loaded on {missing} of the {size} ranks{}: {NCCL_INSTALL_HELP}; or set {NCCL_VAR}=off on every rank (`mpirun -x {NCCL_VAR}=off ...`) to reduce through the host with MPI",
        if *here { ", this one among them" } else { " (not this one; see their messages)" }
    )]
    LibraryMissing { missing: usize, size: usize, here: bool },
    #[error("rank 0 could not create NCCL's id (see its message); this rank stops too")]
    NoId,
    #[error(
        "rank 0's NCCL id arrived with {0} bytes, not {NCCL_ID_BYTES}: do all ranks run the same alexrt?"
    )]
    IdLength(usize),
    #[error("{call} failed: {code}{}; {}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(), nccl_fix(code))]
    Nccl { call: &'static str, code: String, detail: Option<String> },
    #[error(
        "{call} failed: {code}; the CUDA driver could not serve NCCL on this device (check `nvidia-smi`), or set {NCCL_VAR}=off to reduce through the host with MPI"
    )]
    Driver { call: &'static str, code: String },
    #[error(
        "waited {0}s for NCCL's all-reduce: another rank has stopped or hangs; ending the job (ALEXRT_COLLECTIVE_TIMEOUT=SECONDS waits longer)"
    )]
    Timeout(u64),
    #[error(
        "an earlier NCCL error or timeout ended this rank's NCCL communicator (see the message before this one); ending the job"
    )]
    Aborted,
    #[error(
        "NCCL cannot average {0} values (it averages f16, bf16, f32 and f64); set {NCCL_VAR}=off to reduce through the host"
    )]
    DType(String),
}

impl From<DeviceCollectiveError> for RunError {
    fn from(e: DeviceCollectiveError) -> Self {
        RunError::Device(Box::new(e))
    }
}

/// The fix for an NCCL error code (its name in `ncclResult_t`).
fn nccl_fix(code: &str) -> String {
    let debug = "NCCL_DEBUG=WARN (or INFO) on every rank says more";
    match code {
        "ncclInvalidUsage" => format!(
            "NCCL refuses two ranks on one GPU: give each rank its own (`mpirun -np N sh -c 'exec alexrt train PLAN --device cuda:$OMPI_COMM_WORLD_LOCAL_RANK'`, N at most the GPUs per machine); {debug}"
        ),
        "ncclSystemError" | "ncclRemoteError" => format!(
            "a rank or the network between them failed; {debug}, NCCL_SOCKET_IFNAME=IFACE chooses the interface, {NCCL_VAR}=off reduces through the host with MPI"
        ),
        _ => format!("{debug}; {NCCL_VAR}=off reduces through the host with MPI"),
    }
}

/// Bytes in an `ncclUniqueId`.
pub const NCCL_ID_BYTES: usize = 128;

/// Rank 0's NCCL id on every rank: `make` runs on rank 0 only, and its id is broadcast over
/// `world`. When `make` fails, rank 0 broadcasts nothing (so that the others stop too, rather
/// than wait) and returns its error.
pub fn broadcast_unique_id(
    world: &dyn Collective,
    make: impl FnOnce() -> Result<[u8; NCCL_ID_BYTES], DeviceCollectiveError>,
) -> Result<[u8; NCCL_ID_BYTES], DeviceCollectiveError> {
    let made = if world.rank() == 0 { Some(make()) } else { None };
    let mut bytes = match &made {
        Some(Ok(id)) => id.to_vec(),
        _ => Vec::new(),
    };
    world.broadcast_bytes(&mut bytes);
    if let Some(Err(e)) = made {
        return Err(e);
    }
    match bytes.len() {
        0 => Err(DeviceCollectiveError::NoId),
        NCCL_ID_BYTES => {
            let mut id = [0u8; NCCL_ID_BYTES];
            id.copy_from_slice(&bytes);
            Ok(id)
        }
        n => Err(DeviceCollectiveError::IdLength(n)),
    }
}

/// Whether NCCL's library loads on every rank of `world` (`loaded` says for this one): one sum
/// across the ranks, so that every rank takes the same path and none waits for a missing peer.
pub fn check_library_everywhere(world: &dyn Collective, loaded: bool) -> Result<(), DeviceCollectiveError> {
    let mut missing = [f64::from(u8::from(!loaded))];
    world.all_reduce_sum_f64(&mut missing);
    if missing[0] > 0.0 {
        return Err(DeviceCollectiveError::LibraryMissing {
            missing: missing[0] as usize,
            size: world.size(),
            here: !loaded,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::Single;
    use std::sync::Mutex;

    /// One rank of a world of `size` whose broadcasts deliver `from_rank0` and whose sums add
    /// `others` (the other ranks' share): what a rank sees of the rest of the run.
    struct Seen {
        rank: usize,
        size: usize,
        from_rank0: Mutex<Option<Vec<u8>>>,
        others: f64,
    }

    impl Collective for Seen {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_reduce_sum_f32(&self, _: &mut [f32]) {}
        fn all_reduce_sum_f64(&self, values: &mut [f64]) {
            values.iter_mut().for_each(|v| *v += self.others);
        }
        fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
            if let Some(b) = self.from_rank0.lock().unwrap().take() {
                *bytes = b;
            }
        }
        fn broadcast_f32(&self, _: &mut [f32]) {}
        fn broadcast_f64(&self, _: &mut [f64]) {}
        fn abort(&self, code: i32) -> ! {
            panic!("abort({code})")
        }
        fn describe(&self) -> String {
            format!("rank {} of {}", self.rank, self.size)
        }
    }

    fn rank(rank: usize, from_rank0: Option<Vec<u8>>, others: f64) -> Seen {
        Seen { rank, size: 2, from_rank0: Mutex::new(from_rank0), others }
    }

    #[test]
    fn the_setting_is_on_unless_the_environment_says_off() {
        assert_eq!(NcclSetting::parse(None).unwrap(), NcclSetting::On);
        assert_eq!(NcclSetting::parse(Some("ON")).unwrap(), NcclSetting::On);
        assert_eq!(NcclSetting::parse(Some(" off ")).unwrap(), NcclSetting::Off);
        assert_eq!(NcclSetting::parse(Some("0")).unwrap(), NcclSetting::Off);
        let e = NcclSetting::parse(Some("maybe")).unwrap_err().to_string();
        assert!(e.contains("ALEXRT_NCCL=maybe") && e.contains("`off`"), "{e}");
    }

    #[test]
    fn rank_zero_makes_the_id_and_keeps_it_in_a_single_process() {
        let id = broadcast_unique_id(&Single, || Ok([7u8; NCCL_ID_BYTES])).unwrap();
        assert_eq!(id, [7u8; NCCL_ID_BYTES]);
    }

    #[test]
    fn another_rank_takes_rank_zeros_id_and_never_makes_one() {
        let mut sent = vec![0u8; NCCL_ID_BYTES];
        sent[0] = 42;
        sent[127] = 9;
        let id =
            broadcast_unique_id(&rank(1, Some(sent.clone()), 0.0), || panic!("only rank 0 makes the id"))
                .unwrap();
        assert_eq!(id.to_vec(), sent);
    }

    #[test]
    fn a_rank_stops_with_a_clear_error_when_rank_zero_could_not_make_the_id() {
        let e = broadcast_unique_id(&rank(1, Some(Vec::new()), 0.0), || unreachable!()).unwrap_err();
        assert!(matches!(e, DeviceCollectiveError::NoId), "{e}");
        let e = broadcast_unique_id(&rank(1, Some(vec![1; 5]), 0.0), || unreachable!()).unwrap_err();
        assert!(e.to_string().contains("5 bytes, not 128"), "{e}");
    }

    #[test]
    fn rank_zero_returns_its_own_error_after_telling_the_others() {
        let world = rank(0, None, 0.0);
        let e = broadcast_unique_id(&world, || {
            Err(DeviceCollectiveError::Nccl {
                call: "ncclGetUniqueId",
                code: "ncclSystemError".into(),
                detail: None,
            })
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("ncclGetUniqueId failed: ncclSystemError;"), "{e}");
    }

    #[test]
    fn a_missing_library_on_any_rank_stops_every_rank_with_the_fix() {
        assert!(check_library_everywhere(&rank(0, None, 0.0), true).is_ok());
        let here = check_library_everywhere(&rank(0, None, 0.0), false).unwrap_err().to_string();
        assert!(here.contains("1 of the 2 ranks, this one among them"), "{here}");
        assert!(here.contains("libnccl.so.2 DIR/libnccl.so") && here.contains("ALEXRT_NCCL=off"), "{here}");
        let elsewhere = check_library_everywhere(&rank(1, None, 1.0), true).unwrap_err().to_string();
        assert!(elsewhere.contains("1 of the 2 ranks (not this one"), "{elsewhere}");
    }

    #[test]
    fn two_ranks_on_one_gpu_are_told_to_take_one_gpu_each() {
        let e = DeviceCollectiveError::Nccl {
            call: "ncclCommInitRank",
            code: "ncclInvalidUsage".into(),
            detail: None,
        };
        let e = e.to_string();
        assert!(e.contains("two ranks on one GPU") && e.contains("cuda:$OMPI_COMM_WORLD_LOCAL_RANK"), "{e}");
    }

    #[test]
    fn a_backend_without_a_device_collective_leaves_the_bucket_to_the_host() {
        let device = Default::default();
        let bucket = vec![Value::<crate::Cpu>::from_host(vec![1.0f32, 2.0, 3.0], &[3], &device).unwrap()];
        assert!(all_reduce_mean_on_device(&bucket, &Single).unwrap().is_none());
    }
}
