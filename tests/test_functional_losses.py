"""Loss kernels in xpnet.functional: values, gradients, stability, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xpnet as xn
from helpers import assert_close, assert_like
from xpnet import functional as F

N, K = 6, 4
rng = np.random.default_rng(0)
LOGITS = rng.normal(0.0, 2.0, size=(N, K))
PROBS = 1.0 / (1.0 + np.exp(-LOGITS))  # in (0, 1), away from the clip
SOFTMAX = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
LABELS = rng.integers(0, K, size=N)
ONE_HOT = np.eye(K)[LABELS]
BINARY = (rng.random((N, K)) < 0.5).astype(np.float64)
SOFT = rng.dirichlet(np.ones(K), size=N)  # soft targets, rows sum to 1
TARGETS = rng.normal(size=(N, K))
# Residuals kept away from 0 (MAE's kink) and from +-1 (Huber's)
PRED = TARGETS + np.where(rng.random((N, K)) < 0.5, -1, 1) * rng.choice(
    [0.3, 0.6, 1.5, 2.5], (N, K)
)
WEIGHTS = rng.uniform(0.5, 2.0, size=N)


def _ref_bce(p, y):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)


def _ref_huber(r, delta=1.0):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta)).mean(axis=1)


# name -> (kernel, prediction, target, per-sample float64 reference)
CASES = {
    "bce_logits": (
        F.binary_cross_entropy_with_logits,
        LOGITS,
        BINARY,
        _ref_bce(PROBS, BINARY),
    ),
    "softmax_ce_onehot": (
        F.softmax_cross_entropy_with_logits,
        LOGITS,
        ONE_HOT,
        -np.log(SOFTMAX[np.arange(N), LABELS]),
    ),
    "softmax_ce_soft": (
        F.softmax_cross_entropy_with_logits,
        LOGITS,
        SOFT,
        -(SOFT * np.log(SOFTMAX)).sum(axis=1),
    ),
    "softmax_ce_labels": (
        F.softmax_cross_entropy_with_logits,
        LOGITS,
        LABELS,
        -np.log(SOFTMAX[np.arange(N), LABELS]),
    ),
    "bce": (F.binary_cross_entropy, PROBS, BINARY, _ref_bce(PROBS, BINARY)),
    "cce": (
        F.categorical_cross_entropy,
        SOFTMAX,
        ONE_HOT,
        -np.log(SOFTMAX[np.arange(N), LABELS]),
    ),
    "cce_labels": (
        F.categorical_cross_entropy,
        SOFTMAX,
        LABELS,
        -np.log(SOFTMAX[np.arange(N), LABELS]),
    ),
    "mse": (F.mean_squared_error, PRED, TARGETS, ((PRED - TARGETS) ** 2).mean(axis=1)),
    "mae": (F.mean_absolute_error, PRED, TARGETS, np.abs(PRED - TARGETS).mean(axis=1)),
    "sse": (F.sum_squared_error, PRED, TARGETS, 0.5 * ((PRED - TARGETS) ** 2).sum(axis=1)),
    "kl": (F.kl_divergence, SOFTMAX, SOFT, (SOFT * np.log(SOFT / SOFTMAX)).sum(axis=1)),
    "huber": (F.huber, PRED, TARGETS, _ref_huber(PRED - TARGETS)),
}


def _target(make, target):
    return make(target, "int64") if target.dtype.kind == "i" else make(target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_values_match_reference(case, reduction, make):
    kernel, pred, target, per_sample = CASES[case]
    z = make(pred)
    loss, grad = kernel(z, _target(make, target), reduction=reduction)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}
    assert_close(loss, expected[reduction], rtol=1e-12)
    assert_like(grad, z)
    assert tuple(grad.shape) == tuple(z.shape)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_gradients_match_finite_differences(case, reduction, make):
    kernel, pred, target, _ = CASES[case]
    y = _target(make, target)
    errors = xn.gradcheck(lambda z: kernel(z, y, reduction=reduction), make(pred))
    assert errors[0] < 1e-6


@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_weight_scales_each_sample(case, make):
    kernel, pred, target, per_sample = CASES[case]
    y, w = _target(make, target), make(WEIGHTS)
    loss, _ = kernel(make(pred), y, sample_weight=w)
    assert_close(loss, (WEIGHTS * per_sample).mean(), rtol=1e-12)
    errors = xn.gradcheck(lambda z: kernel(z, y, sample_weight=w), make(pred))
    assert errors[0] < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_in_float32_out(dtype, make):
    for case in sorted(CASES):
        kernel, pred, target, per_sample = CASES[case]
        z = make(pred, dtype)
        loss, grad = kernel(z, _target(make, target))
        assert_like(grad, z)
        assert loss.dtype == z.dtype
        assert_close(loss, per_sample.mean(), rtol=1e-5 if dtype == "float32" else 1e-12)


def _torch_reference(torch, case, pred, target):
    """The same loss through torch.nn.functional, with autograd's gradient."""
    tf = torch.nn.functional
    z = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    losses = {
        "bce_logits": lambda: tf.binary_cross_entropy_with_logits(z, t),
        "softmax_ce_onehot": lambda: tf.cross_entropy(z, t),
        "softmax_ce_soft": lambda: tf.cross_entropy(z, t),
        "softmax_ce_labels": lambda: tf.cross_entropy(z, t),
        "bce": lambda: tf.binary_cross_entropy(z, t),
        "cce": lambda: -(t * torch.log(z)).sum(dim=1).mean(),
        "cce_labels": lambda: tf.nll_loss(torch.log(z), t),
        "mse": lambda: tf.mse_loss(z, t),
        "mae": lambda: tf.l1_loss(z, t),
        "sse": lambda: 0.5 * ((z - t) ** 2).sum(dim=1).mean(),
        "kl": lambda: tf.kl_div(torch.log(z), t, reduction="batchmean"),
        "huber": lambda: tf.huber_loss(z, t, delta=1.0),
    }
    loss = losses[case]()
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_and_gradient_match_torch_autograd(case, make):
    torch = pytest.importorskip("torch")
    kernel, pred, target, _ = CASES[case]
    expected_loss, expected_grad = _torch_reference(torch, case, pred, target)
    loss, grad = kernel(make(pred), _target(make, target))
    assert_close(loss, expected_loss, rtol=1e-12)
    assert_close(grad, expected_grad, rtol=1e-10, atol=1e-15)


