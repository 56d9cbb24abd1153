"""``xpnet bench``: forward, backward and training-step throughput across
backends, against the GEMM floor and plain PyTorch.

For each backend, size and dtype it times an MLP with ReLU hidden layers and
a softmax cross-entropy output trained by SGD:

* ``forward``: every layer's forward and the loss;
* ``backward``: every layer's backward (the gradients), given the forward;
* ``step``: forward, loss, backward and the SGD update (``train_step`` on a
  prepared batch);
* ``train_on_batch``: the same from the public call, with its checks;
* ``fit``: ``fit`` over several batches, per batch (shuffling, the running
  loss and the epoch's end included); on JAX also ``fit-spe32``, with
  ``steps_per_execution=32``.

References, timed in the same run: the **GEMM floor** (only the matrix
products of the phase, on the same backend: per layer ``x @ W`` forward,
``dz @ W.T`` and ``x.T @ dz`` backward), the same network in **plain
PyTorch** with autograd, and for steps a **hand-written NumPy** step and
scikit-learn's ``MLPClassifier`` (``partial_fit`` per batch), and on JAX the
same step **jitted by hand**. Device work is
synchronized before the clock stops; warm-up calls are not timed. Figures
are medians. The pytest-benchmark suite in ``benchmarks/`` times the same
cases.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xpnet as xn
from xpnet import _backend
from xpnet.bench import references

SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "S": (32, (64, 32, 10)),
    "M": (256, (784, 256, 256, 10)),
    "L": (1024, (1024, 2048, 2048, 10)),
}
PHASES = ("forward", "backward", "step", "train_on_batch", "fit")
LEARNING_RATE = 1e-3
# Batches per fit call (one epoch): enough that the epoch's fixed costs
# (the shuffle, the checks of fit's arguments, reading the loss) are shared
# as in a real run, few enough that L fits in memory and time.
FIT_BATCHES = {"S": 64, "M": 16, "L": 4}


def host_data(size: str, dtype: str) -> tuple[Any, Any]:
    """The batch every implementation trains on (same numbers everywhere)."""
    batch, widths = SIZES[size]
    rng = _backend.host_rng(0)
    x = rng.normal(size=(batch, widths[0])).astype(dtype)
    y = rng.integers(0, widths[-1], size=batch)
    return x, y


@dataclass
class Case:
    """The callables of one backend, size and dtype: ``phases`` for xpnet,
    ``floor`` for the GEMM floor of each phase."""

    backend: _backend.Backend
    size: str
    dtype: str
    phases: dict[str, Callable[[], Any]]
    floor: dict[str, Callable[[], Any]]


def benchmark_model(backend: _backend.Backend, size: str, dtype: str, **compile_options):
    """The benchmark MLP of `size`, compiled with SGD and softmax cross-entropy."""
    widths = SIZES[size][1]
    model = xn.Sequential(
        [xn.layers.Dense(w, activation="relu", kernel_initializer="he_normal")
         for w in widths[1:-1]] + [xn.layers.Dense(widths[-1])],
        backend=backend.name, device=backend.device, dtype=dtype, seed=0,
    )  # fmt: skip
    model.compile(
        loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=xn.optimizers.SGD(LEARNING_RATE),
        **compile_options,
    )
    return model.build(widths[0])


def fit_phase(backend: _backend.Backend, size: str, dtype: str, **compile_options):
    """``fit`` for one epoch of :data:`FIT_BATCHES` batches on the device
    (one call; divide its time by the batches)."""
    batch, widths = SIZES[size]
    rng = _backend.host_rng(1)
    rows = batch * FIT_BATCHES[size]
    model = benchmark_model(backend, size, dtype, **compile_options)
    x = rng.normal(size=(rows, widths[0])).astype(dtype)
    data = model.prepare(x, rng.integers(0, widths[-1], size=rows))

    def fit():
        model.fit(data.x, data.y, epochs=1, batch_size=batch, verbose=0)
        return [value for layer in model.layers for value in layer.params.values()]

    return fit


def make_case(backend: _backend.Backend, size: str, dtype: str) -> Case:
    x_host, y_host = host_data(size, dtype)
    model = benchmark_model(backend, size, dtype)
    data = model.prepare(x_host, y_host)
    state: dict[str, Any] = {}

    def forward():
        out, backward = model.forward(data.x, training=True)
        loss, grad = model.loss.compute(data.y, out)
        state["backward"], state["grad"] = backward, grad
        return loss

    def backward():
        state["backward"](state["grad"])
        return [value for layer in model.layers for value in layer.grads.values()]

    def step():
        model.train_step(data.x, data.y)
        # Wait for the updated parameters, not only the loss: JAX and the GPU
        # libraries run asynchronously, so the update may still be in flight.
        return [value for layer in model.layers for value in layer.params.values()]

    def train_on_batch():
        return model.train_on_batch(data.x, data.y)

    forward()  # so that backward has closures from the start

    phases = {"forward": forward, "backward": backward, "step": step,
              "train_on_batch": train_on_batch, "fit": fit_phase(backend, size, dtype)}  # fmt: skip
    if backend.name == "jax":
        phases["fit-spe32"] = fit_phase(backend, size, dtype, steps_per_execution=32)
    kernels = [layer.params["kernel"] for layer in model.layers]
    return Case(backend, size, dtype, phases, _floor_phases(backend.xp, data.x, kernels))


def _floor_phases(xp: Any, x: Any, kernels: list[Any]) -> dict[str, Callable[[], Any]]:
    """Only the matrix products of each phase, on the same backend."""
    inputs = [x]
    for w in kernels[:-1]:
        inputs.append(xp.maximum(inputs[-1] @ w, 0.0))
    upstream = [a @ w for a, w in zip(inputs, kernels, strict=True)]

    def floor_forward():
        out = None
        for a, w in zip(inputs, kernels, strict=True):
            out = a @ w
        return out

    def floor_backward():
        out = None
        for a, w, dz in zip(inputs, kernels, upstream, strict=True):
            out = a.T @ dz
            out = dz @ w.T
        return out

    def floor_step():
        floor_forward()
        return floor_backward()

    return {"forward": floor_forward, "backward": floor_backward, "step": floor_step}


def per_call(phase: str, size: str) -> int:
    """How many training steps one call of `phase` takes."""
    return FIT_BATCHES[size] if phase.startswith("fit") else 1


def floor_phase(phase: str) -> str:
    """The GEMM floor a phase is compared with (a step's, for the step phases)."""
    return phase if phase in ("forward", "backward") else "step"


def torch_reference(size: str, dtype: str, device: Any = "cpu") -> dict[str, Callable[[], Any]]:
    """Plain PyTorch phases (``forward``, ``forward_backward``, ``step``)."""
    x, y = host_data(size, dtype)
    return references.torch_mlp(SIZES[size][1], x, y, dtype, LEARNING_RATE, device)


def numpy_reference(size: str, dtype: str) -> Callable[[], Any]:
    x, y = host_data(size, dtype)
    return references.numpy_step(SIZES[size][1], x, y, LEARNING_RATE)


def jax_reference(size: str, dtype: str) -> Callable[[], Any]:
    x, y = host_data(size, dtype)
    return references.jax_step(SIZES[size][1], x, y, LEARNING_RATE)


def sklearn_reference(size: str, dtype: str) -> Callable[[], Any]:
    x, y = host_data(size, dtype)
    return references.sklearn_step(SIZES[size][1], x, y, LEARNING_RATE)


def median_times(
    fns: dict[str, Callable[[], Any]], seconds: float = 0.5, passes: int = 3
) -> dict[str, float]:
    """For each function, the smallest of `passes` medians, each median taken
    over a block of consecutive calls (at least 5, about `seconds` long).

    Blocks, not a round robin: alternating libraries makes their thread pools
    (OpenBLAS, PyTorch's) fight for the cores. Several passes, keeping the
    best median, so a slow spell of a shared machine hits no figure alone.
    """
    best: dict[str, float] = {}
    for _ in range(passes):
        for name, fn in fns.items():
            _backend.synchronize(fn())  # warm-up (and any compilation) outside the clock
            times: list[float] = []
            deadline = time.perf_counter() + seconds
            while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 2000):
                start = time.perf_counter()
                _backend.synchronize(fn())
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            best[name] = min(best.get(name, median), median)
    return best


