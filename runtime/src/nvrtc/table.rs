//! The check's report: one row per kernel launch (call, element type), with NVRTC's and ptxas's
//! verdict for each architecture; printed as a Markdown table and written as JSON.

use serde::Serialize;

use super::ptxas::PtxasInfo;

/// How one kernel compiled for one architecture.
#[derive(Debug, Clone, Serialize)]
pub struct ArchResult {
    /// The architecture NVRTC compiled for (`sm_90a`).
    pub arch: String,
    /// ptxas's figures, when it compiled.
    pub ptxas: Option<PtxasInfo>,
    /// Why it did not compile, or why ptxas's report could not be read.
    pub error: Option<String>,
    /// What the launch would break there (spills, shared memory, registers a block).
    pub problems: Vec<String>,
    pub cubin_bytes: usize,
}

impl ArchResult {
    /// `arch` where the kernel did not compile, and why.
    pub fn failed(arch: String, error: String) -> ArchResult {
        ArchResult { arch, ptxas: None, error: Some(error), problems: Vec::new(), cubin_bytes: 0 }
    }
}

/// One kernel launch of the runtime and its results.
#[derive(Debug, Clone, Serialize)]
pub struct KernelRow {
    /// The runtime's call that launches it, with its flags.
    pub call: String,
    /// Where alexnet.ron's step makes that call, and the shape.
    pub at: String,
    /// The element type it was launched with.
    pub dtype: String,
    pub entrypoint: String,
    /// CubeCL's kernel id: comptime flags, argument types and vector sizes.
    pub id: String,
    pub cube_dim: (u32, u32, u32),
    pub cube_count: (u32, u32, u32),
    /// `launch` (bounds-checked code) rather than `launch_unchecked`.
    pub bounds_checked: bool,
    pub dynamic_shared: u64,
    pub archs: Vec<ArchResult>,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// NVRTC's version, `12.9`.
    pub nvrtc: String,
    pub archs: Vec<String>,
    pub batch: usize,
    pub rows: Vec<KernelRow>,
    /// Launches that CubeCL itself could not compile, with the call that made them.
    pub cubecl_errors: Vec<String>,
    /// Distinct kernel sources compiled (each once per architecture).
    pub distinct_sources: usize,
    pub seconds: f64,
    /// Each distinct kernel's CUDA C++ per architecture, named `ENTRYPOINT-ARCH-N.cu`.
    #[serde(skip)]
    pub sources: Vec<(String, String)>,
}

impl Report {
    /// Every failure: CubeCL or NVRTC errors, spills, shared memory or registers past the limits.
    pub fn failures(&self) -> Vec<String> {
        let mut out = self.cubecl_errors.clone();
        for row in &self.rows {
            for a in &row.archs {
                let what = format!("{} ({}, {}) on {}", row.call, row.entrypoint, row.dtype, a.arch);
                if let Some(e) = &a.error {
                    out.push(format!("{what}: {}", e.lines().take(12).collect::<Vec<_>>().join("\n    ")));
                }
                out.extend(a.problems.iter().map(|p| format!("{what}: {p}")));
            }
        }
        out
    }

    /// The table: each launch, its settings, and per architecture registers a thread, stack
    /// frame (local memory), spilled bytes (stores/loads) and shared memory (static + dynamic).
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# NVRTC on every CubeCL kernel (alexnet.ron, batch {})\n\n\
             NVRTC {}; {} launches, {} distinct kernels, compiled for {} in {:.1} s. Per \
             architecture: registers a thread, stack frame bytes (local memory: the thread's own \
             arrays and spills), spilled bytes stored/loaded, shared memory bytes static+dynamic.\n\n",
            self.batch,
            self.nvrtc,
            self.rows.len(),
            self.distinct_sources,
            self.archs.join(" and "),
            self.seconds
        );
        s.push_str("| call | where (shape) | type | cube dim x count | checked |");
        for a in &self.archs {
            s.push_str(&format!(" {a} regs | stack | spills | smem |"));
        }
        s.push_str("\n| --- | --- | --- | --- | --- |");
        s.push_str(&" ---: | ---: | ---: | ---: |".repeat(self.archs.len()));
        s.push('\n');
        for row in &self.rows {
            let (d, c) = (row.cube_dim, row.cube_count);
            s.push_str(&format!(
                "| {} | {} | {} | {}x{}x{} x {} | {} |",
                row.call,
                row.at,
                row.dtype,
                d.0,
                d.1,
                d.2,
                c.0 as u64 * c.1 as u64 * c.2 as u64,
                if row.bounds_checked { "yes" } else { "no" }
            ));
            for a in &row.archs {
                match (&a.ptxas, &a.error) {
                    (Some(p), _) => s.push_str(&format!(
                        " {} | {} | {}/{} | {}+{} |",
                        p.registers,
                        p.stack_frame,
                        p.spill_stores,
                        p.spill_loads,
                        p.static_shared,
                        row.dynamic_shared
                    )),
                    (None, _) => s.push_str(" error | | | |"),
                }
            }
            s.push('\n');
        }
        let failures = self.failures();
        if failures.is_empty() {
            s.push_str(
                "\nEvery kernel compiled for every architecture, with no spills and within the limits.\n",
            );
        } else {
            s.push_str(&format!("\n{} failures:\n", failures.len()));
            for f in &failures {
                s.push_str(&format!("- {f}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(problems: Vec<String>, error: Option<String>) -> KernelRow {
        KernelRow {
            call: "lrn_forward".into(),
            at: "norm1 [128, 96, 55, 55]".into(),
            dtype: "f32".into(),
            entrypoint: "lrn_forward_kernel_f32".into(),
            id: String::new(),
            cube_dim: (32, 8, 1),
            cube_count: (1452, 1, 1),
            bounds_checked: true,
            dynamic_shared: 0,
            archs: vec![ArchResult {
                arch: "sm_90a".into(),
                ptxas: error.is_none().then(|| PtxasInfo { registers: 40, ..Default::default() }),
                error,
                problems,
                cubin_bytes: 9000,
            }],
        }
    }

    fn report(rows: Vec<KernelRow>) -> Report {
        Report {
            nvrtc: "12.9".into(),
            archs: vec!["sm_90a".into()],
            batch: 128,
            rows,
            cubecl_errors: vec![],
            distinct_sources: 1,
            seconds: 1.0,
            sources: vec![],
        }
    }

    #[test]
    fn a_clean_report_has_no_failures_and_says_so_under_its_table() {
        let r = report(vec![row(vec![], None)]);
        assert!(r.failures().is_empty());
        let md = r.markdown();
        assert!(md.contains(
            "| lrn_forward | norm1 [128, 96, 55, 55] | f32 | 32x8x1 x 1452 | yes | 40 | 0 | 0/0 | 0+0 |"
        ));
        assert!(md.contains("no spills"));
    }

    #[test]
    fn compile_errors_and_problems_are_failures_named_by_call_and_architecture() {
        let r = report(vec![
            row(vec!["spills registers".into()], None),
            row(vec![], Some("NVRTC failed".into())),
        ]);
        let f = r.failures();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("lrn_forward (lrn_forward_kernel_f32, f32) on sm_90a: spills"));
        assert!(f[1].contains("NVRTC failed"));
        assert!(r.markdown().contains("2 failures"));
    }
}