def test_huber_delta(make):
    r = PRED - TARGETS
    loss, _ = F.huber(make(PRED), make(TARGETS), delta=0.5)
    assert_close(loss, _ref_huber(r, 0.5).mean())
    y = make(TARGETS)
    assert xn.gradcheck(lambda z: F.huber(z, y, delta=2.0), make(PRED))[0] < 1e-6


# ---------------------------------------------------------------- stability


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("big", [1e3, 1e4])
def test_bce_with_logits_is_exact_at_extreme_logits(big, dtype, make):
    z = make([big, big, -big, -big], dtype)
    y = make([1.0, 0.0, 1.0, 0.0], dtype)
    loss, grad = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    assert_close(loss, [0.0, big, big, 0.0], rtol=0)
    assert_close(grad, [0.0, 1.0, -1.0, 0.0], rtol=0)
    mean, mean_grad = F.binary_cross_entropy_with_logits(z, y)
    assert_close(mean, big / 2, rtol=0)
    assert_close(mean_grad, [0.0, 0.25, -0.25, 0.0], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("big", [1e3, 1e4])
def test_softmax_ce_is_exact_at_extreme_logits(big, dtype, make):
    z = make([[big, 0.0, -big]] * 3, dtype)
    labels = make([0, 1, 2], "int64")
    loss, grad = F.softmax_cross_entropy_with_logits(z, labels, reduction="none")
    assert_close(loss, [0.0, big, 2 * big], rtol=0)
    assert_close(grad, [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0], [1.0, 0.0, -1.0]], rtol=0)
    one_hot_loss, one_hot_grad = F.softmax_cross_entropy_with_logits(
        z, make(np.eye(3), dtype), reduction="none"
    )
    assert_close(one_hot_loss, [0.0, big, 2 * big], rtol=0)
    assert_close(one_hot_grad, xn.to_numpy(grad), rtol=0)


