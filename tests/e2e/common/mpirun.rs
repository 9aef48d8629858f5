//! What the data-parallel tests share: tiny.ron's plans for N replicas, `alexrt train` run as one
//! process or under `mpirun -np N`, the weights it saved, and the reason a test skips (a build
//! without the `mpi` feature, or no Open MPI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alexc::ir::Mode;
use alexc::passes::DataParallel;
use alexc::plan::Plan;
use alexrt::exec::Executor;
use alexrt::{weights, Cpu};

/// tiny.ron's training plan at `batch` images per replica for `replicas` processes; without
/// `dropout`, its dropout layer drops nothing (rate 0).
pub fn tiny_plan(batch: usize, replicas: usize, dropout: bool) -> Plan {
    tiny_plan_in(batch, replicas, dropout, alexc::ir::Precision::F32)
}

/// [`tiny_plan`] computing in `precision`.
pub fn tiny_plan_in(batch: usize, replicas: usize, dropout: bool, precision: alexc::ir::Precision) -> Plan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut text = std::fs::read_to_string(root.join("graphs/tiny.ron")).unwrap();
    if !dropout {
        assert!(text.contains("Dropout(rate: 0.5)"), "tiny.ron's dropout layer changed");
        text = text.replace("Dropout(rate: 0.5)", "Dropout(rate: 0.0)");
    }
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering {
        data_parallel: (replicas > 1).then(|| DataParallel::new(replicas)),
        precision: Some(precision),
        ..Default::default()
    };
    let lowered = alexc::lower_with(&checked, Mode::Train, batch, &lowering, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(Mode::Train, "tiny.ron")
}

/// An empty folder of this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alexrt-dp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mpirun`, when this build has MPI and the machine has Open MPI; otherwise why the test skips.
pub fn mpirun() -> Result<PathBuf, String> {
    if !alexrt::distributed::WITH_MPI {
        return Err("alexrt is built without the `mpi` feature (cargo test --features alexrt/mpi)".into());
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("mpirun")).find(|p| p.is_file()));
    found.ok_or_else(|| "no mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)".into())
}

#[macro_export]
macro_rules! mpirun_or_skip {
    ($test:expr) => {
        match common::mpirun::mpirun() {
            Ok(m) => m,
            Err(why) => {
                eprintln!("SKIPPED {}: {why}", $test);
                return;
            }
        }
    };
}

/// `mpirun -np n alexrt` on this machine's shared memory (as root too), the collective timeout
/// 60 s: the subcommand and its arguments follow.
pub fn alexrt_under_mpirun(mpirun: &Path, n: usize) -> Command {
    let mut c = Command::new(mpirun);
    c.args([
        "--oversubscribe",
        "--mca",
        "btl",
        "self,vader",
        "-np",
        &n.to_string(),
        env!("CARGO_BIN_EXE_alexrt-under-test"),
    ]);
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.env("ALEXRT_COLLECTIVE_TIMEOUT", "60");
    c
}

/// `alexrt train PLAN --out OUT ARGS...` on the CPU with tiny synthetic data, under
/// `mpirun -np ranks` when `ranks` is given (collective timeout 60 s unless `env` says), with
/// `env` set.
pub fn alexrt_train_command(
    plan: &Path,
    out: &Path,
    ranks: Option<(&Path, usize)>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = match ranks {
        Some((mpirun, n)) => alexrt_under_mpirun(mpirun, n),
        None => Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")),
    };
    cmd.args([
        "train",
        plan.to_str().unwrap(),
        "--device",
        "cpu",
        "--train-images",
        "256",
        "--val-images",
        "30",
    ]);
    cmd.arg("--out").arg(out).args(args);
    cmd.envs(env.iter().copied());
    cmd
}

/// The same, run to its end.
pub fn alexrt_train(
    plan: &Path,
    out: &Path,
    ranks: Option<(&Path, usize)>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    alexrt_train_command(plan, out, ranks, args, env).output().expect("alexrt runs")
}

/// The run's stderr, after checking that it succeeded.
pub fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "alexrt train failed:\n{stderr}");
    stderr
}

/// The parameters in a weights file, by name, read through a plan of the same graph.
pub fn parameters(plan: &Plan, path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut exec = Executor::<Cpu>::new(plan, Default::default()).unwrap();
    weights::load(&mut exec, path).unwrap();
    exec.param_names()
        .into_iter()
        .map(|(name, _)| (name.clone(), exec.persistent_values(&name).unwrap().unwrap()))
        .collect()
}

/// The largest difference between the parameters of two weights files, relative to each
/// tensor's largest magnitude; fails past 1e-4 (f32 summation order), naming the parameter.
pub fn largest_difference(plan: &Plan, expected: &Path, got: &Path) -> f32 {
    let mut worst = 0.0f32;
    for ((name, a), (_, b)) in parameters(plan, expected).iter().zip(parameters(plan, got)) {
        let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-3);
        for (x, y) in a.iter().zip(&b) {
            let err = (x - y).abs() / scale;
            assert!(err < 1e-4, "{name}: {x} (expected) vs {y}, relative {err:e}");
            worst = worst.max(err);
        }
    }
    worst
}
