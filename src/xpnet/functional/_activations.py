"""The activation kernels and their derivatives (``f`` / ``f_backward``),
with ``logsumexp``, ``softmax`` and ``log_softmax``: see :mod:`xpnet.functional`."""

from __future__ import annotations

import math

from xpnet._backend import isdtype, namespace, reduce_max, reduce_sum
from xpnet._typing import Array, Namespace


def _float_namespace(x: Array, name: str = "x") -> Namespace:
    """Namespace of `x`, which must be a real floating array."""
    xp = namespace(x)
    if not isdtype(xp, x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array, got dtype {x.dtype}")
    return xp


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def linear(x: Array) -> Array:
    """Identity, ``f(x) = x``."""
    _float_namespace(x)
    return x


def linear_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`linear`: ``dy``."""
    return dy


def relu(x: Array) -> Array:
    """Rectified linear unit, ``max(x, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import functional as F
    >>> F.relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    xp = _float_namespace(x)
    return xp.maximum(x, 0.0)


def relu_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`relu`: ``dy`` where ``x > 0``, else 0."""
    xp = namespace(dy)
    return xp.where(y > 0, dy, 0.0)


def leaky_relu(x: Array, alpha: float = 0.01) -> Array:
    """``x`` for ``x > 0``, ``alpha * x`` otherwise."""
    xp = _float_namespace(x)
    return xp.where(x > 0, x, alpha * x)


def leaky_relu_backward(dy: Array, x: Array, y: Array, alpha: float = 0.01) -> Array:
    """Gradient of :func:`leaky_relu`: ``dy`` or ``alpha * dy``."""
    xp = namespace(dy)
    return xp.where(x > 0, dy, alpha * dy)


def prelu(x: Array, alpha: Array) -> Array:
    """Parametric ReLU: :func:`leaky_relu` with a learned, broadcastable `alpha`."""
    xp = _float_namespace(x)
    return xp.where(x > 0, x, alpha * x)


def prelu_backward(dy: Array, x: Array, y: Array, alpha: Array) -> tuple[Array, Array]:
    """Gradients of :func:`prelu` w.r.t. ``x`` and ``alpha``.

    ``d/dalpha`` is ``x`` where ``x <= 0``; it is summed over every axis that
    `alpha` was broadcast along, so the result has `alpha`'s shape.
    """
    xp = namespace(dy)
    negative = x <= 0
    dx = xp.where(negative, alpha * dy, dy)
    dalpha = _sum_to_shape(xp, xp.where(negative, dy * x, 0.0), alpha.shape)
    return dx, dalpha


def _sum_to_shape(xp: Namespace, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum `g` over the axes that broadcasting added to or stretched in `shape`."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    xp = _float_namespace(x)
    # expm1 only of non-positive values: no overflow for large x.
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0)))


def elu_backward(dy: Array, x: Array, y: Array, alpha: float = 1.0) -> Array:
    """Gradient of :func:`elu`: ``dy`` for ``x > 0``, ``dy * (y + alpha)`` otherwise."""
    xp = namespace(dy)
    return xp.where(x > 0, dy, dy * (y + alpha))


def sigmoid(x: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-x))``, without overflow.

    With ``e = exp(-|x|)`` (always in (0, 1]) it is ``1 / (1 + e)`` for
    ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``.
    """
    xp = _float_namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e) / (1.0 + e)


def sigmoid_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`sigmoid`: ``dy * y * (1 - y)``."""
    return dy * y * (1.0 - y)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent."""
    xp = _float_namespace(x)
    return xp.tanh(x)


def tanh_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`tanh`: ``dy * (1 - y**2)``."""
    return dy * (1.0 - y * y)


def softplus(x: Array) -> Array:
    """``log(1 + exp(x))`` computed as ``max(x, 0) + log1p(exp(-|x|))``."""
    xp = _float_namespace(x)
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def softplus_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`softplus`: ``dy * sigmoid(x)``.

    ``sigmoid(x) = 1 - exp(-softplus(x)) = -expm1(-y)``, accurate at both ends
    and one ``exp`` cheaper than recomputing the sigmoid.
    """
    xp = namespace(dy)
    return -dy * xp.expm1(-y)


def log_sigmoid(x: Array) -> Array:
    """``log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))``."""
    xp = _float_namespace(x)
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def log_sigmoid_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`log_sigmoid`: ``dy * sigmoid(-x) = -dy * expm1(y)``."""
    xp = namespace(dy)
    return -dy * xp.expm1(y)


def gelu(x: Array) -> Array:
    """Gaussian error linear unit, tanh approximation (Hendrycks & Gimpel):
    ``0.5 x (1 + tanh(u))`` with ``u = sqrt(2/pi) (x + 0.044715 x^3)``.

    Computed as ``x * sigmoid(2u)`` (the same function, since
    ``1 + tanh(u) = 2 sigmoid(2u)``), which avoids the cancellation of
    ``1 + tanh(u)`` for negative ``x``.
    """
    xp = _float_namespace(x)
    return x * sigmoid(2.0 * _gelu_inner(xp, x))


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
# Beyond |x| = 25, sigmoid(2u) is exactly 0 or 1 even in float64 (2u > 1100);
# clipping there keeps x**3 from overflowing float32/float16 at huge inputs.
_GELU_CLIP = 25.0


def _gelu_inner(xp: Namespace, x: Array) -> Array:
    xc = xp.clip(x, -_GELU_CLIP, _GELU_CLIP)
    return _GELU_C * (xc + _GELU_A * xc * xc * xc)


def gelu_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`gelu`: with ``s = sigmoid(2u)``,
    ``s + 2 x s (1 - s) u'`` and ``u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)``.
    """
    xp = namespace(dy)
    s = sigmoid(2.0 * _gelu_inner(xp, x))
    xc = xp.clip(x, -_GELU_CLIP, _GELU_CLIP)  # s (1 - s) is exactly 0 beyond the clip
    du = _GELU_C * (1.0 + 3.0 * _GELU_A * xc * xc)
    return dy * (s + 2.0 * xc * s * (1.0 - s) * du)


def silu(x: Array) -> Array:
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``."""
    return x * sigmoid(x)


def silu_backward(dy: Array, x: Array, y: Array) -> Array:
    """Gradient of :func:`silu`: ``dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return dy * s * (1.0 + x * (1.0 - s))


def step(x: Array) -> Array:
    """Heaviside step, the perceptron's activation: 1 where ``x >= 0``, else 0."""
    xp = _float_namespace(x)
    return xp.astype(x >= 0, x.dtype)


def step_backward(dy: Array, x: Array, y: Array) -> Array:
    """The step's derivative is 0 wherever it exists, so no gradient flows."""
    xp = namespace(dy)
    return xp.zeros_like(dy)


def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """``log(sum(exp(x), axis))`` computed as ``m + log(sum(exp(x - m)))``,
    ``m = max(x)``, so the largest exponent is 0.
    """
    xp = _float_namespace(x)
    m = xp.max(x, axis=axis, keepdims=True)
    # A row of -inf would give inf - inf = nan; shift by 0 there instead, and
    # answer -inf without asking log for log(0) (which warns on NumPy); NaN stays NaN.
    m = xp.where(xp.isfinite(m), m, 0.0)
    s = xp.sum(xp.exp(x - m), axis=axis, keepdims=True)
    empty = s == 0
    out = m + xp.where(empty, -math.inf, xp.log(xp.where(empty, 1.0, s)))
    return out if keepdims else xp.squeeze(out, axis=axis)


def _shift_by_max(xp: Namespace, x: Array, axis: int) -> Array:
    """``x - max(x)`` along `axis`; a slice whose max is not finite (all -inf,
    or holding +inf or NaN) is shifted by NaN: all NaN, as in PyTorch, without
    the ``inf - inf`` or ``0 / 0`` that warn on NumPy."""
    m = reduce_max(x, axis=axis, keepdims=True)
    return x - xp.where(xp.isfinite(m), m, math.nan)


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along `axis`, shifted by the max for stability.
    A -inf entry gets 0; a slice of all -inf (or holding +inf or NaN) gives NaN,
    as ``torch.softmax`` does, without a NumPy warning."""
    xp = _float_namespace(x)
    e = xp.exp(_shift_by_max(xp, x, axis))
    return e / reduce_sum(e, axis=axis, keepdims=True)


def softmax_backward(dy: Array, x: Array, y: Array, axis: int = -1) -> Array:
    """Gradient of :func:`softmax`: ``y * (dy - sum(dy * y, axis))``."""
    xp = namespace(dy)
    return y * (dy - xp.sum(dy * y, axis=axis, keepdims=True))


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - logsumexp(x)`` along `axis`, as ``s - log(sum(exp(s)))`` with
    ``s = x - max(x)``. A -inf entry gives -inf; a slice of all -inf (or one
    holding +inf or NaN) gives NaN, as in PyTorch, without a NumPy warning.
    """
    xp = _float_namespace(x)
    shifted = _shift_by_max(xp, x, axis)
    return shifted - xp.log(reduce_sum(xp.exp(shifted), axis=axis, keepdims=True))


def log_softmax_backward(dy: Array, x: Array, y: Array, axis: int = -1) -> Array:
    """Gradient of :func:`log_softmax`: ``dy - exp(y) * sum(dy, axis)``."""
    xp = namespace(dy)
    return dy - xp.exp(y) * xp.sum(dy, axis=axis, keepdims=True)