# ------------------------------------------- zero targets at infinite logits
# 0 * log p counts as 0 where y = 0, in value and gradient, also where log p
# is -inf (a masked class). float64 references are written from the formula.

TOL = {"float32": {"rtol": 2e-6, "atol": 1e-7}, "float64": {"rtol": 1e-12, "atol": 1e-15}}
INF = np.inf
MASKED = [[-INF, 1.0, 2.0], [1e4, -INF, -1e4], [0.5, -INF, -INF], [-1e4, 1e4, -INF]]
MASKED_LABELS = [1, 0, 0, 1]


def _host(data, dtype):
    """`data` rounded to `dtype`, then widened for a float64 reference."""
    return np.asarray(data, dtype=dtype).astype(np.float64)


def _ref_log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _ref_softmax_ce(z, y):
    """Per-sample ``-sum_{y > 0} y log softmax(z)`` and ``softmax(z) sum(y) - y``."""
    log_p = _ref_log_softmax(z)
    loss = -np.where(y > 0, y * np.where(y > 0, log_p, 0.0), 0.0).sum(axis=1)
    return loss, np.exp(log_p) * y.sum(axis=1, keepdims=True) - y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_ce_one_hot_at_minus_inf_logits_matches_labels(dtype, make):
    z = make(MASKED, dtype)
    one_hot = make(np.eye(3)[MASKED_LABELS], dtype)
    labels = make(MASKED_LABELS, "int64")
    loss, grad = F.softmax_cross_entropy_with_logits(z, one_hot, reduction="none")
    expected_loss, expected_grad = _ref_softmax_ce(_host(MASKED, dtype), np.eye(3)[MASKED_LABELS])
    assert_like(loss, z)
    assert_like(grad, z)
    assert_close(loss, expected_loss, **TOL[dtype])
    assert_close(grad, expected_grad, **TOL[dtype])
    for reduction in ("mean", "sum"):  # the sparse fast path for integer labels
        a, ga = F.softmax_cross_entropy_with_logits(z, one_hot, reduction=reduction)
        b, gb = F.softmax_cross_entropy_with_logits(z, labels, reduction=reduction)
        assert a.dtype == z.dtype  # NumPy gives a NumPy scalar here, not a 0-d array
        assert_close(a, xn.to_numpy(b), **TOL[dtype])
        assert_close(ga, xn.to_numpy(gb), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_ce_soft_targets_at_minus_inf_logits(dtype, make, xp):
    y = np.array([[0.0, 0.25, 0.75], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    z = make(MASKED, dtype)
    w = make(WEIGHTS[:4], dtype)
    loss, grad = F.softmax_cross_entropy_with_logits(z, make(y, dtype), sample_weight=w)
    ref_loss, ref_grad = _ref_softmax_ce(_host(MASKED, dtype), y)
    weights = _host(WEIGHTS[:4], dtype)
    assert_like(grad, z)
    assert bool(xp.all(xp.isfinite(grad)))
    assert_close(loss, (weights * ref_loss).mean(), **TOL[dtype])
    assert_close(grad, ref_grad * weights[:, None] / 4, **TOL[dtype])


def test_softmax_ce_positive_target_at_minus_inf_logit_is_inf(make):
    z = make([[-INF, 0.0], [-INF, 0.0]])
    loss, grad = F.softmax_cross_entropy_with_logits(
        z, make([[1.0, 0.0], [0.5, 0.5]]), reduction="none"
    )
    labels_loss, labels_grad = F.softmax_cross_entropy_with_logits(z, make([0, 0], "int64"))
    assert_close(loss, [INF, INF])
    assert_close(labels_loss, INF)
    assert_close(grad, [[-1.0, 1.0], [-0.5, 0.5]])
    assert_close(labels_grad, [[-0.5, 0.5], [-0.5, 0.5]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_infinite_logits_are_exact(dtype, make, xp):
    z_host = [-INF, INF, -INF, INF, -INF, 1e4, -1e4, 1e4, 0.3]
    y_host = [0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25, 0.25]
    z = make(z_host, dtype)
    loss, grad = F.binary_cross_entropy_with_logits(z, make(y_host, dtype), reduction="none")
    zr, yr = _host(z_host[-1:], dtype), _host(y_host[-1:], dtype)
    p = 1.0 / (1.0 + np.exp(-zr))
    last = -(yr * np.log(p) + (1 - yr) * np.log(1 - p))
    expected_loss = [0.0, 0.0, INF, INF, INF, 0.0, 0.0, 7.5e3, last[0]]
    expected_grad = [0.0, 0.0, -1.0, 1.0, -0.5, 0.0, 0.0, 0.75, (p - yr)[0]]
    assert_like(loss, z)
    assert_like(grad, z)
    assert_close(loss, expected_loss, **TOL[dtype])
    assert_close(grad, expected_grad, **TOL[dtype])
    # Exact rows give exactly 0 (no rounding at the masked entries).
    assert_close(loss[:2], [0.0, 0.0], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kl_divergence_zero_target_adds_nothing(dtype, make):
    y = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    p_host = [[0.5, 0.5, 0.0], [0.25, 0.25, 0.5], [0.2, 0.3, 0.5]]
    p = make(p_host, dtype)
    loss, grad = F.kl_divergence(p, make(y, dtype), reduction="none")
    ph = _host(p_host, dtype)
    safe = np.where(y > 0, ph, 1.0)
    expected = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / safe), 0.0).sum(axis=1)
    assert_like(loss, p)
    assert_like(grad, p)
    assert_close(loss, expected, **TOL[dtype])
    assert_close(grad, np.where(y > 0, -y / safe, 0.0), **TOL[dtype])
    assert np.all(xn.to_numpy(grad)[y == 0] == 0.0)  # exactly, not eps / p


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_probability_ces_zero_target_at_zero_probability(dtype, make, xp):
    """Clipping already keeps ``log p`` finite: ``0 * log p`` is exactly 0."""
    p_host = [[0.0, 1.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.0, 0.5]]
    labels = [1, 0, 2]
    p = make(p_host, dtype)
    a, ga = F.categorical_cross_entropy(p, make(np.eye(3)[labels], dtype), reduction="none")
    b, gb = F.categorical_cross_entropy(p, make(labels, "int64"), reduction="none")
    assert_like(ga, p)
    assert_close(a, xn.to_numpy(b), rtol=0)
    assert_close(ga, xn.to_numpy(gb), rtol=0)
    eps = np.finfo(dtype).eps
    clipped = np.clip(_host(p_host, dtype), eps, 1 - eps)
    assert_close(a, -np.log(clipped[np.arange(3), labels]), **TOL[dtype])
    loss, grad = F.binary_cross_entropy(p, make(np.eye(3)[labels], dtype), reduction="none")
    assert bool(xp.all(xp.isfinite(loss))) and bool(xp.all(xp.isfinite(grad)))


def test_probability_losses_are_finite_at_zero_and_one(make, xp):
    p = make([[0.0, 1.0], [1.0, 0.0]])
    y = make([[1.0, 0.0], [1.0, 0.0]])
    for kernel in (F.binary_cross_entropy, F.categorical_cross_entropy, F.kl_divergence):
        loss, grad = kernel(p, y)
        assert bool(xp.isfinite(loss)) and bool(xp.all(xp.isfinite(grad)))
    loss, _ = F.binary_cross_entropy(p, y, reduction="none")
    eps = np.finfo(np.float64).eps
    # Row 0 is wrong on both outputs (each clipped to eps), row 1 right on both.
    assert_close(loss, [-np.log(eps), -np.log1p(-eps)], rtol=1e-12)


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
logit_arrays = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 4)), elements=finite)


@settings(max_examples=40, deadline=None)
@given(z=logit_arrays, data=st.data())
def test_property_bce_with_logits_nonnegative_and_equals_probability_form(z, data, make):
    y = data.draw(arrays(np.float64, z.shape, elements=st.sampled_from([0.0, 1.0])))
    loss, grad = F.binary_cross_entropy_with_logits(make(z), make(y), reduction="none")
    loss = xn.to_numpy(loss)
    assert np.all(loss >= 0) and np.all(np.isfinite(xn.to_numpy(grad)))
    # Where the naive probability form is finite and well conditioned, both
    # agree. (Past |z| ~ 10 the naive log(1 - p) loses digits to cancellation;
    # the softplus form does not, so it is the naive side that drifts there.)
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -10, 10)))
    usable = np.all(np.abs(z) < 10, axis=1)
    if usable.any():
        naive = _ref_bce(p, y)[usable]
        np.testing.assert_allclose(loss[usable], naive, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(z=logit_arrays, data=st.data())
def test_property_softmax_ce_nonnegative_finite(z, data, make):
    labels = np.asarray(
        data.draw(
            st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0])
        )
    )
    loss, grad = F.softmax_cross_entropy_with_logits(
        make(z), make(labels, "int64"), reduction="none"
    )
    assert np.all(xn.to_numpy(loss) >= 0)
    g = xn.to_numpy(grad)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)


