//! Values held by the interpreter: burn tensors of the ranks the IR uses.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::error::RunError;

/// One value of the running step.
#[derive(Debug, Clone)]
pub enum Value<B: Backend> {
    F1(Tensor<B, 1>),
    F2(Tensor<B, 2>),
    F4(Tensor<B, 4>),
    I1(Tensor<B, 1, Int>),
    I4(Tensor<B, 4, Int>),
    M2(Tensor<B, 2, Bool>),
    M4(Tensor<B, 4, Bool>),
}

macro_rules! accessor {
    ($name:ident, $variant:ident, $ty:ty) => {
        pub fn $name(&self) -> Result<$ty, RunError> {
            match self {
                Value::$variant(t) => Ok(t.clone()),
                other => Err(RunError::Internal(format!(
                    "expected a {} value, found {}",
                    stringify!($variant),
                    other.kind()
                ))),
            }
        }
    };
}

impl<B: Backend> Value<B> {
    accessor!(f1, F1, Tensor<B, 1>);
    accessor!(f2, F2, Tensor<B, 2>);
    accessor!(f4, F4, Tensor<B, 4>);
    accessor!(i1, I1, Tensor<B, 1, Int>);
    accessor!(i4, I4, Tensor<B, 4, Int>);
    accessor!(m2, M2, Tensor<B, 2, Bool>);
    accessor!(m4, M4, Tensor<B, 4, Bool>);

    /// Blocks until the value is computed (backends may run asynchronously).
    #[allow(clippy::single_range_in_vec_init)] // burn's slice takes one range per dimension
    pub fn sync(&self) {
        let _ = match self {
            Value::F1(t) => t.clone().into_data(),
            Value::F2(t) => t.clone().slice([0..1]).into_data(),
            Value::F4(t) => t.clone().slice([0..1]).into_data(),
            Value::I1(t) => t.clone().into_data(),
            Value::I4(t) => t.clone().slice([0..1]).into_data(),
            Value::M2(t) => t.clone().slice([0..1]).into_data(),
            Value::M4(t) => t.clone().slice([0..1]).into_data(),
        };
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::F1(_) => "F1",
            Value::F2(_) => "F2",
            Value::F4(_) => "F4",
            Value::I1(_) => "I1",
            Value::I4(_) => "I4",
            Value::M2(_) => "M2",
            Value::M4(_) => "M4",
        }
    }

    pub fn dims(&self) -> Vec<usize> {
        match self {
            Value::F1(t) => t.dims().to_vec(),
            Value::F2(t) => t.dims().to_vec(),
            Value::F4(t) => t.dims().to_vec(),
            Value::I1(t) => t.dims().to_vec(),
            Value::I4(t) => t.dims().to_vec(),
            Value::M2(t) => t.dims().to_vec(),
            Value::M4(t) => t.dims().to_vec(),
        }
    }

    /// Bytes the value holds: 4 per float or int, 1 per mask element.
    pub fn bytes(&self) -> usize {
        let n: usize = self.dims().iter().product();
        match self {
            Value::M2(_) | Value::M4(_) => n,
            _ => 4 * n,
        }
    }

    fn float_data(&self) -> Result<burn::tensor::TensorData, RunError> {
        Ok(match self {
            Value::F1(t) => t.to_data(),
            Value::F2(t) => t.to_data(),
            Value::F4(t) => t.to_data(),
            other => return Err(RunError::Internal(format!("{} is not a float value", other.kind()))),
        })
    }

    /// The values as `f32` on the host.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, RunError> {
        let data = self.float_data()?.convert::<f32>();
        data.into_vec::<f32>().map_err(|e| RunError::Internal(format!("{e:?}")))
    }

    /// The values as `f64` on the host.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, RunError> {
        let data = self.float_data()?.convert::<f64>();
        data.into_vec::<f64>().map_err(|e| RunError::Internal(format!("{e:?}")))
    }
}
