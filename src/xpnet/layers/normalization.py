"""BatchNormalization, with Keras 3's semantics, for 2-D inputs.

In training each feature is standardized with the batch's mean and *biased*
variance (divided by n, as ``keras.ops.moments`` computes it), then scaled
and shifted::

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta

and the moving statistics move toward the batch's
(``m <- m * momentum + batch_stat * (1 - momentum)``, the biased variance
too). At inference (``predict``, ``evaluate``) the moving statistics take
the batch's place, so the layer is a fixed affine map per feature.

The backward of the training form, with ``xhat = (x - mean) / sqrt(var + eps)``
and ``n`` samples, is the classic::

    dgamma = sum(dy * xhat)        dbeta = sum(dy)
    dx = gamma / sqrt(var + eps) * (dy - dbeta / n - xhat * dgamma / n)
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import initializers as _initializers
from xpnet._backend import namespace, reduce_sum
from xpnet._typing import Array
from xpnet.layers._base import Layer, regularizer_config, set_regularizers
from xpnet.layers.core import Regularizer

Initializer = str | _initializers.Initializer


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class BatchNormalization(Layer):
    """Normalize each feature over the batch, then scale by ``gamma`` and shift by ``beta``.

    Weights, in Keras's order: ``gamma`` (when `scale`), ``beta`` (when
    `center`), both trained; ``moving_mean`` and ``moving_variance``, which
    are not (they are in ``layer.buffers`` and only the forward pass in
    training changes them).

    Parameters
    ----------
    axis : {-1, 1}
        The feature axis of the 2-D input ``(n_samples, n_features)``.
    momentum : float in [0, 1]
        Weight of the old moving statistics in each update.
    epsilon : float > 0
        Added to the variance before the square root.
    center, scale : bool
        Learn ``beta`` / ``gamma``; without them the shift is 0 / the scale 1.
    beta_initializer, gamma_initializer : str or Initializer
    moving_mean_initializer, moving_variance_initializer : str or Initializer
    beta_regularizer, gamma_regularizer : str, dict or Regularizer, optional
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Initializer = "zeros",
        gamma_initializer: Initializer = "ones",
        moving_mean_initializer: Initializer = "zeros",
        moving_variance_initializer: Initializer = "ones",
        beta_regularizer: Regularizer = None,
        gamma_regularizer: Regularizer = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(axis, bool) or axis not in (-1, 1):
            raise ValueError(
                "BatchNormalization takes 2-D inputs (n_samples, n_features): "
                f"axis must be -1 or 1, got {axis!r}"
            )
        if not (_real(momentum) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        if not (_real(epsilon) and epsilon > 0.0):
            raise ValueError(
                f"BatchNormalization epsilon must be a positive number, got {epsilon!r}"
            )
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        set_regularizers(self, beta=beta_regularizer, gamma=gamma_regularizer)

    @property
    def default_name(self) -> str:
        return "batch_normalization"

    def build(self, input_shape, *, placement, dtype, rng):
        if len(input_shape) != 2:
            raise ValueError(
                f"BatchNormalization takes 2-D inputs (n_samples, n_features), "
                f"got shape {tuple(input_shape)}"
            )
        shape = (int(input_shape[-1]),)

        def make(initializer):
            return initializer(shape, dtype, rng=rng, backend=placement)

        if self.scale:
            self.params["gamma"] = make(self.gamma_initializer)
        if self.center:
            self.params["beta"] = make(self.beta_initializer)
        self.buffers = {
            "moving_mean": make(self.moving_mean_initializer),
            "moving_variance": make(self.moving_variance_initializer),
        }
        super().build(input_shape, placement=placement, dtype=dtype, rng=rng)

    def forward(self, x, *, training=False, logits=False):
        if training:
            return self._training_forward(x)
        # Inference: a per-feature affine map from the moving statistics,
        # computed on the parameter-sized arrays first (two ops on x, no
        # writes in place, no host reads: it traces for ONNX export).
        mean = self.buffers["moving_mean"]
        inv = 1.0 / namespace(mean).sqrt(self.buffers["moving_variance"] + self.epsilon)
        gamma, beta = self.params.get("gamma"), self.params.get("beta")
        factor = inv if gamma is None else gamma * inv
        shift = -mean * factor if beta is None else beta - mean * factor
        y = x * factor + shift

        def backward(dy: Array, need_dx: bool = True) -> Array | None:
            if beta is not None:
                self.grads["beta"] = reduce_sum(dy, axis=0)
            if gamma is not None:
                self.grads["gamma"] = reduce_sum(dy * (x - mean), axis=0) * inv
            return dy * factor if need_dx else None

        return y, backward

    def _training_forward(self, x: Array) -> tuple[Array, Any]:
        xp = namespace(x)
        n = int(x.shape[0])
        mean = xp.mean(x, axis=0)
        centered = x - mean
        var = xp.mean(centered * centered, axis=0)  # biased, as Keras
        inv = 1.0 / xp.sqrt(var + self.epsilon)
        xhat = centered * inv
        gamma, beta = self.params.get("gamma"), self.params.get("beta")
        y = xhat if gamma is None else xhat * gamma
        if beta is not None:
            y = y + beta
        keep = self.momentum
        # A new dict, not writes into the old one: what a caller (or the
        # rollback of a failed fit) holds stays as it was.
        self.buffers = {
            "moving_mean": self.buffers["moving_mean"] * keep + mean * (1.0 - keep),
            "moving_variance": self.buffers["moving_variance"] * keep + var * (1.0 - keep),
        }

        def backward(dy: Array, need_dx: bool = True) -> Array | None:
            dbeta = reduce_sum(dy, axis=0)
            dgamma = reduce_sum(dy * xhat, axis=0)
            if beta is not None:
                self.grads["beta"] = dbeta
            if gamma is not None:
                self.grads["gamma"] = dgamma
            if not need_dx:
                return None
            scale = inv if gamma is None else gamma * inv
            return (dy - dbeta / n - xhat * (dgamma / n)) * scale

        return y, backward

    def get_config(self):
        config = {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(
                self.moving_variance_initializer
            ),
        }
        extra = regularizer_config(self, "beta", "gamma")
        return {**config, **{k: v for k, v in extra.items() if v is not None}}
