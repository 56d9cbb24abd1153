"""``xpnet bench``: training-step throughput per backend, against the GEMM floor.

For each backend, size and dtype it times a full training step (forward,
fused softmax cross-entropy, backward, SGD update) of an MLP with ReLU hidden
layers, and the *GEMM floor*: only the matrix products that step needs
(per layer ``x @ W``, ``dz @ W.T``, ``x.T @ dz``) on the same backend. The
ratio step / floor says how much the library adds beyond the arithmetic
that cannot be avoided. Medians of repeated runs; device work is
synchronized before the clock stops; warm-up runs are not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import xpnet as xn
from xpnet import _backend

SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "S": (32, (64, 32, 10)),
    "M": (256, (784, 256, 256, 10)),
    "L": (1024, (1024, 2048, 2048, 10)),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", nargs="+", default=None, help="default: all available")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["S", "M"])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    parser.add_argument("--json", default=None, help="also write the figures to this file")


def median_time(fn: Callable[[], Any], seconds: float, min_runs: int = 5) -> float:
    """Median wall time of `fn()` (which returns an array to wait for)."""
    _backend.synchronize(fn())  # warm-up (and JIT) outside the clock
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 1000):
        start = time.perf_counter()
        _backend.synchronize(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _case(target: _backend.Backend, size: str, dtype: str) -> dict[str, Any]:
    batch, widths = SIZES[size]
    rng = _backend.host_rng(0)
    x = _backend.asarray(rng.normal(size=(batch, widths[0])), target, dtype)
    y = _backend.asarray(rng.integers(0, widths[-1], size=batch), target)
    model = xn.Sequential(
        [xn.layers.Dense(w, activation="relu") for w in widths[1:-1]]
        + [xn.layers.Dense(widths[-1])],
        backend=target.name, device=target.device, dtype=dtype, seed=0,
    )  # fmt: skip
    model.compile(
        loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=xn.optimizers.SGD(1e-4),
    )
    model.build(widths[0])
    data = model._prepare(x, y)

    def step():
        loss, _ = model._train_step(data)
        return loss

    kernels = [layer.params["kernel"] for layer in model.layers]
    activations = [x]
    for w in kernels[:-1]:
        activations.append(activations[-1] @ w)
    grads_out = [a @ w for a, w in zip(activations, kernels, strict=True)]

    def floor():
        out = None
        for a, w, dz in zip(activations, kernels, grads_out, strict=True):
            out = a @ w
            _ = a.T @ dz
            out = dz @ w.T
        return out

    t_step = median_time(step, _SECONDS)
    t_floor = median_time(floor, _SECONDS)
    return {
        "backend": target.name,
        "device": str(target.device),
        "dtype": dtype,
        "size": size,
        "phase": "step",
        "samples_per_s": batch / t_step,
        "floor_ratio": t_step / t_floor,
        "torch_ratio": None,
    }


_SECONDS = 0.5


def main(args: argparse.Namespace) -> int:
    global _SECONDS
    _SECONDS = args.seconds
    names = args.backends or _backend.available_backends()
    from xpnet.cli import UsageError

    records = []
    for name in names:
        try:
            target = _backend.get_backend(name)
        except (ImportError, RuntimeError, ValueError) as exc:
            raise UsageError(f"backend {name!r}: {exc}") from None
        for size in args.sizes:
            if args.dtype == "float64" and name == "jax" and not _jax_x64():
                continue
            records.append(_case(target, size, args.dtype))
    print(f"{'backend':<18}{'size':<6}{'dtype':<9}{'step samples/s':>16}{'step / GEMM floor':>20}")
    for r in records:
        print(
            f"{r['backend']:<18}{r['size']:<6}{r['dtype']:<9}"
            f"{r['samples_per_s']:>16,.0f}{r['floor_ratio']:>20.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


def _jax_x64() -> bool:
    try:
        _backend.float_dtype(_backend.get_backend("jax").xp, "float64")
    except TypeError:
        return False
    return True
