//! Safetensors files of named tensors, with checksums: what weights files and checkpoints are
//! made of.
//!
//! A file alexrt writes carries two entries in its metadata: `alexrt.crc32`, the CRC-32 of each
//! tensor's bytes, and `alexrt.header_crc32`, one CRC-32 over the tensor table (names, dtypes,
//! shapes) and every other metadata entry. Reading verifies both, so a file with any byte changed
//! is refused, naming the tensor whose bytes fail. Files from elsewhere (PyTorch's
//! `safetensors.torch.save_file`) carry no checksums and are read as they are.
//! Files are written to a temporary file and renamed into place.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::RunError;

const TENSOR_CRCS: &str = "alexrt.crc32";
const HEADER_CRC: &str = "alexrt.header_crc32";

/// One tensor to write: its name, shape and values.
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Writes `tensors` (as f32, little-endian) and `metadata` to `path` atomically, with checksums.
pub fn write(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: BTreeMap<String, String>,
) -> Result<(), RunError> {
    let p = path.display().to_string();
    let fail = |message: String| RunError::Weights { path: p.clone(), message };
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let crcs: BTreeMap<&str, u32> =
        tensors.iter().zip(&bytes).map(|(t, b)| (t.name.as_str(), crc32fast::hash(b))).collect();
    let mut meta = metadata;
    meta.insert(TENSOR_CRCS.into(), serde_json::to_string(&crcs).map_err(|e| fail(e.to_string()))?);
    let table: Vec<(String, String, Vec<usize>)> =
        tensors.iter().map(|t| (t.name.clone(), format!("{:?}", Dtype::F32), t.shape.clone())).collect();
    meta.insert(HEADER_CRC.into(), header_crc(&table, &meta).to_string());
    let mut views = Vec::with_capacity(tensors.len());
    for (t, b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
            .map_err(|e| fail(format!("tensor `{}` does not match its shape: {e}", t.name)))?;
        views.push((t.name.clone(), view));
    }
    let meta: HashMap<String, String> = meta.into_iter().collect();
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| fail(e.to_string()))?;
    alexir::plan::write_atomically(path, &data).map_err(|source| RunError::Io { path: p.clone(), source })
}

/// The CRC-32 of a file's tensor table and its metadata but the header checksum itself.
fn header_crc(table: &[(String, String, Vec<usize>)], meta: &BTreeMap<String, String>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let mut table = table.to_vec();
    table.sort();
    for (name, dtype, shape) in &table {
        h.update(format!("{name}\u{1}{dtype}\u{1}{shape:?}\u{2}").as_bytes());
    }
    for (k, v) in meta.iter().filter(|(k, _)| k.as_str() != HEADER_CRC) {
        h.update(format!("{k}\u{1}{v}\u{2}").as_bytes());
    }
    h.finalize()
}

/// A safetensors file read into memory, its checksums (if any) verified.
pub struct TensorFile {
    bytes: Vec<u8>,
    path: String,
    metadata: BTreeMap<String, String>,
    checksummed: bool,
}

impl TensorFile {
    /// Reads and verifies `path`.
    pub fn read(path: &Path) -> Result<Self, RunError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| RunError::Io { path: p.clone(), source })?;
        Self::from_bytes(bytes, &p)
    }

    /// Verifies `bytes`, read from `path`.
    pub fn from_bytes(bytes: Vec<u8>, path: &str) -> Result<Self, RunError> {
        let fail = |message: String| RunError::Weights { path: path.to_string(), message };
        let file = SafeTensors::deserialize(&bytes).map_err(|e| {
            fail(format!("not a safetensors file, or its header is damaged ({e}); use a file written by alexrt or safetensors"))
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("the safetensors header does not decode ({e})")))?;
        let metadata: BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        let checksummed = metadata.contains_key(HEADER_CRC) || metadata.contains_key(TENSOR_CRCS);
        if checksummed {
            let damaged = |what: &str| {
                fail(format!("{what} fails its checksum: the file is damaged; use another copy (a run keeps the previous checkpoint beside it)"))
            };
            let table: Vec<(String, String, Vec<usize>)> = file
                .tensors()
                .into_iter()
                .map(|(name, t)| (name, format!("{:?}", t.dtype()), t.shape().to_vec()))
                .collect();
            let stored: Option<u32> = metadata.get(HEADER_CRC).and_then(|v| v.parse().ok());
            if stored != Some(header_crc(&table, &metadata)) {
                return Err(damaged("the header (tensor table and metadata)"));
            }
            let crcs: BTreeMap<String, u32> = metadata
                .get(TENSOR_CRCS)
                .and_then(|v| serde_json::from_str(v).ok())
                .ok_or_else(|| damaged("the tensor checksum table"))?;
            for (name, t) in file.tensors() {
                if crcs.get(&name) != Some(&crc32fast::hash(t.data())) {
                    return Err(damaged(&format!("tensor `{name}`")));
                }
            }
        }
        Ok(TensorFile { bytes, path: path.to_string(), metadata, checksummed })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the file carries alexrt's checksums (it was written by alexrt).
    pub fn checksummed(&self) -> bool {
        self.checksummed
    }

    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    fn parsed(&self) -> Result<SafeTensors<'_>, RunError> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| RunError::Weights { path: self.path.clone(), message: e.to_string() })
    }

    /// The names of the tensors in the file, sorted.
    pub fn names(&self) -> Result<Vec<String>, RunError> {
        let mut names: Vec<String> = self.parsed()?.names().into_iter().map(String::from).collect();
        names.sort();
        Ok(names)
    }

    /// Tensor `name` as f32 values, checked against `shape`: f64 tensors are rounded, bf16 and f16
    /// ones (as many published models are saved) widened, which is exact.
    pub fn tensor_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, RunError> {
        let fail = |message: String| RunError::Weights { path: self.path.clone(), message };
        let file = self.parsed()?;
        let t =
            file.tensor(name).map_err(|_| fail(format!("tensor `{name}` is missing (shape {shape:?})")))?;
        if t.shape() != shape {
            return Err(fail(format!("tensor `{name}` has shape {:?}, the plan needs {shape:?}", t.shape())));
        }
        match t.dtype() {
            Dtype::F32 => {
                Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            Dtype::F64 => Ok(t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect()),
            Dtype::BF16 => Ok(t
                .data()
                .chunks_exact(2)
                .map(|c| burn::tensor::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            Dtype::F16 => Ok(t
                .data()
                .chunks_exact(2)
                .map(|c| burn::tensor::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            other => Err(fail(format!("tensor `{name}` is {other:?}; use F32, F64, BF16 or F16"))),
        }
    }
}
