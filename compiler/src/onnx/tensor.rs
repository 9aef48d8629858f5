//! Tensors in ONNX: initializers and constants read as numbers (inline `raw_data` or typed
//! fields, or external data in a file beside the model, as torch.onnx's newer exporter writes
//! large models), and f32 initializers written.

use std::path::Path;

use super::error::OnnxError;
use super::proto::{data_type, TensorProto, EXTERNAL};

/// A constant tensor's shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
}

/// An f32 initializer named `name` of shape `dims`, inline (`raw_data`, little-endian).
pub fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An int64 initializer (the shapes and indices some ops take as inputs).
pub fn i64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(data_type::INT64),
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// Reads `t` (of the model at `model`) as numbers: f32, f64, int32 and int64 tensors.
pub fn read(t: &TensorProto, model: &Path) -> Result<Constant, OnnxError> {
    let file = model.display().to_string();
    let name = t.name.clone().unwrap_or_default();
    let fail = |message: String, help: &str| OnnxError::new(&file, message, help);
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| {
            fail(format!("tensor `{name}` has a negative dimension {d}"), "re-export the model")
        })?);
    }
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| {
        fail(format!("tensor `{name}` has {dims:?} elements, too many"), "re-export the model")
    })?;
    let dtype = t.data_type.unwrap_or(0);
    let width = match dtype {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::DOUBLE | data_type::INT64 => 8,
        other => {
            return Err(fail(
                format!("tensor `{name}` has ONNX data type {other}, which alexc does not read"),
                "use float32 weights (data type 1); int64 and int32 for shapes",
            ))
        }
    };
    let external;
    let raw: Option<&[u8]> = if t.data_location == Some(EXTERNAL) {
        external = read_external(t, model, &name, count * width)?;
        Some(&external)
    } else {
        t.raw_data.as_deref()
    };
    let values: Vec<f64> = match raw {
        Some(bytes) => {
            if bytes.len() != count * width {
                return Err(fail(
                    format!(
                        "tensor `{name}` holds {} bytes, but {dims:?} needs {}",
                        bytes.len(),
                        count * width
                    ),
                    "the model (or its external data file) is damaged or truncated; export it again",
                ));
            }
            bytes
                .chunks_exact(width)
                .map(|c| match dtype {
                    data_type::FLOAT => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                    data_type::INT32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                    data_type::DOUBLE => f64::from_le_bytes(c.try_into().expect("8 bytes")),
                    _ => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
                })
                .collect()
        }
        None => match dtype {
            data_type::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
            data_type::INT32 => t.int32_data.iter().map(|&v| v as f64).collect(),
            data_type::DOUBLE => t.double_data.clone(),
            _ => t.int64_data.iter().map(|&v| v as f64).collect(),
        },
    };
    if values.len() != count {
        return Err(fail(
            format!("tensor `{name}` holds {} values, but {dims:?} needs {count}", values.len()),
            "the model is damaged; export it again",
        ));
    }
    Ok(Constant { dims, values })
}

/// The `bytes` bytes of an external tensor, from the file its `location` names beside the model.
fn read_external(t: &TensorProto, model: &Path, name: &str, bytes: usize) -> Result<Vec<u8>, OnnxError> {
    let file = model.display().to_string();
    let entry = |key: &str| {
        t.external_data.iter().find(|e| e.key.as_deref() == Some(key)).and_then(|e| e.value.clone())
    };
    let location = entry("location").ok_or_else(|| {
        OnnxError::new(
            &file,
            format!("tensor `{name}` is external but names no `location`"),
            "export the model again",
        )
    })?;
    let relative = Path::new(&location);
    if relative.is_absolute() || relative.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(OnnxError::new(
            &file,
            format!("tensor `{name}`'s external data `{location}` is not a file beside the model"),
            "keep the external data file in the model's folder (ONNX names it relative to the model)",
        ));
    }
    let number = |key: &str| -> Result<Option<usize>, OnnxError> {
        entry(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    OnnxError::new(
                        &file,
                        format!("tensor `{name}`: external `{key}` = `{v}` is not a number"),
                        "export the model again",
                    )
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(bytes);
    let path = model.parent().unwrap_or(Path::new(".")).join(relative);
    let data = std::fs::read(&path).map_err(|e| {
        OnnxError::new(
            &file,
            format!("tensor `{name}`'s external data {}: {e}", path.display()),
            "copy the model's external data file (written beside it by the exporter) next to the model",
        )
    })?;
    data.get(offset..offset.saturating_add(length)).map(<[u8]>::to_vec).ok_or_else(|| {
        OnnxError::new(
            &file,
            format!(
                "tensor `{name}`: bytes {offset}..{} are past the end of {} ({} bytes)",
                offset + length,
                path.display(),
                data.len()
            ),
            "the external data file is truncated or belongs to another model; export the model again",
        )
    })
}