# ---------------------------------------------------------------- bad input


def test_integer_logits_are_a_type_error(xp, device, make):
    z = xp.asarray([[1, 2], [3, 4]], device=device)
    with pytest.raises(TypeError, match="logits must be a real floating array"):
        F.softmax_cross_entropy_with_logits(z, make([0, 1], "int64"))
    with pytest.raises(TypeError, match="logits must be a real floating array"):
        F.binary_cross_entropy_with_logits(z, make([[0.0, 1.0], [1.0, 0.0]]))


def test_wrong_label_shapes_are_value_errors(make):
    z = make(LOGITS)
    with pytest.raises(ValueError, match=r"integer labels y_true must have shape \(6,\)"):
        F.softmax_cross_entropy_with_logits(z, make(np.zeros((N, 2)), "int64"))
    with pytest.raises(ValueError, match=r"y_true has shape \(6, 3\).*\(6, 4\)"):
        F.softmax_cross_entropy_with_logits(z, make(np.zeros((N, 3))))
    with pytest.raises(
        ValueError, match=r"y_true has shape \(5, 4\) but logits has shape \(6, 4\)"
    ):
        F.binary_cross_entropy_with_logits(z, make(np.zeros((5, 4))))
    with pytest.raises(ValueError, match=r"y_true has shape \(6,\) but y_pred has shape \(6, 4\)"):
        F.mean_squared_error(z, make(np.zeros(N)))
    with pytest.raises(ValueError, match=r"logits must have shape \(n_samples, n_classes\)"):
        F.softmax_cross_entropy_with_logits(make(np.zeros(4)), make([1], "int64"))


