//! What ptxas reports for a compiled kernel (`--ptxas-options=-v`: registers, stack frame,
//! spill stores and loads, static shared memory), the limits of each NVIDIA architecture the
//! check compiles for, and what breaks them.

use serde::Serialize;

/// An NVIDIA architecture, with the limits a launch is held to there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arch {
    /// Compute capability, major * 10 + minor.
    pub version: u32,
    /// A GPU of this architecture, for the reader.
    pub gpu: &'static str,
    /// Streaming multiprocessors of that GPU (CubeCL reads it; our launch settings do not use it).
    pub sms: u32,
    /// Shared memory a block may use when it opts in (the driver's
    /// `MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`, which cubecl-cuda takes as its limit).
    pub max_shared_optin: usize,
}

/// Static shared memory a kernel may declare on any architecture (more needs dynamic shared
/// memory and an opt-in).
pub const MAX_STATIC_SHARED: u64 = 48 * 1024;

/// 32-bit registers one block may use, on every architecture from sm_50 on.
pub const REGISTERS_PER_BLOCK: u64 = 64 * 1024;

impl Arch {
    pub const SM80: Arch = Arch { version: 80, gpu: "A100", sms: 108, max_shared_optin: 166_912 };
    pub const SM86: Arch = Arch { version: 86, gpu: "A40", sms: 84, max_shared_optin: 101_376 };
    pub const SM89: Arch = Arch { version: 89, gpu: "L40S", sms: 142, max_shared_optin: 101_376 };
    pub const SM90: Arch = Arch { version: 90, gpu: "H100/H200", sms: 132, max_shared_optin: 232_448 };
    pub const SM100: Arch = Arch { version: 100, gpu: "B200", sms: 148, max_shared_optin: 232_448 };
    const KNOWN: [Arch; 5] = [Arch::SM80, Arch::SM86, Arch::SM89, Arch::SM90, Arch::SM100];

    pub fn from_version(version: u32) -> Option<Arch> {
        Arch::KNOWN.into_iter().find(|a| a.version == version)
    }

    /// `sm_80`, `sm_90a` or `90`.
    pub fn parse(name: &str) -> Result<Arch, String> {
        let digits = name.trim().trim_start_matches("sm_").trim_end_matches('a');
        let known = || Arch::KNOWN.iter().map(|a| a.nvrtc_name()).collect::<Vec<_>>().join(", ");
        match digits.parse::<u32>() {
            Ok(v) => Arch::from_version(v)
                .ok_or_else(|| format!("no limits known for sm_{v}; the check knows {}", known())),
            Err(_) => {
                Err(format!("`{name}` is not an architecture (like sm_80 or sm_90a; known: {})", known()))
            }
        }
    }

    /// The name NVRTC compiles for, as cubecl-cuda passes it: Hopper and later with the `a`
    /// suffix (architecture-specific features), as the runtime compiles for the GPU it runs on.
    pub fn nvrtc_name(&self) -> String {
        if self.version >= 90 {
            format!("sm_{}a", self.version)
        } else {
            format!("sm_{}", self.version)
        }
    }
}

/// ptxas's figures for one entry function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PtxasInfo {
    pub registers: u64,
    /// Local memory for the thread's own arrays and spills, in bytes.
    pub stack_frame: u64,
    /// Bytes spilled to local memory, in the kernel and any function it calls.
    pub spill_stores: u64,
    pub spill_loads: u64,
    /// Shared memory declared in the kernel (CubeCL declares none: its shared memory is dynamic).
    pub static_shared: u64,
}

/// The number before `unit` in `text` ("24 bytes stack frame" with unit " bytes stack frame").
fn number_before(text: &str, unit: &str) -> Option<u64> {
    let at = text.find(unit)?;
    let head = text[..at].trim_end();
    let digits: String = head.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// `entry`'s figures from ptxas's verbose log. Spills of functions it calls count as its own.
/// Where the log compiled one entry function only, that one is taken whatever its name.
pub fn parse(log: &str, entry: &str) -> Result<PtxasInfo, String> {
    let mut entries: Vec<(String, PtxasInfo, bool)> = Vec::new();
    let (mut compiling, mut properties_of, mut callee_spills) = (None::<usize>, None::<String>, (0, 0));
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            entries.push((name, PtxasInfo::default(), false));
            compiling = Some(entries.len() - 1);
        } else if let Some(rest) = line.split("Function properties for ").nth(1) {
            properties_of = Some(rest.trim().to_string());
        } else if line.contains("bytes stack frame") {
            let (stack, stores, loads) = (
                number_before(line, " bytes stack frame").unwrap_or(0),
                number_before(line, " bytes spill stores").unwrap_or(0),
                number_before(line, " bytes spill loads").unwrap_or(0),
            );
            match entries.iter_mut().find(|e| Some(&e.0) == properties_of.as_ref()) {
                Some((_, info, _)) => {
                    info.stack_frame = stack;
                    info.spill_stores += stores;
                    info.spill_loads += loads;
                }
                None => {
                    callee_spills.0 += stores;
                    callee_spills.1 += loads;
                }
            }
        } else if let (Some(i), Some(n)) = (compiling, number_before(line, " registers")) {
            let info = &mut entries[i].1;
            info.registers = n;
            info.static_shared = number_before(line, " bytes smem").unwrap_or(0);
            entries[i].2 = true;
        }
    }
    let only = entries.len() == 1;
    let (_, mut info, complete) = entries
        .into_iter()
        .find(|(name, _, _)| only || name == entry)
        .ok_or_else(|| format!("ptxas's log names no entry function `{entry}`"))?;
    if !complete {
        return Err(format!("ptxas's log gives no register count for `{entry}`"));
    }
    info.spill_stores += callee_spills.0;
    info.spill_loads += callee_spills.1;
    Ok(info)
}

