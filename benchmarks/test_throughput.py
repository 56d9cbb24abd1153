"""Forward, backward and training-step throughput, per backend, size and dtype.

Groups are ``{size}-{dtype}-{phase}``: one table per group lists every
backend beside its references, the GEMM floor of the same backend
(``floor-<backend>``), plain PyTorch (``torch-nn``), and for steps a
hand-written NumPy step, a hand-jitted JAX step and scikit-learn's
MLPClassifier. A ``fit`` case times one epoch of ``bench.FIT_BATCHES[size]``
batches: divide by that for the time per batch (``xpnet bench`` does).

    pytest benchmarks                                   # everything
    XPNET_BENCH_SIZES=S,M XPNET_BACKENDS=numpy,torch pytest benchmarks
    pytest benchmarks --benchmark-disable               # run each case once (CI)
"""

from __future__ import annotations

import pytest

from xpnet import _backend, bench


def _case(backend_name: str, size: str, dtype: str) -> bench.Case:
    placement = _backend.get_backend(backend_name)
    try:
        _backend.float_dtype(placement.xp, dtype)
    except TypeError as exc:  # float64 on JAX without 64-bit mode
        pytest.skip(str(exc))
    return bench.make_case(placement, size, dtype)


@pytest.mark.parametrize("phase", [*bench.PHASES, "fit-spe32"])
def test_xpnet(benchmark, sync_benchmark, backend_name, size, dtype, phase):
    case = _case(backend_name, size, dtype)
    if phase not in case.phases:
        pytest.skip(f"{phase} is measured on JAX only")
    benchmark.group = f"{size}-{dtype}-{phase}"
    benchmark.name = backend_name
    sync_benchmark(case.phases[phase])


@pytest.mark.parametrize("phase", ["forward", "backward", "step"])
def test_gemm_floor(benchmark, sync_benchmark, backend_name, size, dtype, phase):
    case = _case(backend_name, size, dtype)
    benchmark.group = f"{size}-{dtype}-{phase}"
    benchmark.name = f"floor-{backend_name}"
    sync_benchmark(case.floor[phase])


@pytest.mark.parametrize("phase", ["forward", "forward_backward", "step"])
def test_plain_pytorch(benchmark, sync_benchmark, size, dtype, phase):
    pytest.importorskip("torch")
    phases = bench.torch_reference(size, dtype)
    # forward+backward is its own group: autograd cannot run backward alone
    benchmark.group = f"{size}-{dtype}-{phase}"
    benchmark.name = "torch-nn"
    sync_benchmark(phases[phase])


def test_handwritten_numpy_step(benchmark, sync_benchmark, size, dtype):
    benchmark.group = f"{size}-{dtype}-step"
    benchmark.name = "numpy-handwritten"
    sync_benchmark(bench.numpy_reference(size, dtype))


def test_handjitted_jax_step(benchmark, sync_benchmark, size, dtype):
    jax = pytest.importorskip("jax")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("float64 on JAX needs 64-bit mode")
    benchmark.group = f"{size}-{dtype}-step"
    benchmark.name = "jax-handjitted"
    sync_benchmark(bench.jax_reference(size, dtype))


def test_sklearn_step(benchmark, sync_benchmark, size, dtype):
    pytest.importorskip("sklearn")
    benchmark.group = f"{size}-{dtype}-step"
    benchmark.name = "sklearn-MLPClassifier"
    sync_benchmark(bench.sklearn_reference(size, dtype))
