//! Values held by the interpreter: burn tensors of any rank, by element kind. An op is written once
//! for every rank: [`with_float!`] gives its body a `Tensor<B, D>` of the value's own rank.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{BoolTensor, FloatTensor, IntTensor};
use burn::tensor::{Bool, Int, Tensor, TensorData, TensorMetadata, TensorPrimitive};

use crate::error::RunError;

/// One value of the running step: its element kind, any rank.
#[derive(Debug, Clone)]
pub enum Value<B: Backend> {
    /// Activations, gradients, parameters, the loss.
    Float(FloatTensor<B>),
    /// Argmax indices of max pooling, class labels.
    Int(IntTensor<B>),
    /// Dropout keep masks.
    Mask(BoolTensor<B>),
}

/// Runs `$body` with `$t` bound to the float value `$v` as a `Tensor<B, D>` of its own rank (1 to
/// 4) and wraps the tensor it returns as a value again; `?` works inside. The body is written once
/// and compiled for each rank.
#[macro_export]
macro_rules! with_float {
    ($v:expr, |$t:ident| $body:expr) => {{
        let v: &$crate::value::Value<_> = &$v;
        match v.rank() {
            1 => {
                let $t = v.float::<1>()?;
                $crate::value::Value::from($body)
            }
            2 => {
                let $t = v.float::<2>()?;
                $crate::value::Value::from($body)
            }
            3 => {
                let $t = v.float::<3>()?;
                $crate::value::Value::from($body)
            }
            4 => {
                let $t = v.float::<4>()?;
                $crate::value::Value::from($body)
            }
            r => return Err($crate::error::RunError::Internal(format!("a value of rank {r}"))),
        }
    }};
}

impl<B: Backend, const D: usize> From<Tensor<B, D>> for Value<B> {
    fn from(t: Tensor<B, D>) -> Self {
        Value::Float(t.into_primitive().tensor())
    }
}

impl<B: Backend, const D: usize> From<Tensor<B, D, Int>> for Value<B> {
    fn from(t: Tensor<B, D, Int>) -> Self {
        Value::Int(t.into_primitive())
    }
}

impl<B: Backend, const D: usize> From<Tensor<B, D, Bool>> for Value<B> {
    fn from(t: Tensor<B, D, Bool>) -> Self {
        Value::Mask(t.into_primitive())
    }
}

