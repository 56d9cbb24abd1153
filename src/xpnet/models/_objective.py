"""scikit-learn's MLP objective as a :class:`~xpnet.Sequential` step.

scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` minimize, per batch of
``n`` samples, the data loss plus ``0.5 * alpha * sum(||W||^2) / n`` over the
weight matrices (never the intercepts); the gradient of that term is
``alpha * W / n``. The ``1 / n`` makes it differ from a Keras-style
regularizer with a fixed coefficient, so the estimators train a small
subclass of ``Sequential`` whose public step adds it: everything else
(forward, loss, optimizer, ``predict``) is the plain model's.

The network the estimators build is also here: Dense layers initialized
as scikit-learn does (uniform in ``±sqrt(6 / (fan_in + fan_out))`` for the
weights *and* the intercepts, ``±sqrt(2 / (fan_in + fan_out))`` under a
sigmoid), unless the user picks an initializer.
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import initializers as _initializers
from xpnet import layers as _layers
from xpnet._backend import is_writeable
from xpnet._typing import Array
from xpnet.model import Sequential, Step

#: scikit-learn's activation names that xpnet spells differently.
SKLEARN_ACTIVATIONS = {"logistic": "sigmoid", "identity": "linear"}


class L2Sequential(Sequential):
    """A ``Sequential`` whose step adds scikit-learn's per-batch L2 penalty.

    Parameters
    ----------
    layers : list of Layer
    alpha : float
        L2 strength: the batch loss gains ``0.5 * alpha * sum(||W||^2) / n``
        and each Dense kernel's gradient ``alpha * W / n``, where ``n`` is the
        number of rows in the batch. 0 is the plain model.
    **kwargs
        ``backend``, ``device``, ``dtype``, ``seed`` of :class:`~xpnet.Sequential`.
    """

    def __init__(self, layers: list[_layers.Layer], *, alpha: float = 0.0, **kwargs: Any):
        super().__init__(layers, **kwargs)
        self.alpha = float(alpha)

    def compute_gradients(
        self, x: Array, y: Array, sample_weight: Array | None = None, *, training: bool = True
    ) -> Step:
        step = super().compute_gradients(x, y, sample_weight, training=training)
        if self.alpha == 0.0:
            return step
        scale = self.alpha / int(x.shape[0])
        squares = None
        for layer in self.layers:
            kernel = layer.params.get("kernel") if isinstance(layer, _layers.Dense) else None
            if kernel is None:
                continue
            xp = self.placement.xp
            total = xp.sum(kernel * kernel)
            squares = total if squares is None else squares + total
            key = f"{layer.name}/kernel"
            grad = step.gradients[key]
            if is_writeable(grad):  # the gradient buffer is the step's own
                grad += scale * kernel
            else:
                step.gradients[key] = grad + scale * kernel
        if squares is not None:
            step.loss = step.loss + (0.5 * scale) * squares
        return step


def sklearn_bound(fan_in: int, fan_out: int, activation: str | None) -> float:
    """scikit-learn's (Glorot's) uniform bound; sigmoid units get the
    factor 2 instead of 6."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    return math.sqrt(factor / (fan_in + fan_out))


def dense_stack(
    n_features: int,
    hidden: tuple[int, ...],
    activation: str | None,
    n_outputs: int,
    output_activation: str | None,
    kernel_initializer: Any,
    bias_initializer: Any = "zeros",
) -> list[_layers.Layer]:
    """The Dense layers of an estimator's network.

    ``kernel_initializer="sklearn"`` draws weights and intercepts uniformly
    within :func:`sklearn_bound` of each layer's fans (the bound follows the
    hidden activation, as in scikit-learn, for every layer); any other value
    is an xpnet initializer for the weights, with `bias_initializer` for the
    intercepts.
    """
    sizes = [int(n_features), *hidden, int(n_outputs)]
    acts = [activation] * len(hidden) + [output_activation]
    stack = []
    for fan_in, fan_out, act in zip(sizes[:-1], sizes[1:], acts, strict=True):
        kernel, bias = kernel_initializer, bias_initializer
        if isinstance(kernel_initializer, str) and kernel_initializer == "sklearn":
            bound = sklearn_bound(fan_in, fan_out, activation)
            kernel = bias = _initializers.RandomUniform(-bound, bound)
        stack.append(
            _layers.Dense(fan_out, activation=act, kernel_initializer=kernel, bias_initializer=bias)
        )
    return stack
