#!/usr/bin/env python3
"""Prints and records the CPU benchmark's table (see benches/cpu.sh): for each batch size, our
training step and inference batch against PyTorch eager and torch.compile, with ratios."""
import datetime
import json
import os
import platform
import subprocess
import sys

work, graph, batches = sys.argv[1], sys.argv[2], sys.argv[3:]
load = lambda name: json.load(open(os.path.join(work, name)))


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ms(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds else "-"


def ratio(ours, ref):
    return f"{ours / ref:.2f}x" if ref else "-"


commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
first = load(f"torch-{batches[0]}.json")
ours_threads = load(f"ours-train-{batches[0]}.json")["threads"]
lines = [
    f"# CPU benchmark: {graph}, batch {', '.join(batches)}",
    "",
    f"- date: {datetime.date.today()}, commit {commit}, load average {os.getloadavg()[0]:.2f} at the end",
    f"- machine: {cpu_model()}, {os.cpu_count()} cores; alexrt (burn Flex + our convolutions) "
    f"{ours_threads} threads, PyTorch {first['torch']} {first['threads']} threads",
    "- medians of the steps after warm-up (steps per batch below), every column in the same run",
    "",
    "| batch | what | alexrt | PyTorch eager | torch.compile | alexrt / eager | alexrt / compiled |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
]
notes = []
for batch in batches:
    train, infer, torch = load(f"ours-train-{batch}.json"), load(f"ours-infer-{batch}.json"), load(f"torch-{batch}.json")
    steps = open(os.path.join(work, f"steps-{batch}")).read().strip()
    rows = [
        ("training step", train["step_seconds"], torch["step_seconds"], torch.get("compiled_step_seconds")),
        ("inference", infer["step_seconds"], torch["forward_seconds"], torch.get("compiled_forward_seconds")),
    ]
    try:
        train16, infer16 = load(f"ours-train-bf16-{batch}.json"), load(f"ours-infer-bf16-{batch}.json")
        rows += [
            ("bf16 training step", train16["step_seconds"], torch.get("bf16_step_seconds"),
             torch.get("bf16_compiled_step_seconds")),
            ("bf16 inference", infer16["step_seconds"], torch.get("bf16_forward_seconds"),
             torch.get("bf16_compiled_forward_seconds")),
        ]
        notes.append(
            f"Batch {batch}: alexrt's bf16 training step is {train16['step_seconds'] / train['step_seconds']:.2f}x its "
            f"f32 step, bf16 inference {infer16['step_seconds'] / infer['step_seconds']:.2f}x; bf16 plan arena "
            f"{train16['arena_bytes'] / 2**20:.1f} MiB (f32 {train['arena_bytes'] / 2**20:.1f} MiB). PyTorch's bf16 autocast "
            f"columns are in the eager and compiled columns of the bf16 rows."
        )
        pairs = sorted(
            load(f"pair-bf16-{batch}-{i}.json")["step_seconds"] / load(f"pair-f32-{batch}-{i}.json")["step_seconds"]
            for i in (1, 2, 3)
        )
        notes.append(
            f"Batch {batch}: bf16 training step / f32 training step in three alternated pairs: "
            f"{', '.join(f'{r:.2f}x' for r in pairs)}; median {pairs[1]:.2f}x."
        )
    except FileNotFoundError:
        pass
    for what, ours, eager, compiled in rows:
        lines.append(
            f"| {batch} | {what} | {ms(ours)} | {ms(eager)} | {ms(compiled)} | {ratio(ours, eager)} | {ratio(ours, compiled)} |"
        )
    notes.append(
        f"Batch {batch} ({steps} steps): alexrt {int(batch) / train['step_seconds']:.1f} images/s, PyTorch eager "
        f"{int(batch) / torch['step_seconds']:.1f} images/s; peak step memory in alexrt "
        f"{train['peak_bytes'] / 2**20:.1f} MiB (plan arena {train['arena_bytes'] / 2**20:.1f} MiB)."
    )
text = "\n".join(lines + [""] + notes) + "\n"
print(text)
host = platform.node().split(".")[0] or "host"
os.makedirs("benches/results", exist_ok=True)
out = f"benches/results/cpu-{datetime.date.today()}-{host}.md"
# A later run of the same day goes on top; the earlier runs stay below it.
earlier = open(out).read() if os.path.exists(out) else ""
with open(out, "w") as f:
    f.write(text + ("\n---\n\n## Earlier run\n\n" + earlier if earlier else ""))
print(f"recorded in {out}", file=sys.stderr)
