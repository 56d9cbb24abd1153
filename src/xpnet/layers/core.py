"""Dense, the activation layers, PReLU and Dropout."""

from __future__ import annotations

from typing import Any

from xpnet import activations as _activations
from xpnet import functional as F
from xpnet import initializers as _initializers
from xpnet import regularizers as _regularizers
from xpnet._backend import affine, asarray, backend_of, host_rng, matmul, sum_rows
from xpnet._typing import Array
from xpnet.layers._base import (
    Layer,
    identity_backward,
    regularizer_config,
    set_regularizers,
)

Regularizer = str | dict[str, Any] | _regularizers.Regularizer | None


class Dense(Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    Keras layout: ``kernel`` has shape ``(in_features, units)``.

    Parameters
    ----------
    units : int
    activation : str, dict or ActivationFunction, optional
        Any name of :data:`xpnet.activations.ACTIVATIONS`; None is linear.
    use_bias : bool
    kernel_initializer, bias_initializer : str or Initializer
    input_dim : int, optional
    kernel_regularizer, bias_regularizer : str, dict or Regularizer, optional
        A penalty on the weight added to the loss (``"l2"``,
        ``xn.regularizers.L2(1e-4)``); see :mod:`xpnet.regularizers`.
    **kwargs
        ``name``, ``input_shape``: as for every :class:`Layer`.
    """

    def __init__(
        self,
        units: int,
        activation: str | _activations.ActivationFunction | None = None,
        use_bias: bool = True,
        kernel_initializer: str | _initializers.Initializer = "glorot_uniform",
        bias_initializer: str | _initializers.Initializer = "zeros",
        input_dim: int | None = None,
        kernel_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        super().__init__(input_dim=input_dim, **kwargs)
        self.units = units
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        set_regularizers(self, kernel=kernel_regularizer, bias=bias_regularizer)

    def build(self, input_shape, *, placement, dtype, rng):
        fan_in = int(input_shape[-1])
        self.params["kernel"] = self.kernel_initializer(
            (fan_in, self.units), dtype, rng=rng, backend=placement
        )
        if self.use_bias:
            self.params["bias"] = self.bias_initializer(
                (self.units,), dtype, rng=rng, backend=placement
            )
        super().build(input_shape, placement=placement, dtype=dtype, rng=rng)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    @property
    def kernel(self) -> Array:
        return self.params["kernel"]

    @property
    def bias(self) -> Array | None:
        return self.params.get("bias")

    @property
    def kernel_regularizer(self) -> _regularizers.Regularizer | None:
        return self.regularizers.get("kernel")

    @property
    def bias_regularizer(self) -> _regularizers.Regularizer | None:
        return self.regularizers.get("bias")

    @property
    def output_activation(self):
        return self.activation.name

    def forward(self, x, *, training=False, logits=False):
        kernel = self.params["kernel"]
        z = affine(x, kernel, self.params.get("bias"))
        act = self.activation
        skip = logits or act.name == "linear"
        # z and the gradient flowing in are ours: the activation may write
        # over them (ReLU does, and keeps z only as its output).
        a = z if skip else act.forward_(z)

        def backward(da: Array, need_dx: bool = True) -> Array | None:
            dz = da if skip else act.backward_(da, z, a)
            # Reuse last step's gradient buffer where the library allows it.
            self.grads["kernel"] = matmul(x.T, dz, out=self.grads.get("kernel"))
            if self.use_bias:
                self.grads["bias"] = sum_rows(dz)
            return dz @ kernel.T if need_dx else None

        return a, backward

    def get_config(self):
        config = {
            **super().get_config(),
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }
        # Only set penalties are written, so files without them stay as before.
        extra = regularizer_config(self, "kernel", "bias")
        return {**config, **{k: v for k, v in extra.items() if v is not None}}


class Activation(Layer):
    """Applies a named activation: ``Activation("tanh")``.

    The input is not the layer's to overwrite (the previous layer's output
    may be needed by its backward), so the forward is the plain one; the
    incoming gradient is, so the backward runs in place where it can.
    """

    def __init__(
        self,
        activation: str | dict[str, Any] | _activations.ActivationFunction,
        *,
        name: str | None = None,
        input_dim: int | None = None,
        input_shape: tuple[int] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(name=name, input_dim=input_dim, input_shape=input_shape)
        self.activation = _activations.get(activation, **params)

    @property
    def output_activation(self):
        return self.activation.name

    def forward(self, x, *, training=False, logits=False):
        if logits:
            return x, identity_backward
        act = self.activation
        y = act.forward(x)

        def backward(dy: Array, need_dx: bool = True) -> Array:
            return act.backward_(dy, x, y)

        return y, backward

    def get_config(self):
        return {**super().get_config(), "activation": _activations.serialize(self.activation)}


class _BoundActivation(Activation):
    """An Activation layer fixed to one activation, Keras-style (``ReLU()``)."""

    _activation: str

    @property
    def default_name(self) -> str:
        return self._activation

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self._activation, **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), **self.activation.get_config()}


class ReLU(_BoundActivation):
    """Rectified linear unit layer."""

    _activation = "relu"


class LeakyReLU(_BoundActivation):
    """Leaky ReLU layer: slope `alpha` for negative inputs."""

    _activation = "leaky_relu"

    def __init__(self, alpha: float = 0.01, **kwargs: Any) -> None:
        super().__init__(alpha=alpha, **kwargs)


class ELU(_BoundActivation):
    """Exponential linear unit layer."""

    _activation = "elu"

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(alpha=alpha, **kwargs)


class Sigmoid(_BoundActivation):
    """Logistic sigmoid layer."""

    _activation = "sigmoid"


class Tanh(_BoundActivation):
    """Hyperbolic tangent layer."""

    _activation = "tanh"


class Softplus(_BoundActivation):
    """Softplus layer."""

    _activation = "softplus"


class Softmax(_BoundActivation):
    """Softmax layer over `axis`."""

    _activation = "softmax"

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(axis=axis, **kwargs)


class PReLU(Layer):
    """Parametric ReLU: one learned slope per feature for negative inputs.

    Parameters
    ----------
    alpha_initializer : str or Initializer
        Keras's default, zeros, starts as a plain ReLU.
    alpha_regularizer : str, dict or Regularizer, optional
    """

    def __init__(
        self,
        alpha_initializer: str | _initializers.Initializer = "zeros",
        alpha_regularizer: Regularizer = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha_initializer = _initializers.get(alpha_initializer)
        set_regularizers(self, alpha=alpha_regularizer)

    def build(self, input_shape, *, placement, dtype, rng):
        shape = (int(input_shape[-1]),)
        self.params["alpha"] = self.alpha_initializer(shape, dtype, rng=rng, backend=placement)
        super().build(input_shape, placement=placement, dtype=dtype, rng=rng)

    def forward(self, x, *, training=False, logits=False):
        alpha = self.params["alpha"]
        y = F.prelu(x, alpha)

        def backward(dy: Array, need_dx: bool = True) -> Array:
            dx, self.grads["alpha"] = F.prelu_backward(dy, x, y, alpha)
            return dx

        return y, backward

    def get_config(self):
        config = {
            **super().get_config(),
            "alpha_initializer": _initializers.serialize(self.alpha_initializer),
        }
        extra = regularizer_config(self, "alpha")
        return {**config, **{k: v for k, v in extra.items() if v is not None}}


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability `rate`
    and scale the rest by ``1 / (1 - rate)``; the identity at inference.

    Masks are drawn on the host from the layer's generator (seeded from the
    model's seed, or `seed`) and moved to the device, so a seed means the same
    masks on every backend.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self._rng = host_rng(seed)

    @property
    def draws_on_host(self) -> bool:
        return self.rate > 0.0

    def build(self, input_shape, *, placement, dtype, rng):
        if self.seed is None:  # draw this layer's stream from the model's
            self._rng = host_rng(int(host_rng(rng).integers(2**63)))
        super().build(input_shape, placement=placement, dtype=dtype, rng=rng)

    def forward(self, x, *, training=False, logits=False):
        if not training or self.rate == 0.0:
            return x, identity_backward
        keep = self._rng.random(tuple(x.shape)) >= self.rate
        mask = asarray(keep * (1.0 / (1.0 - self.rate)), backend_of(x), x.dtype)

        def backward(dy: Array, need_dx: bool = True) -> Array:
            return dy * mask

        return x * mask, backward

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
