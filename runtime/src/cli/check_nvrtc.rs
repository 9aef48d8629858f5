//! `alexrt check-nvrtc`: every CubeCL kernel the runtime launches on CUDA, compiled by NVRTC for
//! each architecture, with registers, spills and shared memory; no GPU needed (`cuda` feature).

use std::path::PathBuf;

use crate::RunError;

#[derive(clap::Args)]
pub struct CheckNvrtcArgs {
    /// Architectures to compile for (sm_80, sm_86, sm_89, sm_90a, sm_100a), or `native` for the
    /// first GPU here.
    #[arg(long, value_delimiter = ',', default_value = "sm_80,sm_90a")]
    arch: Vec<String>,
    /// Element types to launch the kernels with, as f32, f16 and bf16 plans launch them (the low
    /// types stored, f32 computed in; the update on the f32 masters).
    #[arg(long, value_delimiter = ',', default_value = "f32,f16,bf16")]
    dtype: Vec<String>,
    /// Batch of alexnet.ron's shapes (it changes the cube counts only).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// libnvrtc's file (pip's nvidia-cuda-nvrtc-cu12: site-packages/nvidia/cuda_nvrtc/lib/
    /// libnvrtc.so.12); without it, looked for by name as the CUDA runtime does.
    #[arg(long)]
    nvrtc: Option<PathBuf>,
    /// A folder of CUDA headers (cuda_fp16.h, ...; pip's nvidia-cuda-runtime-cu12:
    /// site-packages/nvidia/cuda_runtime/include). Default: $CUDA_PATH/include or
    /// /usr/local/cuda/include, as cubecl-cuda looks.
    #[arg(long)]
    include: Vec<PathBuf>,
    /// Also write the table and the report to DIR/nvrtc-kernels.md and DIR/nvrtc-kernels.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write each distinct kernel's CUDA C++ to DIR/ENTRYPOINT-ARCH-N.cu.
    #[arg(long)]
    sources: Option<PathBuf>,
}

/// CUDA's header folder where cubecl-cuda looks for it at run time.
#[cfg(feature = "cuda")]
fn default_include() -> Option<PathBuf> {
    let root = std::env::var_os("CUDA_PATH").map(PathBuf::from).or_else(|| {
        ["/usr/local/cuda", "/opt/cuda", "/usr"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.join("include/cuda_fp16.h").is_file())
    })?;
    Some(root.join("include"))
}

#[cfg(feature = "cuda")]
pub fn run(args: CheckNvrtcArgs) -> Result<(), RunError> {
    use crate::nvrtc::{check_nvrtc, native_arch, ptxas::Arch, NvrtcOptions};
    use burn::tensor::DType;

    let mut archs = Vec::new();
    for a in &args.arch {
        archs.push(if a == "native" { native_arch() } else { Arch::parse(a) }.map_err(RunError::Input)?);
    }
    let mut dtypes = Vec::new();
    for d in &args.dtype {
        dtypes.push(match d.as_str() {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            other => return Err(RunError::Input(format!("--dtype {other}: give f32, f16 or bf16"))),
        });
    }
    let include =
        if args.include.is_empty() { default_include().into_iter().collect() } else { args.include };
    if include.is_empty() {
        return Err(RunError::Input(
            "no CUDA headers found ($CUDA_PATH, /usr/local/cuda): pass --include DIR, a folder with cuda_fp16.h".into(),
        ));
    }
    let options = NvrtcOptions { archs, dtypes, batch: args.batch, library: args.nvrtc, include };
    let report = check_nvrtc(&options).map_err(RunError::Input)?;
    let table = report.markdown();
    crate::say(&table);
    let io = |path: PathBuf| move |source| RunError::Io { path: path.display().to_string(), source };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(io(dir.clone()))?;
        let (md, json) = (dir.join("nvrtc-kernels.md"), dir.join("nvrtc-kernels.json"));
        std::fs::write(&md, &table).map_err(io(md.clone()))?;
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(&json, text).map_err(io(json.clone()))?;
    }
    if let Some(dir) = &args.sources {
        std::fs::create_dir_all(dir).map_err(io(dir.clone()))?;
        for (name, source) in &report.sources {
            let path = dir.join(name);
            std::fs::write(&path, source).map_err(io(path.clone()))?;
        }
    }
    let failures = report.failures();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(RunError::Input(format!("check-nvrtc: {} kernels failed (listed above)", failures.len())))
    }
}

#[cfg(not(feature = "cuda"))]
pub fn run(_args: CheckNvrtcArgs) -> Result<(), RunError> {
    Err(RunError::Input(
        "check-nvrtc compiles with CubeCL's CUDA compiler: build alexrt with --features cuda".into(),
    ))
}