/// Why a kernel compiled as `info` cannot be launched well on `arch` with `threads` a block and
/// `dynamic_shared` bytes of shared memory requested at launch: spills, shared memory past the
/// limits, or more registers than a block has. Empty when none.
pub fn problems(info: &PtxasInfo, arch: &Arch, threads: u64, dynamic_shared: u64) -> Vec<String> {
    let mut out = Vec::new();
    if info.spill_stores > 0 || info.spill_loads > 0 {
        out.push(format!(
            "spills registers: {} bytes stored, {} bytes loaded",
            info.spill_stores, info.spill_loads
        ));
    }
    if info.static_shared > MAX_STATIC_SHARED {
        out.push(format!("{} bytes of static shared memory, over {MAX_STATIC_SHARED}", info.static_shared));
    }
    let shared = info.static_shared + dynamic_shared;
    if shared > arch.max_shared_optin as u64 {
        out.push(format!(
            "{shared} bytes of shared memory, over sm_{}'s {}",
            arch.version, arch.max_shared_optin
        ));
    }
    if info.registers * threads > REGISTERS_PER_BLOCK {
        out.push(format!(
            "{} registers x {threads} threads, over the {REGISTERS_PER_BLOCK} registers of a block",
            info.registers
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // NVRTC 12.9's log for a kernel with a local array, compiled for sm_80 with -v.
    const LOG: &str = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k' for 'sm_80'
ptxas info    : Function properties for k
ptxas         .     24 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 25 registers, used 0 barriers, 24 bytes cumulative stack size, 376 bytes cmem[0]
ptxas info    : Compile time = 8.066 ms
";

    #[test]
    fn the_figures_of_the_entry_function_are_read_from_the_verbose_log() {
        let info = parse(LOG, "k").unwrap();
        assert_eq!(info, PtxasInfo { registers: 25, stack_frame: 24, ..Default::default() });
        assert!(problems(&info, &Arch::SM80, 256, 0).is_empty());
    }

    #[test]
    fn spills_in_a_called_function_and_shared_memory_count_against_the_entry() {
        let log = "ptxas info    : Compiling entry function 'big' for 'sm_90a'
ptxas info    : Function properties for helper
ptxas         .     8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Function properties for big
ptxas         .     40 bytes stack frame, 16 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 50000 bytes smem, 400 bytes cmem[0]
";
        let info = parse(log, "big").unwrap();
        assert_eq!((info.registers, info.static_shared), (255, 50_000));
        assert_eq!((info.spill_stores, info.spill_loads, info.stack_frame), (24, 20, 40));
        let found = problems(&info, &Arch::SM90, 512, 200_000).join("; ");
        for part in ["spills registers", "static shared", "over sm_90's 232448", "over the 65536 registers"] {
            assert!(found.contains(part), "{part} missing from: {found}");
        }
    }

    #[test]
    fn a_log_without_the_entry_or_its_registers_is_an_error_not_zeroes() {
        assert!(parse("ptxas info    : 0 bytes gmem\n", "k").is_err());
        let cut = "ptxas info    : Compiling entry function 'k' for 'sm_80'\n";
        assert!(parse(cut, "k").unwrap_err().contains("no register count"));
    }

    #[test]
    fn architectures_are_named_as_nvrtc_and_cubecl_cuda_name_them() {
        assert_eq!(Arch::parse("sm_90a").unwrap().nvrtc_name(), "sm_90a");
        assert_eq!(Arch::parse("90").unwrap(), Arch::SM90);
        assert_eq!(Arch::parse("sm_80").unwrap().nvrtc_name(), "sm_80");
        assert!(Arch::parse("sm_52").unwrap_err().contains("sm_80"));
        assert!(Arch::parse("hopper").is_err());
    }
}
