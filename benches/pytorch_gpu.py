#!/usr/bin/env python3
"""PyTorch's side of the GPU check (scripts/device-check.sh), on the same GPU: LRN and max-pool
forward+backward at conv1's shape, conv1's bias + ReLU + LRN tail, a full training step of a graph at a batch size (eager and
torch.compile) with peak memory, and a grouped convolution against the same layer split in two.
Prints one JSON object."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import pytorch_reference as ref  # noqa: E402


def timed(fn, steps):
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}

    x = torch.randn(args.batch, 96, 55, 55, device=dev, requires_grad=True)
    lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0)
    y = lrn(x)
    g = torch.randn_like(y)
    out["lrn_forward_backward_ms"] = 1e3 * timed(lambda: torch.autograd.grad(lrn(x), x, g), args.steps)
    p = F.max_pool2d(x, 3, 2)
    gp = torch.randn_like(p)
    out["pool_forward_backward_ms"] = 1e3 * timed(lambda: torch.autograd.grad(F.max_pool2d(x, 3, 2), x, gp), args.steps)
    out["copy_ms"] = 1e3 * timed(lambda: x.detach().clone(), args.steps)
    # conv1's tail as PyTorch runs it eagerly: bias add (here separate, as alexrt's unfused
    # comparison), ReLU, LRN; forward and backward.
    b = torch.randn(1, 96, 1, 1, device=dev)
    out["tail_forward_ms"] = 1e3 * timed(lambda: lrn(F.relu(x.detach() + b)), args.steps)
    out["tail_forward_backward_ms"] = 1e3 * timed(lambda: torch.autograd.grad(lrn(F.relu(x + b)), x, g), args.steps)

    g_ = ref.parse_graph(open(args.graph).read())
    _, c, h, w = g_["input"]
    xb = torch.randn(args.batch, c, h, w, device=dev)
    yb = torch.randint(0, g_["classes"], (args.batch,), device=dev)
    for mode in ["eager"] + ([] if args.no_compile else ["compile"]):
        net = ref.Net(g_, dropout=True).to(dev).train()
        model = torch.compile(net) if mode == "compile" else net
        opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        step()
        torch.cuda.reset_peak_memory_stats()
        t = timed(step, args.steps)
        out[f"{mode}_images_per_second"] = args.batch / t
        out[f"{mode}_peak_bytes"] = torch.cuda.max_memory_allocated()

    xg = torch.randn(args.batch, 96, 27, 27, device=dev)
    conv = torch.nn.Conv2d(96, 256, 5, padding=2, groups=2).to(dev)
    a, b = torch.nn.Conv2d(48, 128, 5, padding=2).to(dev), torch.nn.Conv2d(48, 128, 5, padding=2).to(dev)
    out["conv2_grouped_ms"] = 1e3 * timed(lambda: conv(xg), args.steps)
    out["conv2_split_ms"] = 1e3 * timed(lambda: torch.cat([a(xg[:, :48]), b(xg[:, 48:])], 1), args.steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