impl<B: Backend> Value<B> {
    /// A float value of `shape` from host values, in the device's float precision.
    pub fn from_host<E: burn::tensor::Element>(
        values: Vec<E>,
        shape: &[usize],
        device: &B::Device,
    ) -> Result<Self, RunError> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(RunError::Internal(format!(
                "{} values for a tensor of shape {shape:?}",
                values.len()
            )));
        }
        let flat = Tensor::<B, 1>::from_data(TensorData::new(values, [n]), device).into_primitive().tensor();
        Ok(Value::Float(B::float_reshape(flat, shape.to_vec().into())))
    }

    /// The value as a float tensor of rank `D`.
    pub fn float<const D: usize>(&self) -> Result<Tensor<B, D>, RunError> {
        match self {
            Value::Float(t) if t.shape().num_dims() == D => {
                Ok(Tensor::from_primitive(TensorPrimitive::Float(t.clone())))
            }
            other => Err(self.mismatch(other, "float", D)),
        }
    }

    /// A float value's element type.
    pub fn float_dtype(&self) -> Option<burn::tensor::DType> {
        match self {
            Value::Float(t) => Some(t.dtype()),
            _ => None,
        }
    }

    /// The value as an integer tensor of rank `D`.
    pub fn int<const D: usize>(&self) -> Result<Tensor<B, D, Int>, RunError> {
        match self {
            Value::Int(t) if t.shape().num_dims() == D => Ok(Tensor::from_primitive(t.clone())),
            other => Err(self.mismatch(other, "int", D)),
        }
    }

    /// The value as a mask of rank `D`.
    pub fn mask<const D: usize>(&self) -> Result<Tensor<B, D, Bool>, RunError> {
        match self {
            Value::Mask(t) if t.shape().num_dims() == D => Ok(Tensor::from_primitive(t.clone())),
            other => Err(self.mismatch(other, "mask", D)),
        }
    }

    fn mismatch(&self, found: &Value<B>, kind: &str, rank: usize) -> RunError {
        RunError::Internal(format!("expected a rank-{rank} {kind} value, found {}", found.describe()))
    }

    /// The same elements in `dims` (a view where the backend allows).
    pub fn reshape(&self, dims: &[usize]) -> Result<Value<B>, RunError> {
        self.clone().into_shape(dims)
    }

    /// [`Value::reshape`], taking the value: the tensor's buffer stays unshared.
    pub fn into_shape(self, dims: &[usize]) -> Result<Value<B>, RunError> {
        if dims.iter().product::<usize>() != self.dims().iter().product::<usize>() {
            return Err(RunError::Internal(format!("reshape of {} to {dims:?}", self.describe())));
        }
        let shape: burn::tensor::Shape = dims.to_vec().into();
        Ok(match self {
            Value::Float(t) => Value::Float(B::float_reshape(t, shape)),
            Value::Int(t) => Value::Int(B::int_reshape(t, shape)),
            Value::Mask(t) => Value::Mask(B::bool_reshape(t, shape)),
        })
    }

    /// The element kind and dimensions, for messages: `float[16, 96, 55, 55]`.
    pub fn describe(&self) -> String {
        let kind = match self {
            Value::Float(_) => "float",
            Value::Int(_) => "int",
            Value::Mask(_) => "mask",
        };
        format!("{kind}{:?}", self.dims())
    }

    pub fn dims(&self) -> Vec<usize> {
        match self {
            Value::Float(t) => t.shape().to_vec(),
            Value::Int(t) => t.shape().to_vec(),
            Value::Mask(t) => t.shape().to_vec(),
        }
    }

    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    /// Bytes the value holds: 4 per float or int (8 for a double-precision run), 1 per mask element.
    pub fn bytes(&self) -> usize {
        let n: usize = self.dims().iter().product();
        match self {
            Value::Float(t) => n * t.dtype().size(),
            Value::Int(_) => 4 * n,
            Value::Mask(_) => n,
        }
    }

    /// Blocks until the value is computed (backends may run asynchronously): reads one element.
    pub fn sync(&self) {
        let first = |dims: Vec<usize>| dims.iter().map(|_| 0..1).collect::<Vec<_>>();
        let _ = match self {
            Value::Float(t) => {
                let t = B::float_slice(t.clone(), &slices(first(self.dims())));
                Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(B::float_reshape(t, [1].into())))
                    .into_data()
            }
            Value::Int(t) => {
                let t = B::int_slice(t.clone(), &slices(first(self.dims())));
                Tensor::<B, 1, Int>::from_primitive(B::int_reshape(t, [1].into())).into_data()
            }
            Value::Mask(t) => {
                let t = B::bool_slice(t.clone(), &slices(first(self.dims())));
                Tensor::<B, 1, Bool>::from_primitive(B::bool_reshape(t, [1].into())).into_data()
            }
        };
    }

    fn float_data(&self) -> Result<TensorData, RunError> {
        match self {
            Value::Float(t) => {
                let n: usize = self.dims().iter().product();
                let flat = B::float_reshape(t.clone(), [n].into());
                Ok(Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(flat)).into_data())
            }
            other => Err(RunError::Internal(format!("{} is not a float value", other.describe()))),
        }
    }

    /// The values on the host in `E`, row-major, the value consumed: on a backend whose tensors
    /// are host memory, a tensor nothing else holds hands over its buffer without a copy.
    pub fn into_host_vec<E: burn::tensor::Element>(self) -> Result<Vec<E>, RunError> {
        let n: usize = self.dims().iter().product();
        match self {
            Value::Float(t) => {
                let flat = B::float_reshape(t, [n].into());
                let data = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(flat)).into_data();
                data.convert::<E>().into_vec::<E>().map_err(|e| RunError::Internal(format!("{e:?}")))
            }
            other => Err(RunError::Internal(format!("{} is not a float value", other.describe()))),
        }
    }

    /// The values as `f32` on the host, row-major.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, RunError> {
        let data = self.float_data()?.convert::<f32>();
        data.into_vec::<f32>().map_err(|e| RunError::Internal(format!("{e:?}")))
    }

    /// The values as `f64` on the host, row-major.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, RunError> {
        let data = self.float_data()?.convert::<f64>();
        data.into_vec::<f64>().map_err(|e| RunError::Internal(format!("{e:?}")))
    }
}

fn slices(ranges: Vec<std::ops::Range<usize>>) -> Vec<burn::tensor::Slice> {
    ranges.into_iter().map(burn::tensor::Slice::from).collect()
}
