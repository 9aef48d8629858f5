//! What a step reads and returns: a batch on the host, and the step's loss, logits and (when
//! asked) gradients.

use std::borrow::Cow;
use std::collections::HashMap;

/// A batch on the host: images `N x C x H x W` (normalised), labels in `0..classes`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
}

impl<'a> From<&'a Batch> for Cow<'a, Batch> {
    fn from(b: &'a Batch) -> Self {
        Cow::Borrowed(b)
    }
}

impl From<Batch> for Cow<'_, Batch> {
    fn from(b: Batch) -> Self {
        Cow::Owned(b)
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The mean loss (training plans only), in the device's precision.
    pub loss: Option<f64>,
    /// `N x classes` logits, row-major.
    pub logits: Vec<f64>,
    /// The most bytes of step values held at once.
    pub peak_bytes: usize,
    /// Each parameter's gradient, by name, when [`super::ExecOptions::capture_gradients`] is set (in
    /// double precision, exact for an f32 run).
    pub gradients: HashMap<String, Vec<f64>>,
}
