//! The tests' Python (the venv scripts/deps.sh makes from tests/requirements.txt): found through
//! `ALEXNET_TEST_PYTHON`, else `~/.cache/alexnet-test-venv`; a test without it, or without the
//! packages it imports, says why it skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A python that imports every module of `modules`, or why there is none.
pub fn python(modules: &[&str]) -> Result<PathBuf, String> {
    let python = match std::env::var_os("ALEXNET_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            Path::new(&home).join(".cache/alexnet-test-venv/bin/python")
        }
    };
    if !python.is_file() {
        return Err(format!(
            "no Python with tests/requirements.txt ({} is missing; scripts/test.sh makes it, or set ALEXNET_TEST_PYTHON)",
            python.display()
        ));
    }
    let imports = format!("import {}", modules.join(", "));
    let o = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !o.status.success() {
        return Err(format!(
            "{} cannot `{imports}`: {}",
            python.display(),
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ));
    }
    Ok(python)
}

/// The script `name` of tests/e2e/python.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/python").join(name)
}

#[macro_export]
macro_rules! python_or_skip {
    ($test:expr, $modules:expr) => {
        match common::python::python($modules) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: {}: {why}", $test);
                return;
            }
        }
    };
}
