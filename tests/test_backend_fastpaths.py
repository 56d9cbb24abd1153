"""The per-library fast paths (``xpnet._backend.fastpaths``): each library's
variant gives the generic array-API answer, in place where it says it is."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import assert_close, assert_like
from xpnet import _backend
from xpnet._backend import fastpaths

HOST = np.array([[-1.5, 0.0, 2.0], [3.0, -0.5, 1.0]])
HOST.flags.writeable = False  # tests move copies: in-place paths write over them
IN_PLACE = {"numpy", "torch", "cupy"}  # the libraries with a written-over fast path


def test_each_array_type_gets_its_library_class(placement, make):
    expected = {"numpy": fastpaths.NumpyOps, "torch": fastpaths.TorchOps}
    expected["cupy"], expected["jax"] = fastpaths.CupyOps, fastpaths.JaxOps
    assert fastpaths._ops(make([1.0])) is expected.get(placement.name, fastpaths.ArrayAPIOps)


def test_numpy_subclasses_take_the_generic_path():
    class Sub(np.ndarray):
        pass

    assert fastpaths._ops(np.zeros(2).view(Sub)) is fastpaths.ArrayAPIOps


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(2, 3), (5,), (1, 1)])
def test_any_nonfinite(placement, make, bad, shape):
    host = np.arange(np.prod(shape), dtype=float).reshape(shape)
    if bad is not None:
        host.flat[-1] = bad
    x = make(host)
    flag = _backend.any_nonfinite(x)
    assert bool(_backend.to_numpy(flag)) is (bad is not None)
    assert flag.shape == ()  # a device boolean, read with the other checks
    assert _backend.namespace(flag) is _backend.namespace(x)
    assert _backend.device_of(flag) == _backend.device_of(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_nonfinite_agrees_with_isfinite_anywhere(placement, make, dtype, data):
    """Any mix of NaN, infinities, the largest finite values and zeros, at
    any position (JAX checks one sum of ``x * 0``, not each value)."""
    values = st.sampled_from([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, np.finfo(dtype).max,
                              -np.finfo(dtype).max, np.finfo(dtype).tiny])  # fmt: skip
    host = data.draw(
        arrays(dtype, st.tuples(st.integers(1, 4), st.integers(1, 5)), elements=values)
    )
    flag = _backend.any_nonfinite(make(host, dtype))
    assert bool(_backend.to_numpy(flag)) is (not np.isfinite(host).all())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [4096, 100_003])
def test_any_nonfinite_finds_one_bad_value_in_a_large_array(placement, make, dtype, n):
    """Large enough for vectorised reductions: XLA:CPU's max drops a NaN
    from 4096 elements up (openxla/xla#21461), so a check built on a max
    would miss it."""
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, n // 2 + 1, n - 1):
            host = np.ones(n, dtype)
            host[at] = bad
            assert _read(_backend.any_nonfinite(make(host, dtype))) is True, (bad, at)
    huge = np.full(n, np.finfo(dtype).max, dtype)
    assert _read(_backend.any_nonfinite(make(huge, dtype))) is False


@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(placement, make, keepdims):
    x = make(HOST.copy())
    for axis in (0, 1):
        total = _backend.reduce_sum(x, axis, keepdims)
        assert_close(total, HOST.sum(axis=axis, keepdims=keepdims))
        largest = _backend.reduce_max(x, axis, keepdims=keepdims)
        assert_close(largest, HOST.max(axis=axis, keepdims=keepdims))
        assert_like(total, x)


def test_relu_and_its_backward_write_over_their_input_where_they_can(placement, make):
    z = make(HOST.copy())
    out = _backend.relu_(z)
    assert_close(out, np.maximum(HOST, 0.0))
    assert_like(out, z)
    if placement.name in IN_PLACE:
        assert_close(z, np.maximum(HOST, 0.0))
    dy = make(np.full_like(HOST, 2.0))
    grad = _backend.relu_backward_(dy, out)
    assert_close(grad, np.where(HOST > 0, 2.0, 0.0))
    assert_like(grad, dy)
    if placement.name in IN_PLACE:
        assert_close(dy, np.where(HOST > 0, 2.0, 0.0))


def test_affine_with_and_without_bias(placement, make):
    x, w, b = make(HOST.copy()), make(HOST.T @ HOST), make([1.0, -2.0, 0.5])
    assert_close(_backend.affine(x, w, b), HOST @ (HOST.T @ HOST) + [1.0, -2.0, 0.5])
    assert_close(_backend.affine(x, w, None), HOST @ (HOST.T @ HOST))


def test_add_scaled_updates_y(placement, make):
    y = make(HOST.copy())
    if not _backend.is_writeable(y):
        pytest.skip(f"{placement.name} arrays are immutable")
    out = _backend.add_scaled_(y, -0.5, make(np.ones_like(HOST)))
    assert_close(out, HOST - 0.5)
    assert_close(y, HOST - 0.5)


def test_matmul_reuses_a_matching_buffer(placement, make):
    a, b = make(HOST.copy()), make(HOST.T.copy())
    buffer = make(np.zeros((2, 2)))
    out = _backend.matmul(a, b, buffer)
    assert_close(out, HOST @ HOST.T)
    assert_like(out, a)
    if placement.name in IN_PLACE:
        assert_close(buffer, HOST @ HOST.T)
    wrong_shape = make(np.zeros((3, 3)))
    assert_close(_backend.matmul(a, b, wrong_shape), HOST @ HOST.T)
    assert_close(wrong_shape, np.zeros((3, 3)))  # left alone
    assert_close(_backend.matmul(a, b), HOST @ HOST.T)


def _read(flag) -> bool:
    return bool(_backend.to_numpy(flag))


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "uint8"])
def test_labels_outside(placement, make, dtype):
    for labels, outside in [([0, 2, 1], False), ([0, 3, 1], True), ([], False), ([2], False)]:
        assert _read(_backend.labels_outside(make(labels, dtype), 3)) is outside, labels
    if not dtype.startswith("u"):  # read as unsigned, a negative label is huge
        assert _read(_backend.labels_outside(make([1, -1, 0], dtype), 3)) is True
    top = int(np.iinfo(dtype).max)  # k at and beyond what the dtype holds
    assert _read(_backend.labels_outside(make([0, top], dtype), top)) is True
    assert _read(_backend.labels_outside(make([0, top], dtype), top + 1)) is False


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_flagged_batch_reads_labels_and_features_at_once(placement, make, dtype):
    x = np.arange(12.0).reshape(4, 3)
    labels = [0, 2, 1, 2]
    assert _backend.flagged_batch(make(x), make(labels, dtype), 3) is False
    assert _backend.flagged_batch(make(x), make([0, 3, 1, 2], dtype), 3) is True
    assert _backend.flagged_batch(make(x), make([0, -1, 1, 2], dtype), 3) is True
    for bad in (np.nan, np.inf, -np.inf):
        host = x.copy()
        host[2, 1] = bad
        assert _backend.flagged_batch(make(host), make(labels, dtype), 3) is True, bad


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_maybe_nonfinite_never_misses_a_nonfinite_value(placement, make, bad):
    host = np.arange(12.0).reshape(3, 4)
    assert _read(_backend.maybe_nonfinite(make(host))) is False
    host[1, 2] = bad
    assert _read(_backend.maybe_nonfinite(make(host))) is True
    huge = np.full((2, 2), 1e308)  # finite, but its sum overflows: a false alarm
    assert _read(_backend.any_nonfinite(make(huge))) is False
    with _backend.quiet_float_errors():
        assert _read(_backend.maybe_nonfinite(make(huge))) is True


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_rows(placement, make, dtype):
    x = make(HOST.copy(), dtype)
    total = _backend.sum_rows(x)
    assert_close(total, HOST.sum(axis=0), rtol=1e-6 if dtype == "float32" else 1e-12)
    assert_like(total, x)
