#!/usr/bin/env python3
"""The table at the end of scripts/device-check.sh, from the JSON files it wrote:
    python3 benches/device_table.py OUT BATCH
Reads OUT/{kernels,alexrt-step,alexrt-step-unfused,alexrt-step-split,alexrt-step-bf16,alexrt-step-f16,pytorch,
all-reduce,nvrtc-kernels}.json (each
may be missing) and prints Markdown: kernel correctness, kernel times against the copy bandwidth and PyTorch, the
fused conv1 tail against the same work unfused, each timed kernel's registers, spills and shared memory as NVRTC
compiles it for this GPU (alexrt check-nvrtc --arch native), grouped convolutions against their split, and the
training step against PyTorch eager and torch.compile."""
import json
import os
import sys


def load(out, name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def size(b):
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"


def num(x):
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


# check-kernels' timings and the runtime calls (alexrt check-nvrtc's rows) that make them.
TIMED_CALLS = [("lrn_forward", "lrn_forward"), ("lrn_backward", "lrn_backward"),
               ("pool_forward", "max_pool_forward"), ("pool_backward", "max_pool_backward"),
               ("tail_forward_fused", "bias_relu_lrn(keep_relu)"), ("tail_backward_fused", "lrn_relu_backward")]


def nvrtc_table(n, ms):
    """Each timed kernel beside NVRTC's figures for this GPU (the first architecture compiled)."""
    if not n:
        return
    rows = {r["call"]: r for r in n["rows"] if r["dtype"] == "f32"}
    arch = n["archs"][0]
    print(f"\n| kernel (conv1's output) | alexrt ms | {arch} registers | stack bytes | spilled bytes st/ld | shared bytes |"
          "\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for timed, call in TIMED_CALLS:
        r = rows.get(call)
        a = r and next((a for a in r["archs"] if a["arch"] == arch), None)
        p = a and a.get("ptxas")
        if p:
            print(f"| {timed} ({call}) | {ms[timed]:.3f} | {p['registers']} | {p['stack_frame']} |"
                  f" {p['spill_stores']}/{p['spill_loads']} | {p['static_shared'] + r['dynamic_shared']} |")
        elif timed in ms:
            print(f"| {timed} ({call}) | {ms[timed]:.3f} | {a['error'][:60] if a and a.get('error') else 'not compiled'} | | | |")
    failures = sum(len(a["problems"]) + (1 if a.get("error") else 0) for r in n["rows"] for a in r["archs"])
    print(f"\n- NVRTC {n['nvrtc']} on all {len(n['rows'])} kernel launches for {', '.join(n['archs'])}:"
          f" {failures} failures (the whole table: nvrtc-kernels.md)")
    print()


def main():
    out, batch = sys.argv[1], int(sys.argv[2])
    k, s, u, t = (load(out, n) for n in ["kernels", "alexrt-step", "alexrt-step-unfused", "pytorch"])
    small = load(out, "kernels-small")
    sp = load(out, "alexrt-step-split")
    import datetime
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# Device check (batch {batch})\n\n- {when}, commit {os.environ.get('CHECK_COMMIT', 'unknown')}")
    if t:
        print(f"- GPU: {t.get('gpu', '?')}, PyTorch {t.get('torch', '?')}")
    if small:
        print(f"- kernels on {small['device']} at batch 8: largest relative error against the CPU"
              f" {small['worst_error']:.1e} (tolerance 1e-4)")
    try:
        with open(os.path.join(out, "times.txt")) as f:
            runs = [line.split() for line in f if line.strip()]
    except OSError:
        runs = []
    if runs:
        print("\n| run | exit | seconds | limit |\n| --- | ---: | ---: | ---: |")
        for name, rc, secs, limit in runs:
            print(f"| {name} | {rc} | {secs} | {limit} |")
        print("\n(`warm-up` is the first CUDA step, compiling every kernel into the cache; exit 124 is a run"
              " cut off at its limit.)\n")
    if k:
        print(f"- kernels on {k['device']}: largest relative error against the CPU {k['worst_error']:.1e}"
              f" (tolerance 1e-4) over {sorted(next(iter(k['max_relative_error'].values())).keys())}")
        print(f"- copy bandwidth measured first: {num(k['copy_gbps'])} GB/s\n")
        ms = k["ms"]
        print("| kernel (conv1's output) | alexrt ms | GB/s | % of copy |\n| --- | ---: | ---: | ---: |")
        for name in ["lrn_forward", "lrn_backward", "pool_forward", "pool_backward"]:
            gb = k["gbps"][name]
            print(f"| {name} | {ms[name]:.3f} | {num(gb)} | {100 * gb / k['copy_gbps']:.0f}% |")
        print()
        rows = [("LRN forward+backward", ms["lrn_forward"] + ms["lrn_backward"], "lrn_forward_backward_ms"),
                ("max pool forward+backward", ms["pool_forward"] + ms["pool_backward"], "pool_forward_backward_ms"),
                ("bias+ReLU+LRN forward, fused", ms["tail_forward_fused"], "tail_forward_ms"),
                ("bias+ReLU+LRN forward+backward, fused", ms["tail_forward_fused"] + ms["tail_backward_fused"],
                 "tail_forward_backward_ms"),
                ("bias+ReLU+LRN forward+backward, unfused", ms["tail_forward_unfused"] + ms["tail_backward_unfused"],
                 "tail_forward_backward_ms")]
        print("| work (conv1's output) | alexrt ms | PyTorch eager ms | PyTorch / alexrt |\n| --- | ---: | ---: | ---: |")
        for label, mine, key in rows:
            theirs = t.get(key) if t else None
            ratio = f"{theirs / mine:.2f}x" if theirs else ""
            print(f"| {label} | {mine:.3f} | {theirs if theirs is None else f'{theirs:.3f}'} | {ratio} |".replace("| None |", "| |"))
        nvrtc_table(load(out, "nvrtc-kernels"), ms)
        if "grouped_conv" in k:
            print("\n| grouped conv (burn, fwd + data grad + weight grad) | grouped ms | split in two ms | split speedup |"
                  "\n| --- | ---: | ---: | ---: |")
            for layer, v in k["grouped_conv"].items():
                grouped_ms, split_ms = sum(v["grouped_ms"].values()), sum(v["split_ms"].values())
                print(f"| {layer} | {grouped_ms:.3f} | {split_ms:.3f} | {v['split_speedup']:.2f}x |")
    if t and "conv2_grouped_ms" in t:
        print(f"\n- conv2 forward in PyTorch: grouped {t['conv2_grouped_ms']:.3f} ms, split in two {t['conv2_split_ms']:.3f} ms")
    print()
    for label, r in [("alexrt, fused kernels", s), ("alexrt, fused nodes step by step", u),
                     ("alexrt, fused kernels, grouped convolutions split (alexc --split-grouped-conv)", sp),
                     ("alexrt, bf16 (alexc --precision bf16)", load(out, "alexrt-step-bf16")),
                     ("alexrt, f16 with loss scaling (alexc --precision f16)", load(out, "alexrt-step-f16"))]:
        if r:
            of_f32 = f", {s['images_per_second'] / r['images_per_second']:.2f}x the f32 step's time" if s and r is not s else ""
            print(f"- training step, {label}: {num(r['images_per_second'])} images/s, peak {size(r['peak_bytes'])}"
                  f" (plan arena {size(r['arena_bytes'])}){of_f32}")
    if t:
        for mode in ["eager", "compile"]:
            if f"{mode}_images_per_second" in t:
                ips = t[mode + "_images_per_second"]
                ratio = f", alexrt/PyTorch {s['images_per_second'] / ips:.2f}x" if s else ""
                print(f"- training step, PyTorch {mode}: {num(ips)} images/s, peak {size(t[mode + '_peak_bytes'])}{ratio}")
    ar = load(out, "all-reduce")
    if ar:
        print(f"- gradient all-reduce of a {size(ar['bucket_bytes'])} bucket over {ar['ranks']} rank(s):"
              f" NCCL on device memory {ar['device_ms']:.3f} ms (the first, with NCCL's set-up, {ar['first_ms']:.0f} ms),"
              f" through the host {ar['host_ms']:.3f} ms; largest error against the host's mean {ar['max_abs_error']:.1e}")


if __name__ == "__main__":
    main()
