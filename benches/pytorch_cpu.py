#!/usr/bin/env python3
"""PyTorch's side of the CPU benchmark: the same network as a graph file, timed like `alexrt bench`
(median of N steps after warm-up): a training step (forward, backward, SGD with momentum and weight
decay, dropout on) and a forward pass in eval mode. Prints one JSON object."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import pytorch_reference as ref  # noqa: E402


def median_time(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (inductor on the CPU)")
    ap.add_argument("--bf16", action="store_true",
                    help="also time the same under torch.autocast('cpu', dtype=torch.bfloat16), eager and compiled")
    args = ap.parse_args()
    torch.manual_seed(0)
    g = ref.parse_graph(open(args.graph).read())
    net = ref.Net(g, dropout=True)
    _, c, h, w = g["input"]
    x = torch.randn(args.batch, c, h, w)
    y = torch.randint(0, g["classes"], (args.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=g["momentum"], weight_decay=g["weight_decay"])

    def train_step(model):
        def run():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return run

    def forward(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    net.train()
    step = median_time(train_step(net), args.warmup, args.steps)
    net.eval()
    fwd = median_time(forward(net), args.warmup, args.steps)
    out = dict(graph=args.graph, batch=args.batch, threads=torch.get_num_threads(), torch=torch.__version__,
               step_seconds=step, forward_seconds=fwd, images_per_second=args.batch / step)
    if args.compile:
        # Two warm-up calls each: the first compiles, the second may recompile for the mode switch.
        compiled = torch.compile(net)
        net.train()
        out["compiled_step_seconds"] = median_time(train_step(compiled), args.warmup + 1, args.steps)
        net.eval()
        out["compiled_forward_seconds"] = median_time(forward(compiled), args.warmup + 1, args.steps)
    if args.bf16:
        # Mixed precision as PyTorch users run it on a CPU: f32 parameters, bf16 autocast.
        def autocast(run):
            def inner():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    run()
            return inner
        net.train()
        out["bf16_step_seconds"] = median_time(autocast(train_step(net)), args.warmup, args.steps)
        net.eval()
        out["bf16_forward_seconds"] = median_time(autocast(forward(net)), args.warmup, args.steps)
        if args.compile:
            compiled = torch.compile(net)
            net.train()
            out["bf16_compiled_step_seconds"] = median_time(autocast(train_step(compiled)), args.warmup + 1, args.steps)
            net.eval()
            out["bf16_compiled_forward_seconds"] = median_time(autocast(forward(compiled)), args.warmup + 1, args.steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
