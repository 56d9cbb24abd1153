"""Peak memory of one NumPy training step at size L against the analytic minimum.

The minimum is parameters + gradients + optimizer state (none for plain
SGD) + one batch of activations (the input and every layer's output).
tracemalloc sees NumPy's allocations; the ratio is printed and bounded.
"""

from __future__ import annotations

import itertools
import tracemalloc

import xpnet as xn
from xpnet import bench


def step_peak_ratio(size: str = "L", dtype: str = "float32") -> tuple[int, int]:
    batch, widths = bench.SIZES[size]
    itemsize = 4 if dtype == "float32" else 8
    params = sum(a * b + b for a, b in itertools.pairwise(widths))
    activations = batch * sum(widths)
    minimum = (2 * params + activations) * itemsize
    x, y = bench.host_data(size, dtype)
    tracemalloc.start()
    try:
        x = x.copy()  # the batch counts too
        model = xn.Sequential(
            [xn.layers.Dense(w, activation="relu") for w in widths[1:-1]]
            + [xn.layers.Dense(widths[-1])],
            dtype=dtype,
        )
        model.compile(
            loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=xn.optimizers.SGD(1e-3),
        )
        model.build(widths[0])
        data = model.prepare(x, y)
        for _ in range(2):  # gradient buffers exist after the first step
            model.train_step(data.x, data.y)
        tracemalloc.reset_peak()
        model.train_step(data.x, data.y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, minimum


def test_step_memory_is_close_to_the_minimum():
    peak, minimum = step_peak_ratio()
    ratio = peak / minimum
    mib = 2**20
    print(f"\nL step peak {peak / mib:.1f} MiB, minimum {minimum / mib:.1f} MiB, ratio {ratio:.2f}")
    assert ratio < 1.35  # measured 1.29; the goal is 1.3
