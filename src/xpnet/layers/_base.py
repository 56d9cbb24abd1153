"""The base :class:`Layer` and :class:`Input`, which says the model's input size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnet import _config
from xpnet import regularizers as _regularizers
from xpnet._backend import Backend
from xpnet._typing import Array, DType

Backward = Callable[..., Array]
Shape = tuple[int | None, ...]


def identity_backward(dy: Array, need_dx: bool = True) -> Array:
    return dy


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def features_of_shape(what: str, shape: Any) -> int:
    """The feature count of `shape`, a 1-tuple of a positive int such as ``(3,)``.

    xpnet's layers take 2-D inputs ``(n_samples, n_features)``, so a shape
    (without the batch axis, as in Keras) names exactly one size.
    """
    if not (isinstance(shape, tuple | list) and len(shape) == 1 and _positive_int(shape[0])):
        raise ValueError(
            f"{what} must be a 1-tuple of a positive int such as (3,): xpnet layers "
            f"take 2-D inputs (n_samples, n_features); got {shape!r}"
        )
    return int(shape[0])


def _input_features(input_dim: Any, input_shape: Any) -> int | None:
    if input_dim is not None and not _positive_int(input_dim):
        raise ValueError(f"input_dim must be a positive int, got {input_dim!r}")
    if input_shape is None:
        return input_dim
    features = features_of_shape("input_shape", input_shape)
    if input_dim is not None and input_dim != features:
        raise ValueError(
            f"input_dim={input_dim} and input_shape={tuple(input_shape)!r} disagree; give one"
        )
    return features


class Layer(_config.Configurable):
    """Base class of all layers.

    Trainable parameters live in ``params``; the optimizer updates them from
    ``grads``. State that is not trained (BatchNormalization's moving
    statistics) lives in ``buffers``, whose entries are replaced (never
    written in place: JAX arrays are immutable). ``regularizers`` maps a
    parameter name to the :class:`~xpnet.regularizers.Regularizer` whose
    penalty joins the loss.

    Parameters
    ----------
    name : str, optional
        Set by the model (``dense``, ``dense_1``, ...) when omitted.
    input_dim : int, optional
        Number of input features; on the first layer it lets the model
        build at construction.
    input_shape : tuple of one int, optional
        Keras's spelling of the same: ``input_shape=(3,)`` is ``input_dim=3``.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        input_dim: int | None = None,
        input_shape: tuple[int] | None = None,
    ) -> None:
        self.input_dim = _input_features(input_dim, input_shape)
        self.name = name
        self.params: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.regularizers: dict[str, _regularizers.Regularizer] = {}
        self.built = False
        self.input_shape: Shape | None = None

    #: Whether training draws from a host generator on each call (Dropout's
    #: masks): such a layer cannot be traced into a compiled step.
    draws_on_host: bool = False

    # -- building ----------------------------------------------------------

    def build(self, input_shape: Shape, *, placement: Backend, dtype: DType, rng: Any) -> None:
        """Create the parameters for inputs of `input_shape` ``(None, features)``."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
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

    # -- weights and penalties ---------------------------------------------

    @property
    def weight_names(self) -> tuple[str, ...]:
        """Names of every weight, Keras's order: the trainable ``params``,
        then the ``buffers``."""
        return (*self.params, *self.buffers)

    def weight(self, name: str) -> Array:
        """The weight called `name`, from ``params`` or ``buffers``."""
        return self.params[name] if name in self.params else self.buffers[name]

    def replace_weight(self, name: str, value: Array) -> None:
        """Put `value` in place of weight `name` (a buffer: in a new dict)."""
        if name in self.params:
            self.params[name] = value
        else:
            self.buffers = {**self.buffers, name: value}

    def count_params(self, trainable: bool | None = None) -> int:
        """Number of scalars in the weights: all of them (as Keras counts),
        or only the trainable (True) or non-trainable (False) ones."""
        stores = {None: (self.params, self.buffers), True: (self.params,), False: (self.buffers,)}
        total = 0
        for store in stores[trainable]:
            for p in store.values():
                n = 1
                for s in p.shape:
                    n *= int(s)
                total += n
        return total

    def regularization_loss(self) -> Array | None:
        """The sum of this layer's penalties (a 0-d array), or None without any."""
        total = None
        for name, regularizer in self.regularizers.items():
            if name in self.params:
                penalty = regularizer(self.params[name])
                total = penalty if total is None else total + penalty
        return total

    def add_regularization_gradients(self) -> None:
        """Add each penalty's gradient to ``grads`` (after the backward pass)."""
        for name, regularizer in self.regularizers.items():
            if name in self.params:
                self.grads[name] = regularizer.add_gradient(self.grads[name], self.params[name])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name}
        if self.input_dim is not None:
            config["input_dim"] = self.input_dim
        return config


def regularizer_config(layer: Layer, *names: str) -> dict[str, Any]:
    """``{"<name>_regularizer": serialized or None}`` for each parameter name."""
    return {
        f"{name}_regularizer": _regularizers.serialize(layer.regularizers.get(name))
        for name in names
    }


def set_regularizers(layer: Layer, **by_param: Any) -> None:
    """Resolve each ``param=identifier`` (None: no penalty) into ``layer.regularizers``."""
    for name, identifier in by_param.items():
        regularizer = _regularizers.get(identifier)
        if regularizer is not None:
            layer.regularizers[name] = regularizer


class Input(Layer):
    """The shape of one sample, Keras's ``keras.Input(shape=(3,))``.

    As the first entry of a :class:`~xpnet.Sequential` it tells the model its
    input size, so the model builds at construction. It is not a layer of
    the model (not in ``model.layers``); the size is kept in the model's
    config and files.

    Parameters
    ----------
    shape : tuple of one positive int
        ``(n_features,)``; xpnet's layers take 2-D inputs.
    """

    def __init__(self, shape: tuple[int], *, name: str | None = None) -> None:
        features = features_of_shape("Input shape", shape)
        super().__init__(name=name, input_dim=features)
        self.shape = (features,)

    def forward(self, x, *, training=False, logits=False):
        return x, identity_backward

    def get_config(self):
        return {"shape": list(self.shape), "name": self.name}
