//! What the end-to-end tests that run `alexrt` as a person would share: the repository root,
//! scratch folders that remove themselves when the test ends (passing or not), the binary under
//! test, and tiny.ron's training plan as the README compiles it.
#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alexc::ir::Mode;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A scratch folder `alexrt-NAME-PID` under the temporary directory, emptied when made and removed
/// when dropped; it reads as the folder's path.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("alexrt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `alexrt ARGS`, run from the repository root.
pub fn alexrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).args(args).current_dir(root()).output().unwrap()
}

/// Standard output and error of a run that must have succeeded (both shown if it did not).
pub fn ok(o: &Output) -> (String, String) {
    let (out, err) =
        (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "exit {:?}\nstdout:\n{out}\nstderr:\n{err}", o.status.code());
    (out, err)
}

/// tiny.ron's training plan at batch 32, as the README compiles it, written to `dir/tiny.bin`.
pub fn tiny_plan(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap();
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, Mode::Train, 32, &mut |_, _, _| {}).unwrap();
    let path = dir.join("tiny.bin");
    lowered.into_plan(Mode::Train, "tiny.ron").write(&path).unwrap();
    path
}