def run(
    backends: list[str],
    sizes: list[str],
    dtype: str,
    seconds: float = 0.5,
    references: bool = True,
) -> list[dict[str, Any]]:
    """Measure and return the records that ``--json`` writes."""
    records: list[dict[str, Any]] = []
    for size in sizes:
        refs = _torch_phases(size, dtype) if references else {}
        has_torch = bool(refs)
        # One group per backend, with the PyTorch reference measured again in
        # each, so every ratio compares figures taken close together.
        t: dict[str, float] = {}
        devices = {}
        for name in [*backends, *([] if "numpy" in backends else ["numpy"])]:
            backend = _backend.get_backend(name)
            devices[name] = str(backend.device)
            t.update(_measure_group(backend, size, dtype, refs, seconds, references))
        records += _size_records(t, backends, devices, size, dtype, has_torch)
    return records


def _torch_phases(size: str, dtype: str) -> dict[str, Callable[[], Any]]:
    try:
        return {f"torch-nn/{phase}": fn for phase, fn in torch_reference(size, dtype).items()}
    except ImportError:
        return {}


def _measure_group(backend, size, dtype, refs, seconds, references) -> dict[str, float]:
    """Time one backend's phases and floors beside the PyTorch reference
    (and, for NumPy, the hand-written step and scikit-learn), in one block."""
    name = backend.name
    case = make_case(backend, size, dtype)
    fns: dict[str, Callable[[], Any]] = dict(refs)
    for phase, fn in case.phases.items():
        fns[f"{name}/{phase}"] = fn
    for phase, fn in case.floor.items():
        fns[f"{name}/floor-{phase}"] = fn
    if name == "numpy" and references:
        fns["numpy-handwritten/step"] = numpy_reference(size, dtype)
        with contextlib.suppress(ImportError):
            fns["sklearn/step"] = sklearn_reference(size, dtype)
    if name == "jax" and references:
        fns["jax-handjitted/step"] = jax_reference(size, dtype)
    group = median_times(fns, seconds)
    for phase in case.phases:
        group[f"{name}/{phase}"] /= per_call(phase, size)
    return {(f"{k}@{name}" if k.startswith("torch-nn/") else k): v for k, v in group.items()}


