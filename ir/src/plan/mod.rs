//! plan.bin: what the compiler hands the runtime. A fixed header — magic bytes, format version,
//! CRC-32 and length of the payload — then the payload in postcard. Files are written atomically.
//! A plan that decodes is checked for consistency ([`check`]) before anyone is handed it.

mod check;

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ir::{Graph, Mode};
use crate::memory::MemoryPlan;

pub const MAGIC: &[u8; 8] = b"ALEXPLAN";
/// Bumped whenever the payload's encoding changes, so that an older plan is refused with a
/// "recompile" message rather than misread. 2: IR-owned training types, `State` names its parameter.
/// 3: each node's device, the graph's device count, per-device memory plans, transfers and pads;
/// the data-parallel replica count and the `all_reduce_mean` op. 4: bf16 and f16 element types,
/// the `cast` op, the step's precision. 5: f16's loss scaling (`scale_loss_grad`, `unscale_grads`, the
/// `loss_scale` state, guarded updates).
pub const FORMAT_VERSION: u32 = 5;
const HEADER_LEN: usize = 8 + 4 + 4 + 8;

/// A compiled step: the lowered, fused, scheduled graph and its memory plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The alexc version that wrote it.
    pub compiler: String,
    /// The graph file it was compiled from.
    pub source: String,
    pub mode: Mode,
    pub graph: Graph,
    pub memory: MemoryPlan,
    pub nodes_before_fusion: usize,
    pub nodes_after_fusion: usize,
    /// Each device's memory plan, for a step placed on several devices (empty otherwise).
    pub device_memory: Vec<MemoryPlan>,
    /// The processes the step is compiled for (`alexc compile --replicas N`): each runs it on its
    /// own batch of the graph's batch size, and the gradients are averaged across them. 1: a
    /// single process. The runtime refuses to run it at another world size.
    pub replicas: usize,
}

/// Why a plan file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: cannot read the plan file: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: cannot write the plan file: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path}: not an alexc plan file (it does not start with ALEXPLAN); compile one with `alexc compile GRAPH.ron`")]
    NotAPlan { path: String },
    #[error("{path}: the plan file is truncated ({actual} of {expected} bytes); compile it again")]
    Truncated { path: String, actual: usize, expected: usize },
    #[error("{path}: plan format version {found}, but this build reads version {FORMAT_VERSION}; recompile the graph with this alexc")]
    Version { path: String, found: u32 },
    #[error("{path}: the plan file is corrupted (checksum mismatch); compile it again")]
    Checksum { path: String },
    #[error("{path}: the plan file does not decode ({detail}); compile it again with this alexc")]
    Decode { path: String, detail: String },
    #[error("{path}: the plan is inconsistent ({detail}); compile it again with this alexc")]
    Inconsistent { path: String, detail: String },
}

impl Plan {
    pub fn to_bytes(&self) -> Vec<u8> {
        seal(&self.payload())
    }

    /// The plan's postcard payload, without the header (for tests that damage it).
    #[doc(hidden)]
    pub fn payload(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a plan always serialises")
    }

    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Plan, PlanError> {
        let path = path.to_string();
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(PlanError::NotAPlan { path });
        }
        if bytes.len() < HEADER_LEN {
            return Err(PlanError::Truncated { path, actual: bytes.len(), expected: HEADER_LEN });
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let version = word(8);
        if version != FORMAT_VERSION {
            return Err(PlanError::Version { path, found: version });
        }
        let crc = word(12);
        let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        let expected = HEADER_LEN.saturating_add(len);
        if bytes.len() < expected {
            return Err(PlanError::Truncated { path, actual: bytes.len(), expected });
        }
        let payload = &bytes[HEADER_LEN..expected];
        if crc32fast::hash(payload) != crc || bytes.len() != expected {
            return Err(PlanError::Checksum { path });
        }
        check::check_node_holes(payload)
            .map_err(|detail| PlanError::Inconsistent { path: path.clone(), detail })?;
        let plan: Plan = postcard::from_bytes(payload)
            .map_err(|e| PlanError::Decode { path: path.clone(), detail: e.to_string() })?;
        check::check_plan(&plan).map_err(|detail| PlanError::Inconsistent { path, detail })?;
        Ok(plan)
    }

    pub fn read(path: &Path) -> Result<Plan, PlanError> {
        let name = path.display().to_string();
        if path.is_dir() {
            return Err(PlanError::Read {
                path: name,
                source: std::io::Error::other("it is a directory; pass a plan.bin file"),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| PlanError::Read { path: name.clone(), source })?;
        Plan::from_bytes(&bytes, &name)
    }

    /// Writes to a temporary file beside `path`, then renames it over `path`: a reader never sees
    /// half a plan, and a failed write leaves any previous file as it was.
    pub fn write(&self, path: &Path) -> Result<(), PlanError> {
        write_atomically(path, &self.to_bytes())
            .map_err(|source| PlanError::Write { path: path.display().to_string(), source })
    }
}

/// A plan file's bytes around a postcard `payload`: the header with its length and checksum, then
/// the payload. (Public for tests that re-seal a damaged payload, so that the decoder and the
/// consistency check see it rather than the checksum.)
#[doc(hidden)]
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A device or pipe (`-o /dev/null`, `-o /dev/stdout`) is written in place, never renamed over.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::OpenOptions::new().write(true).open(path)?.write_all(bytes);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
