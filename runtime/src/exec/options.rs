//! What a run of the interpreter is asked besides the plan: its settings ([`ExecOptions`]), the
//! part of the schedule it covers ([`Pass`]) and what every op of one run may read ([`StepCtx`]).

/// Settings of the interpreter that are not in the plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Apply dropout in training steps (off for parity tests against a reference).
    pub dropout: bool,
    /// Copy each parameter's gradient to the host as the update reads it (for tests and tools).
    pub capture_gradients: bool,
    /// Time each node (the totals are in [`super::Executor::profile`]).
    pub profile: bool,
    /// Run fused nodes on the backend's fused kernels ([`crate::select`]); off, step by step.
    pub fused_kernels: bool,
    /// Average the gradients across the run's processes at the plan's `all_reduce_mean` nodes.
    /// Off, each node hands on this process's gradients as they are and nothing is sent: the
    /// replicas drift apart, so only to time a step without its communication
    /// (`alexrt bench --ab-all-reduce`).
    pub all_reduce: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            dropout: true,
            capture_gradients: false,
            profile: false,
            fused_kernels: true,
            all_reduce: true,
        }
    }
}

/// Which part of the schedule a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The whole step: forward, backward and update, dropout active (when the plan trains).
    Step,
    /// The forward nodes only, dropout the identity, nothing updated: evaluation.
    Forward,
}

/// What every op of one run may need besides its inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx {
    pub pass: Pass,
    /// The learning rate of this step (read by the updates only).
    pub lr: f64,
    /// Images in the batch.
    pub batch: usize,
}