def test_column_targets_are_accepted_for_one_output(make):
    z = make(LOGITS[:, :1])
    a, ga = F.binary_cross_entropy_with_logits(z, make(BINARY[:, 0]))
    b, gb = F.binary_cross_entropy_with_logits(z, make(BINARY[:, :1]))
    assert_close(a, xn.to_numpy(b))
    assert_close(ga, xn.to_numpy(gb))


def test_unknown_reduction_suggests(make):
    with pytest.raises(ValueError, match="Unknown reduction 'maen'. Did you mean 'mean'"):
        F.mean_squared_error(make(PRED), make(TARGETS), reduction="maen")


def test_empty_batch_is_a_value_error(make):
    with pytest.raises(ValueError, match="at least one sample"):
        F.mean_squared_error(make(np.zeros((0, 2))), make(np.zeros((0, 2))))


def test_bad_sample_weight_shape(make):
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(6,\)"):
        F.mean_squared_error(make(PRED), make(TARGETS), sample_weight=make(np.ones(3)))


def test_huber_delta_must_be_positive(make):
    with pytest.raises(ValueError, match="delta must be positive"):
        F.huber(make(PRED), make(TARGETS), delta=0.0)


def test_mixing_libraries_is_a_type_error(make, placement):
    if placement.name == "numpy":
        pytest.skip("needs a second library")
    with pytest.raises(TypeError, match="different libraries"):
        F.mean_squared_error(make(PRED), TARGETS)


def test_losses_do_not_modify_inputs(make):
    for case in sorted(CASES):
        kernel, pred, target, _ = CASES[case]
        z, y = make(pred), _target(make, target)
        kernel(z, y, sample_weight=make(WEIGHTS))
        assert_close(z, pred, rtol=0)
        assert_close(y, target, rtol=0)
