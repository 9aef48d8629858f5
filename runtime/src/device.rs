//! Which device a run uses: `--device cpu|wgpu|cuda[:N]|auto` read into a [`Device`], with the
//! checks that turn what this build or machine cannot run into one clear sentence (never a
//! CubeCL panic).

use crate::error::RunError;

/// A device a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// burn Flex on the CPU, with the host kernels.
    Cpu,
    /// burn's CubeBackend on wgpu (Vulkan, Metal, DX12, or Mesa's lavapipe), with our CubeCL kernels.
    Wgpu,
    /// burn's CubeBackend on CUDA device N (cargo feature `cuda`).
    Cuda(usize),
}

/// What `--device` accepts, for help texts.
pub const DEVICE_HELP: &str =
    "Where to run: `cpu` (burn Flex), `wgpu` (a Vulkan/Metal/DX12 GPU, or Mesa's lavapipe), \
`cuda[:N]`, or `auto` (CUDA where a driver and a GPU exist, else the CPU)";

/// Reads a `--device` value; returns the device and a line saying what was chosen (and why, for
/// `auto`), or why the choice cannot run here.
pub fn choose(spec: &str) -> Result<(Device, String), RunError> {
    let input = |m: String| RunError::Input(m);
    let cuda = |index: usize| -> Result<(Device, String), RunError> {
        if !cfg!(feature = "cuda") {
            return Err(input(
                "--device cuda: this alexrt was built without CUDA (cargo feature `cuda`); use --device cpu or --device wgpu".into(),
            ));
        }
        match cuda_devices().and_then(|n| cuda_headers().map(|()| n)) {
            Ok(n) if index < n => {
                Ok((Device::Cuda(index), with_cache(format!("device: cuda:{index} (of {n})"))))
            }
            Ok(n) => {
                Err(input(format!("--device cuda:{index}: there are {n} CUDA devices, numbered from 0")))
            }
            Err(why) => Err(input(format!("--device cuda: {why}; use --device cpu or --device wgpu"))),
        }
    };
    match spec {
        "auto" => match (cfg!(feature = "cuda"), cuda_devices().and_then(|_| cuda_headers())) {
            (true, Ok(_)) => cuda(0),
            (true, Err(why)) => Ok((Device::Cpu, format!("device: cpu (burn Flex; {why})"))),
            (false, _) => Ok((
                Device::Cpu,
                "device: cpu (burn Flex; this alexrt has no CUDA support, and --device wgpu uses a Vulkan GPU)".into(),
            )),
        },
        "cpu" => Ok((Device::Cpu, "device: cpu (burn Flex)".into())),
        "wgpu" if vulkan_installed() => Ok((
            Device::Wgpu,
            with_cache("device: wgpu (our CubeCL kernels for LRN, pooling, the fused epilogues and SGD)".into()),
        )),
        "wgpu" => Err(input(
            "--device wgpu: no Vulkan driver is installed; install one for your GPU, or mesa-vulkan-drivers to run on the CPU through lavapipe".into(),
        )),
        "cuda" => cuda(0),
        d if d.starts_with("cuda:") => match d[5..].parse::<usize>() {
            Ok(i) => cuda(i),
            Err(_) => Err(input(format!("--device {d}: write cuda:N with N a device number"))),
        },
        other => Err(input(format!("--device {other}: use cpu, wgpu, cuda[:N] or auto"))),
    }
}

/// The devices of a run of a placed plan, all of one kind (`--device cpu,cpu`, `wgpu:0,wgpu:1`,
/// `cuda:0,cuda:1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// `n` Flex devices: one process's CPU thread pool, each its own device of the placement.
    Cpu(usize),
    /// `n` wgpu clients: `wgpu:0` is the default adapter, `wgpu:1` the CPU adapter (Mesa's
    /// lavapipe), a separate device with its own queue even where the default is lavapipe too.
    Wgpu(usize),
    /// These CUDA devices, in placement order.
    Cuda(Vec<usize>),
}

