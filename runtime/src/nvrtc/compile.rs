//! NVRTC, NVIDIA's runtime compiler, as cubecl-cuda calls it (through cudarc, which loads
//! libnvrtc at run time), with ptxas's verbose report. NVRTC needs no GPU: PyPI's
//! `nvidia-cuda-nvrtc-cu12` ships the library and `nvidia-cuda-runtime-cu12` the headers
//! (`cuda_fp16.h`, ...) that CubeCL's CUDA C++ includes.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};

use cudarc::nvrtc::{result, sys};

use super::ptxas::Arch;

/// A loaded NVRTC and the header folders it compiles with.
#[derive(Debug)]
pub struct Nvrtc {
    pub version: (i32, i32),
    pub include: Vec<PathBuf>,
}

/// What NVRTC made of one source for one architecture.
#[derive(Debug, Clone)]
pub struct Cubin {
    /// NVRTC's log: ptxas's verbose report (and warnings, if any).
    pub log: String,
    pub cubin_bytes: usize,
}

/// Opens `path` for the whole process, so that cudarc's search by library name (`libnvrtc.so.12`,
/// ...) finds it already loaded, by its soname.
fn preload(path: &Path) -> Result<(), String> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} has a NUL byte in its name", path.display()))?;
    // SAFETY: dlopen with a NUL-terminated path; the handle is kept for the process's life.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns the thread's last dl error message or null.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: a non-null dlerror result is a NUL-terminated string.
            unsafe { CStr::from_ptr(why) }.to_string_lossy().into_owned()
        };
        return Err(format!("cannot load {}: {why}", path.display()));
    }
    Ok(())
}

impl Nvrtc {
    /// Loads libnvrtc from `library`, or where cudarc looks for it by name (the loader's path,
    /// `LD_LIBRARY_PATH`), and takes its headers from `include`.
    pub fn load(library: Option<&Path>, include: Vec<PathBuf>) -> Result<Nvrtc, String> {
        if let Some(path) = library {
            preload(path)?;
        }
        // SAFETY: only tries to open libnvrtc by cudarc's candidate names.
        if !unsafe { sys::is_culib_present() } {
            return Err(format!(
                "libnvrtc cannot be loaded by any of the names cudarc tries ({}); pass --nvrtc FILE \
                 (pip's nvidia-cuda-nvrtc-cu12 puts it in site-packages/nvidia/cuda_nvrtc/lib)",
                cudarc::get_lib_name_candidates("nvrtc").join(", ")
            ));
        }
        for dir in &include {
            if !dir.join("cuda_fp16.h").is_file() {
                return Err(format!(
                    "{} has no cuda_fp16.h, which CubeCL's CUDA C++ includes; pass --include DIR \
                     (pip's nvidia-cuda-runtime-cu12 puts it in site-packages/nvidia/cuda_runtime/include)",
                    dir.display()
                ));
            }
        }
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: the library is loaded (checked above); two valid out-pointers.
        unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
            .result()
            .map_err(|e| format!("nvrtcVersion failed: {e:?}"))?;
        Ok(Nvrtc { version: (major, minor), include })
    }

    /// Compiles `source` for `arch` with cubecl-cuda's options (`--gpu-architecture=sm_90a`,
    /// the include paths, `-lineinfo`) and ptxas's verbose report. A failed compile is an error
    /// carrying NVRTC's log.
    pub fn compile(&self, source: &str, arch: &Arch) -> Result<Cubin, String> {
        let mut options = vec![format!("--gpu-architecture={}", arch.nvrtc_name())];
        options.extend(self.include.iter().map(|d| format!("--include-path={}", d.display())));
        options.push("-lineinfo".into());
        options.push("--ptxas-options=-v".into());
        let src = CString::new(source).map_err(|_| "the kernel source has a NUL byte".to_string())?;
        let prog = result::create_program(&src, None).map_err(|e| format!("nvrtcCreateProgram: {e:?}"))?;
        // SAFETY: `prog` is a live program until destroy_program below; `src` outlives it.
        let out = unsafe { Self::build(prog, &options) };
        // SAFETY: `prog` was created above and is destroyed once.
        let _ = unsafe { result::destroy_program(prog) };
        out
    }

    /// # Safety
    /// `prog` must be a live NVRTC program.
    unsafe fn build(prog: sys::nvrtcProgram, options: &[String]) -> Result<Cubin, String> {
        let compiled = result::compile_program(prog, options);
        let log = result::get_program_log(prog).map(|l| text(&l)).unwrap_or_default();
        if let Err(e) = compiled {
            return Err(format!("NVRTC failed ({e:?}):\n{log}"));
        }
        let mut size = 0usize;
        sys::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
        let mut cubin = vec![0 as c_char; size];
        sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr()).result().map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
        if size == 0 {
            return Err(format!("NVRTC made no cubin:\n{log}"));
        }
        Ok(Cubin { log, cubin_bytes: size })
    }
}

/// NVRTC's NUL-terminated log as text.
fn text(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
