//! Data-parallel training over MPI: `mpirun -np N alexrt train` on tiny.ron gives the weights of
//! one process trained on the combined batch (N x the plan's batch), every rank holds the same
//! weights, and a plan compiled for another world size is refused. Needs a build with the `mpi`
//! feature and Open MPI's `mpirun`; without them each test says why it is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use alexc::ir::Mode;
use alexc::passes::DataParallel;
use alexc::plan::Plan;
use alexrt::exec::Executor;
use alexrt::{weights, Cpu};

/// Images per replica in a step (tiny.ron's batch is 32: smaller keeps the test quick).
const BATCH: usize = 8;
/// Training steps compared.
const STEPS: usize = 4;

fn tiny_plan(batch: usize, replicas: usize) -> Plan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(root.join("graphs/tiny.ron")).unwrap();
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering {
        data_parallel: (replicas > 1).then(|| DataParallel::new(replicas)),
        ..Default::default()
    };
    let lowered = alexc::lower_with(&checked, Mode::Train, batch, &lowering, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(Mode::Train, "tiny.ron")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alexrt-dp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mpirun`, when this build has MPI and the machine has Open MPI; otherwise why the test skips.
fn mpirun() -> Result<PathBuf, String> {
    if !cfg!(feature = "mpi") {
        return Err("alexrt is built without the `mpi` feature (cargo test --features alexrt/mpi)".into());
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("mpirun")).find(|p| p.is_file()));
    found.ok_or_else(|| "no mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)".into())
}

macro_rules! mpirun_or_skip {
    ($test:expr) => {
        match mpirun() {
            Ok(m) => m,
            Err(why) => {
                eprintln!("SKIPPED {}: {why}", $test);
                return;
            }
        }
    };
}

/// Runs `alexrt train PLAN` for STEPS steps, under `mpirun -np ranks` when `ranks` is given;
/// returns its stderr and the weights it saved.
fn train(plan: &Path, out: &Path, ranks: Option<(&Path, usize)>) -> (String, PathBuf) {
    let alexrt = env!("CARGO_BIN_EXE_alexrt");
    let saved = out.join("weights.safetensors");
    let steps = STEPS.to_string();
    let run = out.join("run");
    let args = [
        "train",
        plan.to_str().unwrap(),
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--steps-per-epoch",
        &steps,
        "--train-images",
        "256",
        "--val-images",
        "30",
        "--out",
        run.to_str().unwrap(),
        "--save-weights",
        saved.to_str().unwrap(),
    ];
    let mut cmd = match ranks {
        Some((mpirun, n)) => {
            let mut c = Command::new(mpirun);
            c.args(["--oversubscribe", "--mca", "btl", "self,vader", "-np", &n.to_string(), alexrt]);
            c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
            c.env("ALEXRT_COLLECTIVE_TIMEOUT", "60");
            c
        }
        None => Command::new(alexrt),
    };
    let output = cmd.args(args).output().expect("alexrt runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "alexrt train failed:\n{stderr}");
    (stderr, saved)
}

/// The parameters in a weights file, by name, read through a plan of the same graph.
fn parameters(plan: &Plan, path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut exec = Executor::<Cpu>::new(plan, Default::default()).unwrap();
    weights::load(&mut exec, path).unwrap();
    exec.param_names()
        .into_iter()
        .map(|(name, _)| (name.clone(), exec.persistent_values(&name).unwrap().unwrap()))
        .collect()
}

fn replicas_train_as_one_process_on_the_combined_batch(ranks: usize) {
    let mpirun = mpirun_or_skip!(format!("{ranks} ranks"));
    let dir = scratch(&format!("np{ranks}"));
    let (one, many) = (tiny_plan(BATCH * ranks, 1), tiny_plan(BATCH, ranks));
    one.write(&dir.join("one.bin")).unwrap();
    many.write(&dir.join("many.bin")).unwrap();
    let (_, single) = train(&dir.join("one.bin"), &dir.join("one"), None);
    let (log, parallel) = train(&dir.join("many.bin"), &dir.join("many"), Some((&mpirun, ranks)));
    assert!(
        log.contains(&format!("all {ranks} ranks hold identical weights")),
        "the ranks' weights were not checked equal:\n{log}"
    );
    let mut worst = 0.0f32;
    for ((name, a), (_, b)) in parameters(&one, &single).iter().zip(parameters(&one, &parallel)) {
        let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-3);
        for (x, y) in a.iter().zip(&b) {
            let err = (x - y).abs() / scale;
            assert!(err < 1e-4, "{name}: {x} (one process) vs {y} ({ranks} ranks), relative {err:e}");
            worst = worst.max(err);
        }
    }
    eprintln!("{ranks} ranks vs one process after {STEPS} steps: largest difference {worst:e} of each tensor's scale");
}

#[test]
fn two_ranks_train_the_weights_of_one_process_on_the_combined_batch() {
    replicas_train_as_one_process_on_the_combined_batch(2);
}

#[test]
fn three_ranks_train_the_weights_of_one_process_on_the_combined_batch() {
    replicas_train_as_one_process_on_the_combined_batch(3);
}

#[test]
fn a_plan_for_two_replicas_is_refused_by_three_ranks_and_by_one_process() {
    let mpirun = mpirun_or_skip!("world size mismatch");
    let dir = scratch("mismatch");
    tiny_plan(BATCH, 2).write(&dir.join("two.bin")).unwrap();
    let alexrt = env!("CARGO_BIN_EXE_alexrt");
    let plan = dir.join("two.bin");
    let out = Command::new(&mpirun)
        .args(["--oversubscribe", "--mca", "btl", "self,vader", "-np", "3", alexrt, "train"])
        .arg(&plan)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("run3"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("compiled for 2 replicas, but the run has 3"), "{stderr}");
    let out = Command::new(alexrt)
        .args(["train"])
        .arg(&plan)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("run1"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("start it with `mpirun -np 2`"), "{stderr}");
}
