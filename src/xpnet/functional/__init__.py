"""Pure kernels: activations, their derivatives, and stable losses.

Every function takes arrays of any supported library and returns arrays of
the same library, dtype and device. Nothing here reads a value back to the
host or branches in Python on array contents, so the kernels never force a
device synchronization and trace under ``jax.jit``.

Activations come in pairs: ``f(x)`` and ``f_backward(dy, x, y)``, where ``y``
is what ``f(x)`` returned and ``dy`` the gradient of the loss w.r.t. ``y``;
the result is the gradient w.r.t. ``x``. Each backward uses whichever of
``x`` and ``y`` makes it cheapest and most accurate.

Losses return ``(loss, grad)``: the loss reduced over the samples (axis 0)
and its gradient w.r.t. the prediction or logits, the first argument. The
order is PyTorch's ``(input, target)``; the Keras-style classes in
:mod:`xpnet.losses` take ``(y_true, y_pred)``.

Stability: ``exp`` is only ever applied to non-positive numbers, so no
finite input overflows, warns, or produces NaN. See the guide
(``docs/guide/kernels.md``) for the derivations.
"""

from __future__ import annotations

from xpnet.functional._activations import (
    elu,
    elu_backward,
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    linear,
    linear_backward,
    log_sigmoid,
    log_sigmoid_backward,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    prelu,
    prelu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    softplus,
    softplus_backward,
    step,
    step_backward,
    tanh,
    tanh_backward,
)
from xpnet.functional._losses import (
    REDUCTIONS as REDUCTIONS,
)
from xpnet.functional._losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    categorical_cross_entropy,
    huber,
    kl_divergence,
    mean_absolute_error,
    mean_squared_error,
    softmax_cross_entropy_with_logits,
    sum_squared_error,
)

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "categorical_cross_entropy",
    "elu",
    "elu_backward",
    "gelu",
    "gelu_backward",
    "huber",
    "kl_divergence",
    "leaky_relu",
    "leaky_relu_backward",
    "linear",
    "linear_backward",
    "log_sigmoid",
    "log_sigmoid_backward",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "mean_absolute_error",
    "mean_squared_error",
    "prelu",
    "prelu_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "silu",
    "silu_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy_with_logits",
    "softplus",
    "softplus_backward",
    "step",
    "step_backward",
    "sum_squared_error",
    "tanh",
    "tanh_backward",
]
