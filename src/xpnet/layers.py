"""Layers: each forward returns its output and the backward that undoes it.

``y, backward = layer.forward(x, training=True)``; later
``dx = backward(dy)`` stores the parameter gradients in ``layer.grads`` and
returns the gradient w.r.t. the input. The closure keeps what the chain rule
needs (the input, the pre-activation), so layers hold no hidden caches and a
model just replays the closures in reverse.

Parameters live in ``layer.params`` (an ordered dict of arrays on the
model's device); optimizers update them there.

To save memory, a backward may overwrite the gradient array it is given
(the model always passes a fresh one), and ``layer.grads`` buffers are
reused from step to step and may be consumed by the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnet import _config
from xpnet import activations as _activations
from xpnet import functional as F
from xpnet import initializers as _initializers
from xpnet._backend import (
    Backend,
    affine,
    asarray,
    backend_of,
    host_rng,
    matmul,
    reduce_sum,
)
from xpnet._typing import Array, DType

__all__ = [
    "ELU",
    "Activation",
    "Dense",
    "Dropout",
    "Layer",
    "LeakyReLU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "from_config",
    "get",
    "serialize",
]

Backward = Callable[..., Array]


def _identity_backward(dy: Array, need_dx: bool = True) -> Array:
    return dy


class Layer(_config.Configurable):
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Set by the model (``dense``, ``dense_1``, ...) when omitted.
    input_dim : int, optional
        Number of input features; lets the model build before seeing data.
    """

    def __init__(self, *, name: str | None = None, input_dim: int | None = None) -> None:
        if input_dim is not None and (not isinstance(input_dim, int) or input_dim < 1):
            raise ValueError(f"input_dim must be a positive int, got {input_dim!r}")
        self.name = name
        self.input_dim = input_dim
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.built = False
        self.input_shape: tuple[int | None, ...] | None = None

    # -- building ----------------------------------------------------------

    def build(
        self, input_shape: tuple[int | None, ...], *, placement: Backend, dtype: DType, rng: Any
    ) -> None:
        """Create the parameters for inputs of `input_shape` ``(None, features)``."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    # -- computing ---------------------------------------------------------

    def forward(
        self, x: Array, *, training: bool = False, logits: bool = False
    ) -> tuple[Array, Backward]:
        """Return ``(y, backward)``. With ``logits=True`` an output layer
        stops before its sigmoid/softmax (the model fuses it into the loss)."""
        raise NotImplementedError

    def __call__(self, x: Array, *, training: bool = False) -> Array:
        return self.forward(x, training=training)[0]

    @property
    def output_activation(self) -> str | None:
        """Name of the activation this layer ends with, if any."""
        return None

    @property
    def default_name(self) -> str:
        """The name a model gives this layer (plus ``_1``, ``_2``, ... if taken)."""
        return type(self).__name__.lower()

    # -- bookkeeping -------------------------------------------------------

    def count_params(self) -> int:
        total = 0
        for p in self.params.values():
            n = 1
            for s in p.shape:
                n *= int(s)
            total += n
        return total

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name}
        if self.input_dim is not None:
            config["input_dim"] = self.input_dim
        return config


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
    """

    def __init__(
        self,
        units: int,
        activation: str | _activations.ActivationFunction | None = None,
        use_bias: bool = True,
        kernel_initializer: str | _initializers.Initializer = "glorot_uniform",
        bias_initializer: str | _initializers.Initializer = "zeros",
        input_dim: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        super().__init__(name=name, input_dim=input_dim)
        self.units = units
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)

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
                self.grads["bias"] = reduce_sum(dz, axis=0)
            return dz @ kernel.T if need_dx else None

        return a, backward

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }


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
        **params: Any,
    ) -> None:
        super().__init__(name=name, input_dim=input_dim)
        self.activation = _activations.get(activation, **params)

    @property
    def output_activation(self):
        return self.activation.name

    def forward(self, x, *, training=False, logits=False):
        if logits:
            return x, _identity_backward
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

    def __init__(self, *, name: str | None = None, input_dim: int | None = None, **params):
        super().__init__(self._activation, name=name, input_dim=input_dim, **params)

    def get_config(self):
        return {**Layer.get_config(self), **self.activation.get_config()}


class ReLU(_BoundActivation):
    """Rectified linear unit layer."""

    _activation = "relu"


class LeakyReLU(_BoundActivation):
    """Leaky ReLU layer: slope `alpha` for negative inputs."""

    _activation = "leaky_relu"

    def __init__(self, alpha: float = 0.01, *, name=None, input_dim=None):
        super().__init__(alpha=alpha, name=name, input_dim=input_dim)


class ELU(_BoundActivation):
    """Exponential linear unit layer."""

    _activation = "elu"

    def __init__(self, alpha: float = 1.0, *, name=None, input_dim=None):
        super().__init__(alpha=alpha, name=name, input_dim=input_dim)


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

    def __init__(self, axis: int = -1, *, name=None, input_dim=None):
        super().__init__(axis=axis, name=name, input_dim=input_dim)


class PReLU(Layer):
    """Parametric ReLU: one learned slope per feature for negative inputs.

    Parameters
    ----------
    alpha_initializer : str or Initializer
        Keras's default, zeros, starts as a plain ReLU.
    """

    def __init__(
        self,
        alpha_initializer: str | _initializers.Initializer = "zeros",
        *,
        name: str | None = None,
        input_dim: int | None = None,
    ) -> None:
        super().__init__(name=name, input_dim=input_dim)
        self.alpha_initializer = _initializers.get(alpha_initializer)

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
        return {
            **super().get_config(),
            "alpha_initializer": _initializers.serialize(self.alpha_initializer),
        }


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability `rate`
    and scale the rest by ``1 / (1 - rate)``; the identity at inference.

    Masks are drawn on the host from the layer's generator (seeded from the
    model's seed, or `seed`) and moved to the device, so a seed means the same
    masks on every backend.
    """

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        *,
        name: str | None = None,
        input_dim: int | None = None,
    ) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        super().__init__(name=name, input_dim=input_dim)
        self.rate = float(rate)
        self.seed = seed
        self._rng = host_rng(seed)

    def build(self, input_shape, *, placement, dtype, rng):
        if self.seed is None:  # draw this layer's stream from the model's
            self._rng = host_rng(int(host_rng(rng).integers(2**63)))
        super().build(input_shape, placement=placement, dtype=dtype, rng=rng)

    def forward(self, x, *, training=False, logits=False):
        if not training or self.rate == 0.0:
            return x, _identity_backward
        keep = self._rng.random(tuple(x.shape)) >= self.rate
        mask = asarray(keep * (1.0 / (1.0 - self.rate)), backend_of(x), x.dtype)

        def backward(dy: Array, need_dx: bool = True) -> Array:
            return dy * mask

        return x * mask, backward

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


_ACTIVATION_LAYERS = (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, Softmax)
_LAYERS = (Dense, Activation, PReLU, Dropout, *_ACTIVATION_LAYERS)
_REGISTRY = _config.Registry("layer", Layer, {cls.__name__: cls for cls in _LAYERS})


def get(identifier: str | dict[str, Any] | Layer) -> Layer:
    """Return a layer for a class name (any case: ``"relu"``), a config dict
    ``{"class_name": "Dense", "config": {"units": 4}}``, or a :class:`Layer`.
    A name makes the layer with its defaults: ``get("Dense")`` is an error
    that asks for a config dict."""
    return _REGISTRY.get(identifier)


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and ``get_config()`` output."""
    return _REGISTRY.from_config(class_name, config)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `layer`."""
    return _config.serialize(layer)
