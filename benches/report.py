#!/usr/bin/env python3
"""Prints and records the CPU benchmark's table (see benches/cpu.sh)."""
import datetime
import json
import os
import platform
import subprocess
import sys

work, graph, batch, steps = sys.argv[1:5]
load = lambda name: json.load(open(os.path.join(work, name)))
train, infer, torch = load("ours-train.json"), load("ours-infer.json"), load("torch.json")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = [
    ("training step (forward, backward, SGD)", train["step_seconds"], torch["step_seconds"]),
    ("inference batch (forward, no grad)", infer["step_seconds"], torch["forward_seconds"]),
]
lines = [
    f"# CPU benchmark: {graph}, batch {batch}",
    "",
    f"- date: {datetime.date.today()}, commit {commit}",
    f"- machine: {cpu_model()}, {os.cpu_count()} cores; alexrt (burn Flex) {train['threads']} threads, "
    f"PyTorch {torch['torch']} {torch['threads']} threads",
    f"- median of {steps} steps after one warm-up, each side in the same run",
    "",
    "| what | alexrt | PyTorch | alexrt / PyTorch |",
    "| --- | ---: | ---: | ---: |",
]
for what, ours, ref in rows:
    lines.append(f"| {what} | {ours * 1e3:.1f} ms | {ref * 1e3:.1f} ms | {ours / ref:.2f}x |")
lines += [
    "",
    f"Training throughput: alexrt {int(batch) / train['step_seconds']:.1f} images/s, "
    f"PyTorch {int(batch) / torch['step_seconds']:.1f} images/s. "
    f"Peak step memory in alexrt: {train['peak_bytes'] / 2**20:.1f} MiB (plan arena {train['arena_bytes'] / 2**20:.1f} MiB).",
]
text = "\n".join(lines) + "\n"
print(text)
host = platform.node().split(".")[0] or "host"
os.makedirs("benches/results", exist_ok=True)
out = f"benches/results/cpu-{datetime.date.today()}-{host}.md"
with open(out, "w") as f:
    f.write(text)
print(f"recorded in {out}", file=sys.stderr)