/// Reads a `--device` list: one device as [`choose`] reads it, or several of one kind separated
/// by commas, each named once. Returns the devices and a line saying what was chosen.
pub fn choose_all(spec: &str) -> Result<(Devices, String), RunError> {
    let input = |m: String| RunError::Input(m);
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    if items.len() == 1 {
        let (device, note) = choose(spec)?;
        let one = match device {
            Device::Cpu => Devices::Cpu(1),
            Device::Wgpu => Devices::Wgpu(1),
            Device::Cuda(i) => Devices::Cuda(vec![i]),
        };
        return Ok((one, note));
    }
    let n = items.len();
    if items.iter().all(|d| *d == "cpu") {
        return Ok((Devices::Cpu(n), format!("devices: {n} x cpu (burn Flex, sharing the CPU's threads)")));
    }
    let wgpu: Vec<String> = (0..n).map(|i| format!("wgpu:{i}")).collect();
    if items.iter().zip(&wgpu).all(|(d, w)| d == w) {
        choose("wgpu")?;
        return Ok((Devices::Wgpu(n), format!("devices: {} (wgpu)", items.join(", "))));
    }
    let cuda: Option<Vec<usize>> = items.iter().map(|d| d.strip_prefix("cuda:")?.parse().ok()).collect();
    match cuda {
        Some(ids) if ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id)) => {
            for &i in &ids {
                choose(&format!("cuda:{i}"))?;
            }
            Ok((Devices::Cuda(ids), format!("devices: {}", items.join(", "))))
        }
        _ => Err(input(format!(
            "--device {spec}: a list names devices of one kind, each once: cpu,cpu or wgpu:0,wgpu:1 or cuda:0,cuda:1"
        ))),
    }
}

/// `note`, and where CubeCL's kernel caches are ([`crate::kernel_cache`]), set up now, before the
/// first CubeCL device is made.
fn with_cache(note: String) -> String {
    match crate::kernel_cache::configure() {
        Some(cache) => format!("{note}\n{cache}"),
        None => note,
    }
}

/// Whether cubecl-cuda will find CUDA's headers: it compiles each kernel with NVRTC on first
/// launch, passing `$CUDA_PATH/include` (or /usr/local/cuda's, /opt/cuda's, /usr's with nvcc),
/// and panics when none of them exists. `Err` says so in one sentence, with the fix.
fn cuda_headers() -> Result<(), String> {
    #[cfg(feature = "cuda")]
    if cubecl::cuda::install::cuda_path().is_none() {
        return Err(
            "CUDA's headers are not found ($CUDA_PATH, /usr/local/cuda), and CubeCL compiles its kernels \
                    with them at run time: install the CUDA toolkit, or set CUDA_PATH to pip's \
                    site-packages/nvidia/cuda_runtime (nvidia-cuda-runtime-cu12)"
                .into(),
        );
    }
    Ok(())
}

/// Whether a Vulkan driver (an ICD file) is installed.
fn vulkan_installed() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
        .iter()
        .any(|d| std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false))
}

/// Whether a CUDA driver and at least one GPU are present, asked without letting CubeCL panic:
/// libcuda is opened and asked directly. `Err` says why not, in one sentence.
pub fn cuda_devices() -> Result<usize, String> {
    type CuInit = unsafe extern "C" fn(u32) -> i32;
    type CuDeviceGetCount = unsafe extern "C" fn(*mut i32) -> i32;
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols have the CUDA driver API's
    // C signatures; the library stays loaded for the process.
    unsafe {
        let lib = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if lib.is_null() {
            return Err("no CUDA driver found (libcuda.so.1 cannot be loaded)".into());
        }
        let init = libc::dlsym(lib, c"cuInit".as_ptr());
        let count = libc::dlsym(lib, c"cuDeviceGetCount".as_ptr());
        if init.is_null() || count.is_null() {
            return Err("the CUDA driver lacks cuInit or cuDeviceGetCount".into());
        }
        let init: CuInit = std::mem::transmute(init);
        let count_fn: CuDeviceGetCount = std::mem::transmute(count);
        let rc = init(0);
        if rc != 0 {
            return Err(format!(
                "the CUDA driver did not initialise (cuInit returned {rc}; is a GPU present?)"
            ));
        }
        let mut n = 0i32;
        let rc = count_fn(&mut n);
        if rc != 0 || n <= 0 {
            return Err("the CUDA driver sees no GPU".into());
        }
        Ok(n as usize)
    }
}
