#!/usr/bin/env python3
"""The table benches/decode.sh prints and records in benches/results/decode-DATE-HOST.md, from
its results (one JSON object per line: tool, data, workers, result)."""
import datetime
import json
import os
import platform
import subprocess
import sys

NAMES = {
    "alexrt": "alexrt bench-data",
    "baseline": "alexrt bench-data, baseline build",
    "torchvision": "torchvision DataLoader (PIL)",
    "webdataset": "webdataset + torchvision (PIL)",
    "dali": "NVIDIA DALI, CPU pipeline",
}


def main():
    path, n, large, cores, folder_kib, shard_kib, baseline = sys.argv[1:8]
    rows = [json.loads(line) for line in open(path)]
    rate = {}
    skipped = {}
    for r in rows:
        key = (r["tool"], r["data"], r["workers"])
        if "skipped" in r["result"]:
            skipped[(r["tool"], r["data"])] = r["result"]["skipped"]
        else:
            rate[key] = r["result"]["images_per_second"]
    cores = int(cores)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    load = open("/proc/loadavg").read().split()[:3]
    tv = rate.get(("torchvision", "folder", 1))
    lines = [
        "# Data benchmark: decode + the paper's augmentation, alexrt and its peers",
        "",
        f"- date: {datetime.date.today()}, commit {commit}; machine: {cpu}, {os.cpu_count()} cores; load before: {' '.join(load)}",
        f"- data: {n} distinct JPEGs cut from scikit-image's photographs, long side 400-500, quality 90"
        f" ({int(folder_kib) // 1024} MiB; `benches/make_photos.py`), packed by `alexrt pack` into 256px shards"
        f" ({int(shard_kib) // 1024} MiB); {large} camera-sized ones (long side 1600-2000, upscaled)",
        "- each: short side 256, centre 256, random 227 crop, flip, PCA lighting (not DALI: it has none), normalise;"
        " batches of 32; one untimed pass, then one timed; alexrt: the median of 5 such runs",
        f"- 1 worker: one decoding thread (torch: the main process, 1 thread); {cores} workers: all cores",
        "",
        f"| pipeline | data | images/s, 1 worker | images/s, {cores} workers | {cores} / 1 | 1 worker / torchvision on the folder |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    seen = []
    for r in rows:
        k = (r["tool"], r["data"])
        if k not in seen:
            seen.append(k)
    for tool, data in seen:
        if (tool, data) in skipped:
            lines.append(f"| {NAMES[tool]} | {data} | skipped: {skipped[(tool, data)]} | | | |")
            continue
        one, many = rate.get((tool, data, 1)), rate.get((tool, data, cores))
        lines.append(
            f"| {NAMES[tool]} | {data} | {one:.0f} | {many:.0f} | {many / one:.2f}x | {one / tv:.2f}x |"
            if one and many and tv else f"| {NAMES[tool]} | {data} | {one} | {many} | | |")
    goals = []
    shards, folder = rate.get(("alexrt", "shards", 1)), rate.get(("alexrt", "folder", 1))
    if shards and folder:
        goals.append(f"- alexrt from the 256px shards, one worker: {shards:.0f} images/s per core"
                     f" (goal: at least 2000: {'met' if shards >= 2000 else 'not met'})")
        goals.append(f"- shards / the folder of original JPEGs, one worker: {shards / folder:.2f}x"
                     f" (goal: at least 3x: {'met' if shards / folder >= 3 else 'not met'})")
    many = rate.get(("alexrt", "shards", cores))
    if shards and many and cores >= 2:
        goals.append(f"- {cores} workers / one worker, shards: {many / shards:.2f}x"
                     f" (goal for 2 workers: at least 1.8x: {'met' if many / shards >= 1.8 else 'not met'})")
    if baseline:
        for data in ("shards", "folder", "large"):
            a, b = rate.get(("alexrt", data, 1)), rate.get(("baseline", data, 1))
            if a and b:
                goals.append(f"- this build / {baseline}, {data}, one worker: {a / b:.2f}x")
    text = "\n".join(lines + [""] + goals) + "\n"
    print(text)
    out = f"benches/results/decode-{datetime.date.today()}-{platform.node().split('.')[0] or 'host'}.md"
    # An earlier run of the same day stays below this one (as benches/report.py keeps them).
    earlier = open(out).read() if os.path.exists(out) else ""
    open(out, "w").write(text + ("\n---\n\n## Earlier run\n\n" + earlier if earlier else ""))
    print(f"recorded in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
