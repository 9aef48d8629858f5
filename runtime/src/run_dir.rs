//! The folder of one training run: `metrics.jsonl`, `loss.png`, the checkpoint and the previous
//! one. By default `runs/<graph>`; a fresh run never overwrites an earlier run's checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::RunError;
use crate::progress::EpochRecord;
use crate::{metrics, plot};

/// Where a training run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// The folder of a run of graph `graph`: `out` when given, else `runs/<graph>`, or for a fresh
    /// run (not `resume`) whose `runs/<graph>` holds an earlier run, the next free `runs/<graph>-N`.
    /// A fresh run into an explicit `out` that holds a checkpoint is refused: it would overwrite it.
    pub fn choose(out: Option<&Path>, graph: &str, resume: bool) -> Result<RunDir, RunError> {
        let taken =
            |d: &Path| checkpoint::checkpoint_path(d).exists() || checkpoint::previous_path(d).exists();
        let dir = match out {
            Some(dir) => dir.to_path_buf(),
            None => {
                let base = PathBuf::from("runs").join(graph);
                if resume || !taken(&base) {
                    base
                } else {
                    (2..)
                        .map(|n| PathBuf::from("runs").join(format!("{graph}-{n}")))
                        .find(|d| !taken(d))
                        .unwrap_or(base)
                }
            }
        };
        if !resume && taken(&dir) {
            return Err(RunError::Input(format!(
                "{} holds the checkpoint of an earlier run; pass --resume to continue it, or choose another --out",
                dir.display()
            )));
        }
        Ok(RunDir(dir))
    }

    /// The folder rank 0 of a data-parallel run chose, as the other ranks know it (they write
    /// nothing there).
    pub fn chosen_by_rank0(path: PathBuf) -> RunDir {
        RunDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the folder.
    pub fn create(&self) -> Result<(), RunError> {
        std::fs::create_dir_all(&self.0)
            .map_err(|source| RunError::Io { path: self.0.display().to_string(), source })
    }

    pub fn checkpoint(&self) -> PathBuf {
        checkpoint::checkpoint_path(&self.0)
    }

    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }

    pub fn plot(&self) -> PathBuf {
        self.0.join("loss.png")
    }

    /// Rewrites the metrics file and the loss plot (titled `title`) with `records`. A plot that
    /// cannot be drawn is returned as a warning, not an error.
    pub fn write_records(&self, records: &[EpochRecord], title: &str) -> Result<Option<String>, RunError> {
        metrics::write_jsonl(&self.metrics(), records)?;
        let plot = self.plot();
        Ok(plot::plot(records, title, &plot).err().map(|e| format!("could not draw {}: {e}", plot.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_run_takes_the_next_free_folder_and_an_explicit_one_is_never_overwritten() {
        let root = std::env::temp_dir().join(format!("alexrt-rundir-{}", std::process::id()));
        let out = root.join("run");
        std::fs::create_dir_all(&out).unwrap();
        assert_eq!(RunDir::choose(Some(&out), "g", false).unwrap().path(), out);
        std::fs::write(checkpoint::checkpoint_path(&out), b"x").unwrap();
        let refused = RunDir::choose(Some(&out), "g", false).unwrap_err().to_string();
        assert!(refused.contains("--resume"), "{refused}");
        assert_eq!(RunDir::choose(Some(&out), "g", true).unwrap().path(), out);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