HAND = {"numpy": "numpy-handwritten", "jax": "jax-handjitted"}


def _size_records(t, backends, devices, size, dtype, has_torch) -> list[dict[str, Any]]:
    batch = SIZES[size][0]
    records = []
    for name in backends:
        hand = t.get(f"{HAND.get(name)}/step")
        phases = [p for p in (*PHASES, "fit-spe32") if f"{name}/{p}" in t]
        for phase in phases:
            seconds = t[f"{name}/{phase}"]
            records.append(
                _record(name, devices[name], dtype, size, phase, batch / seconds, seconds,
                        t[f"{name}/floor-{floor_phase(phase)}"],
                        _torch_times(t, name, has_torch), hand)
            )  # fmt: skip
    for label, group in (("numpy-handwritten", "numpy"), ("sklearn", "numpy"),
                         ("jax-handjitted", "jax")):  # fmt: skip
        if f"{label}/step" in t:
            seconds = t[f"{label}/step"]
            records.append(
                _record(label, "cpu", dtype, size, "step", batch / seconds, seconds,
                        t[f"{group}/floor-step"], _torch_times(t, group, has_torch), None)
            )  # fmt: skip
    return records


def _torch_times(t: dict[str, float], group: str, has_torch: bool) -> dict[str, float] | None:
    """PyTorch's phase times measured in `group`'s block; its backward
    is forward+backward minus forward (autograd cannot run backward alone)."""
    if not has_torch:
        return None
    forward = t[f"torch-nn/forward@{group}"]
    step = t[f"torch-nn/step@{group}"]
    return {
        "forward": forward,
        "backward": max(t[f"torch-nn/forward_backward@{group}"] - forward, 1e-12),
        **dict.fromkeys(("step", "train_on_batch", "fit", "fit-spe32"), step),
    }


def _record(backend, device, dtype, size, phase, samples_per_s, seconds, floor, torch_t, hand):
    return {
        "backend": backend, "device": device, "dtype": dtype, "size": size, "phase": phase,
        "samples_per_s": samples_per_s, "seconds": seconds, "floor_ratio": seconds / floor,
        "torch_ratio": None if torch_t is None else seconds / torch_t[phase],
        "hand_ratio": None if hand is None or phase in ("forward", "backward") else seconds / hand,
    }  # fmt: skip


def table(records: list[dict[str, Any]]) -> str:
    """The records as a fixed-width table."""
    lines = [
        f"{'backend':<19}{'size':<5}{'dtype':<9}{'phase':<16}{'µs/step':>11}"
        f"{'samples/s':>13}{'/ GEMM floor':>14}{'/ PyTorch':>11}{'/ by hand':>11}"
    ]
    for r in records:
        torch_ratio = "-" if r["torch_ratio"] is None else f"{r['torch_ratio']:.2f}"
        hand_ratio = "-" if r.get("hand_ratio") is None else f"{r['hand_ratio']:.2f}"
        lines.append(
            f"{r['backend']:<19}{r['size']:<5}{r['dtype']:<9}{r['phase']:<16}"
            f"{r['seconds'] * 1e6:>11,.1f}{r['samples_per_s']:>13,.0f}"
            f"{r['floor_ratio']:>14.2f}{torch_ratio:>11}{hand_ratio:>11}"
        )
    return "\n".join(lines)
