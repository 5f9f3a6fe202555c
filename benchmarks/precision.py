"""bf16 autocast against float32 on this CPU, in one process: a training step of a small conv net and a linear
layer (forward + backward). Prints seconds per step and the bf16 / float32 ratio; below 1 means bf16 pays.

    python benchmarks/precision.py

Measured 2026-12-02 on an AMD EPYC with AVX2 only (no avx512_bf16, no AMX), 2 cores: conv 10.8x and linear
8.2x slower in bf16, so ``synkit.core.precision`` keeps float32 on such CPUs; on an AMD EPYC with avx512_bf16 the
same steps run about 2x faster in bf16.
"""

from __future__ import annotations

import time

import torch

from synkit.core import precision


def seconds(step, bf16: bool, repeats: int = 5) -> float:
    for _ in range(2):
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            step()
    return (time.perf_counter() - t0) / repeats


def main():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1))
    x = torch.randn(128, 16, 28, 28)
    linear, h = torch.nn.Linear(1024, 1024), torch.randn(2048, 1024)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 native: {precision.bf16_native('cpu')} (auto trains in {precision.resolve('auto')!r})")
    for name, step in (("conv 128x16x28x28", lambda: conv(x).float().sum().backward()),
                       ("linear 2048x1024", lambda: linear(h).float().sum().backward())):
        fp32, bf16 = seconds(step, False), seconds(step, True)
        print(f"{name}: float32 {fp32 * 1e3:.1f} ms, bf16 {bf16 * 1e3:.1f} ms, bf16/float32 = {bf16 / fp32:.2f}")


if __name__ == "__main__":
    main()
