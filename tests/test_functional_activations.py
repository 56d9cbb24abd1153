"""Activations in xpnet.functional: values, gradients, stability, placement."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xpnet as xn
from helpers import assert_close, assert_like
from xpnet import functional as F

GELU_C = math.sqrt(2.0 / math.pi)


def _softmax_ref(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> float64 reference written from the textbook formula (moderate inputs only)
REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "softplus": lambda x: np.log(1.0 + np.exp(x)),
    "log_sigmoid": lambda x: np.log(1.0 / (1.0 + np.exp(-x))),
    # 0.5 x (1 + tanh(u)) == x / (1 + exp(-2u)); the second has no cancellation
    "gelu": lambda x: x / (1.0 + np.exp(-2.0 * GELU_C * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "softmax": _softmax_ref,
    "log_softmax": lambda x: np.log(_softmax_ref(x)),
    "step": lambda x: (x >= 0).astype(np.float64),
}
NAMES = sorted(REFERENCES)


def _inputs(seed=0, shape=(5, 4), scale=3.0):
    """Normal draws kept at least 0.1 away from 0, where relu/elu/step have kinks."""
    x = np.random.default_rng(seed).normal(0.0, scale, size=shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


@pytest.mark.parametrize("name", NAMES)
def test_values_match_reference(name, make):
    x = make(_inputs())
    y = getattr(F, name)(x)
    assert_like(y, x)
    assert_close(y, REFERENCES[name](_inputs()), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_float32_is_kept(name, make):
    x = make(_inputs(), "float32")
    y = getattr(F, name)(x)
    assert_like(y, x)
    dx = getattr(F, name + "_backward")(make(np.ones((5, 4)), "float32"), x, y)
    assert_like(dx, x)
    assert_close(y, REFERENCES[name](_inputs()), rtol=2e-6, atol=1e-6)


def _through(name, **params):
    """The scalar ``sum(w * f(x))`` and its gradient ``f_backward(w, x, f(x))``."""
    forward = getattr(F, name)
    backward = getattr(F, name + "_backward")

    def fn(x, w):
        y = forward(x, **params)
        return (w * y), backward(w, x, y, **params)

    return fn


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name, make):
    x = make(_inputs(1))
    w = make(np.random.default_rng(2).normal(size=(5, 4)))
    errors = xn.gradcheck(_through(name), x, w)
    assert errors[0] < 1e-6


@pytest.mark.parametrize(
    ("name", "params"), [("leaky_relu", {"alpha": 0.2}), ("elu", {"alpha": 0.5})]
)
def test_backward_with_parameters(name, params, make):
    x = make(_inputs(3))
    w = make(np.random.default_rng(4).normal(size=(5, 4)))
    assert xn.gradcheck(_through(name, **params), x, w)[0] < 1e-6


def test_prelu_gradients_wrt_input_and_alpha(make):
    x = make(_inputs(5))
    alpha = make([0.1, -0.2, 0.3, 0.25])
    w = make(np.random.default_rng(6).normal(size=(5, 4)))

    def fn(x, alpha):
        y = F.prelu(x, alpha)
        return w * y, F.prelu_backward(w, x, y, alpha)

    errors = xn.gradcheck(fn, x, alpha, wrt=(0, 1))
    assert errors[0] < 1e-6 and errors[1] < 1e-6
    _, dalpha = F.prelu_backward(w, x, F.prelu(x, alpha), alpha)
    assert tuple(dalpha.shape) == (4,)


def test_prelu_scalar_alpha(make):
    x = make(_inputs(7))
    alpha = make(0.25)
    w = make(np.ones((5, 4)))
    y = F.prelu(x, alpha)
    dx, dalpha = F.prelu_backward(w, x, y, alpha)
    host = _inputs(7)
    assert_close(dalpha, np.where(host <= 0, host, 0.0).sum())
    assert_close(dx, np.where(host > 0, 1.0, 0.25))


TORCH_EQUIVALENTS = {
    "linear": lambda t, x: x,
    "relu": lambda t, x: t.relu(x),
    "leaky_relu": lambda t, x: t.nn.functional.leaky_relu(x, 0.01),
    "elu": lambda t, x: t.nn.functional.elu(x),
    "sigmoid": lambda t, x: t.sigmoid(x),
    "tanh": lambda t, x: t.tanh(x),
    "softplus": lambda t, x: t.nn.functional.softplus(x, threshold=1e9),
    "log_sigmoid": lambda t, x: t.nn.functional.logsigmoid(x),
    "gelu": lambda t, x: t.nn.functional.gelu(x, approximate="tanh"),
    "silu": lambda t, x: t.nn.functional.silu(x),
    "softmax": lambda t, x: t.softmax(x, dim=-1),
    "log_softmax": lambda t, x: t.log_softmax(x, dim=-1),
}


@pytest.mark.parametrize("name", sorted(TORCH_EQUIVALENTS))
def test_backward_matches_torch_autograd(name, make):
    torch = pytest.importorskip("torch")
    host_x = _inputs(8)
    host_w = np.random.default_rng(9).normal(size=(5, 4))
    tx = torch.tensor(host_x, dtype=torch.float64, requires_grad=True)
    ty = TORCH_EQUIVALENTS[name](torch, tx)
    (ty * torch.tensor(host_w)).sum().backward()

    x, w = make(host_x), make(host_w)
    y = getattr(F, name)(x)
    dx = getattr(F, name + "_backward")(w, x, y)
    assert_close(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_close(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-14)


# Exact values at huge inputs: what the stable forms must give.
EXTREMES = {
    "sigmoid": ([1e4, -1e4, 1e3, -1e3], [1.0, 0.0, 1.0, 0.0]),
    "softplus": ([1e4, -1e4, 1e3, -1e3], [1e4, 0.0, 1e3, 0.0]),
    "log_sigmoid": ([1e4, -1e4, 1e3, -1e3], [0.0, -1e4, 0.0, -1e3]),
    "tanh": ([1e4, -1e4, 1e3, -1e3], [1.0, -1.0, 1.0, -1.0]),
    "elu": ([1e4, -1e4, 1e3, -1e3], [1e4, -1.0, 1e3, -1.0]),
    "gelu": ([1e4, -1e4, 1e3, -1e3], [1e4, 0.0, 1e3, 0.0]),
    "silu": ([1e4, -1e4, 1e3, -1e3], [1e4, 0.0, 1e3, 0.0]),
    "relu": ([1e4, -1e4, 1e3, -1e3], [1e4, 0.0, 1e3, 0.0]),
    "softmax": ([1e4, 0.0, -1e4, 1e3], [1.0, 0.0, 0.0, 0.0]),
    "log_softmax": ([1e4, 0.0, -1e4, 1e3], [0.0, -1e4, -2e4, -9e3]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_extreme_inputs_are_exact_and_finite(name, dtype, make, xp):
    x_host, expected = EXTREMES[name]
    x = make([x_host], dtype)
    y = getattr(F, name)(x)
    assert_close(y, [expected], rtol=1e-7 if dtype == "float32" else 1e-15, atol=0)
    dx = getattr(F, name + "_backward")(make(np.ones((1, 4)), dtype), x, y)
    assert bool(xp.all(xp.isfinite(dx)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_extremes(dtype, make):
    rtol = 1e-7 if dtype == "float32" else 1e-15
    assert_close(F.logsumexp(make([1e4, 1e4], dtype)), 1e4 + math.log(2.0), rtol=rtol)
    out = F.logsumexp(make([[-1e4, -1e4]], dtype), axis=1)
    assert_close(out, [-1e4 + math.log(2.0)], rtol=rtol)
    out = F.logsumexp(make([[1.0, 2.0], [3.0, -1e4]], dtype), axis=-1, keepdims=True)
    assert tuple(out.shape) == (2, 1)
    assert_close(out, [[math.log(math.e + math.e**2)], [3.0]], rtol=rtol)


def test_logsumexp_of_all_minus_infinity_is_minus_infinity(make, xp):
    out = F.logsumexp(make([[-math.inf, -math.inf], [0.0, -math.inf]]), axis=1)
    assert_close(out, [-math.inf, 0.0])


def test_logsumexp_of_a_nan_row_is_nan(make, xp):
    out = F.logsumexp(make([[math.nan, 0.0], [-math.inf, 0.0]]), axis=1)
    assert_close(out, [math.nan, 0.0])


INF = math.inf
# Rows with no defined softmax (all -inf, +inf, NaN) give NaN, as in PyTorch;
# a -inf entry beside finite ones gets probability 0 and log-probability -inf.
SOFTMAX_EDGES = [[-INF, -INF, -INF], [INF, 0.0, -INF], [math.nan, 0.0, 1.0], [-INF, 0.0, 1e4]]
SOFTMAX_EDGES_EXPECTED = {
    "softmax": [[math.nan] * 3, [math.nan] * 3, [math.nan] * 3, [0.0, 0.0, 1.0]],
    "log_softmax": [[math.nan] * 3, [math.nan] * 3, [math.nan] * 3, [-INF, -1e4, 0.0]],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(SOFTMAX_EDGES_EXPECTED))
def test_softmax_family_of_non_finite_rows_is_nan_without_warning(name, dtype, make, xp):
    x = make(SOFTMAX_EDGES, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(F, name)(x)
        dx = getattr(F, name + "_backward")(make(np.ones((4, 3)), dtype), x, y)
    assert_like(y, x)
    assert_like(dx, x)
    assert_close(y, SOFTMAX_EDGES_EXPECTED[name], rtol=0)
    assert bool(xp.all(xp.isfinite(dx[3, :])))


def test_softmax_family_matches_torch_on_non_finite_rows(make):
    torch = pytest.importorskip("torch")
    host = np.array(SOFTMAX_EDGES)
    for name, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        expected = fn(torch.tensor(host), dim=-1).numpy()
        assert_close(getattr(F, name)(make(host)), expected, rtol=0)


# Elementwise activations at +-inf: exact limits, no warning.
INFINITE_LIMITS = {
    "sigmoid": [1.0, 0.0],
    "log_sigmoid": [0.0, -INF],
    "softplus": [INF, 0.0],
    "tanh": [1.0, -1.0],
    "elu": [INF, -1.0],
    "relu": [INF, 0.0],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(INFINITE_LIMITS))
def test_activations_at_infinity_are_exact_without_warning(name, dtype, make, xp):
    x = make([INF, -INF], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(F, name)(x)
        dx = getattr(F, name + "_backward")(make([1.0, 1.0], dtype), x, y)
    assert_like(y, x)
    assert_close(y, INFINITE_LIMITS[name], rtol=0)
    assert bool(xp.all(xp.isfinite(dx)))


def test_softmax_axis_zero(make):
    host = _inputs(11)
    assert_close(F.softmax(make(host), axis=0), _softmax_ref(host.T).T)


def test_integer_input_is_a_type_error(xp, device):
    x = xp.asarray([1, 2, 3], device=device)
    with pytest.raises(TypeError, match="x must be a real floating array"):
        F.relu(x)


def test_inputs_are_not_modified(make):
    host = _inputs(12)
    x = make(host)
    for name in NAMES:
        y = getattr(F, name)(x)
        getattr(F, name + "_backward")(make(np.ones((5, 4))), x, y)
    assert_close(x, host, rtol=0)


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
rows = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=finite)


@settings(max_examples=40, deadline=None)
@given(x=rows)
def test_property_softmax_rows_sum_to_one(x, make):
    p = xn.to_numpy(F.softmax(make(x)))
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(x=rows)
def test_property_log_softmax_is_non_positive(x, make):
    out = xn.to_numpy(F.log_softmax(make(x)))
    assert np.all(np.isfinite(out)) and np.all(out <= 0)


@settings(max_examples=40, deadline=None)
@given(x=rows)
def test_property_sigmoid_symmetry(x, make):
    a = make(x)
    np.testing.assert_allclose(
        xn.to_numpy(F.sigmoid(-a)), 1.0 - xn.to_numpy(F.sigmoid(a)), rtol=0, atol=1e-15
    )
