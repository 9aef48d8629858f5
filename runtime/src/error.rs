//! Runtime errors: each says what went wrong and what to do.

use alexir::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Input(String),
    #[error("training stopped: the loss became {value} at epoch {epoch}, step {step}; lower the learning rate (optimizer.lr) or check the data")]
    NonFinite { value: f64, epoch: usize, step: usize },
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A device library's error (NCCL's all-reduce on CUDA: `distributed::on_device`), typed
    /// where it arises, its message naming the fix.
    #[error(transparent)]
    Device(Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error: {0} (this is a bug in alexrt; please report it)")]
    Internal(String),
}
