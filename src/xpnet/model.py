"""``Sequential``: a stack of layers with Keras's build / compile / fit API.

Training one batch is the chain rule made literal: run each layer's forward,
keeping the backward closures; ask the loss for its gradient; replay the
closures in reverse; hand the parameter gradients to the optimizer.

A sigmoid or softmax output followed by binary / categorical cross-entropy
with ``from_logits=False`` is *fused*: in training the output layer stops at
the logits and the loss is computed from them (softplus / log-sum-exp form),
so its gradient is the exact ``(p - y) / N`` and a saturated output still
learns. ``predict`` applies the activation as usual.

A model whose input size is known (``Dense(4, input_dim=3)``,
``input_shape=(3,)`` or a leading ``Input(shape=(3,))``) builds at
construction. Without a backend chosen (no ``backend=``, no default), its
weights are drawn and kept on the host, and move once to the library of the
first data it sees, so the seed gives the same weights wherever it trains.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

from xpnet import _saving
from xpnet._backend import (
    Backend,
    backend_of,
    default_backend,
    float_dtype,
    get_backend,
    host_rng,
    is_host_data,
    isdtype,
    namespace,
)
from xpnet._backend.devices import list_devices
from xpnet._plan import StepPlan
from xpnet._trainer import Trainer
from xpnet._training import Step
from xpnet._typing import Array
from xpnet._validation import check_choice
from xpnet._weights import Weights
from xpnet.layers import Input, Layer
from xpnet.layers import get as get_layer
from xpnet.layers import serialize as serialize_layer

__all__ = ["Sequential", "Step"]


class Sequential(Trainer, Weights):
    """A linear stack of layers.

    Parameters
    ----------
    layers : iterable of Layer, optional
        May start with :class:`~xpnet.layers.Input`; when the input size is
        known (``Input``, or ``input_dim`` / ``input_shape`` on the first
        layer) the model builds at construction.
    backend : str, optional
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"`` or
        ``"array_api_strict"``. When None: the default set by
        :func:`xpnet.set_backend` / ``XPNET_BACKEND`` if any, else the library
        of the first data the model sees (CuPy arrays in: trains on the GPU).
    device : optional
        Device on that backend (``"cuda:1"``, ``"device1"``, ...).
    dtype : {"float32", "float64", "float16", "bfloat16"}
        Parameter and computation dtype; inputs are cast to it.
    seed : int
        Seeds the initial weights, the shuffling and dropout: one seed gives
        the same initial weights on every backend.

    Examples
    --------
    >>> import numpy as np
    >>> import xpnet as xn
    >>> model = xn.Sequential([xn.layers.Dense(4, activation="tanh"), xn.layers.Dense(1)], seed=0)
    >>> model.compile(loss="mse", optimizer=xn.optimizers.SGD(0.1))
    >>> x = np.linspace(-1, 1, 32).reshape(-1, 1)
    >>> history = model.fit(x, x**2, epochs=3, batch_size=8, verbose=0)
    >>> len(history.history["loss"])
    3
    >>> xn.Sequential([xn.layers.Input(shape=(3,)), xn.layers.Dense(2)]).count_params()
    8
    """

    def __init__(
        self,
        layers: Iterable[Layer] | None = None,
        *,
        backend: str | None = None,
        device: Any = None,
        dtype: str = "float32",
        seed: int = 0,
        name: str = "sequential",
    ) -> None:
        check_choice("dtype", dtype, ("float32", "float64", "float16", "bfloat16"))
        if backend is not None:
            get_backend(backend, device)  # fail early on unknown names and devices
        self.layers: list[Layer] = []
        self.name = name
        self.dtype = dtype
        self.seed = seed
        self._backend_arg = backend
        self._device_arg = device
        self._placement: Backend | None = None
        self._input_dim: int | None = None  # from a leading Input
        self.loss = None
        self.optimizer = None
        self._metric_names: list[str] = []
        self.stop_training = False
        self.history = None
        self._shuffle_rng = host_rng([seed, 1])
        for layer in layers or ():
            self.add(layer)

    # ------------------------------------------------------------ structure

    def add(self, layer: Layer) -> None:
        """Append `layer`; it gets a unique name if it has none.

        An :class:`~xpnet.layers.Input` may only come first. Once the input
        size is known the model is built, and each added layer is built at
        once (existing weights are kept).
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if isinstance(layer, Input):
            if self.layers or self._input_dim is not None:
                raise ValueError("an Input must come first in a Sequential, and only once")
            self._input_dim = layer.input_dim
            return
        first = not self.layers
        if first and layer.input_dim not in (None, self._input_dim or layer.input_dim):
            raise ValueError(
                f"layer {layer.name or layer.default_name!r} has input_dim={layer.input_dim} "
                f"but the model's Input has shape ({self._input_dim},)"
            )
        was_built = self.built
        if layer.name is None:
            base = layer.default_name
            taken = {existing.name for existing in self.layers}
            name, i = base, 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)
        self._forget_plans()
        if was_built:
            self._build_layers(self.layers[0].input_shape, self.__dict__.get("_build_rng"))
        elif first and self._declared_input_dim() is not None:
            self.build()

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def placement(self) -> Backend | None:
        """Where the parameters live (library and device); None until the
        model has a backend (its argument, the default, or its first data)."""
        return self._placement

    @property
    def backend(self) -> str | None:
        return None if self._placement is None else self._placement.name

    @property
    def device(self) -> Any:
        return None if self._placement is None else self._placement.device

    def _place(self, data: Any = None) -> Backend:
        """Explicit argument, then the global default, then the data's library.

        Weights built on the host before the placement was known move there now.
        """
        if self._placement is None:
            if self._backend_arg is not None:
                found = get_backend(self._backend_arg, self._device_arg)
            elif default_backend() is not None:
                found = get_backend(None, self._device_arg)
            elif data is not None and not is_host_data(data):
                found = backend_of(data)
                if self._device_arg is not None:
                    found = get_backend(found.name, self._device_arg)
            else:
                found = get_backend("numpy", self._device_arg)
            dtype = float_dtype(found.xp, self.dtype)
            self._move(self.get_weights(), found, dtype)
            self._dtype, self._placement = dtype, found
        return self._placement

    def _storage(self) -> tuple[Backend, Any]:
        """Where weights are made: the placement, or the host until there is one."""
        if self._placement is not None:
            return self._placement, self._dtype
        host = get_backend("numpy")
        # NumPy has no bfloat16: hold float32 (exactly what the draw is cast
        # through on its way to a bfloat16 device anyway).
        return host, float_dtype(host.xp, "float32" if self.dtype == "bfloat16" else self.dtype)

    def _declared_input_dim(self) -> int | None:
        if self._input_dim is not None:
            return self._input_dim
        return self.layers[0].input_dim if self.layers else None

    def build(self, input_dim: int | None = None) -> Sequential:
        """Create every layer's weights for inputs with `input_dim` features
        (or the size given by an ``Input`` / the first layer's ``input_dim``).

        With a backend chosen (``backend=`` or a default) the weights are made
        there; otherwise on the host, to move to the first data's library.
        Building a built model only checks `input_dim`.
        """
        if not self.layers:
            raise ValueError("the model has no layers; add some first")
        declared = self._declared_input_dim()
        if input_dim is None:
            input_dim = declared if not self.built else self.input_dim
        if input_dim is None:
            raise ValueError(
                "cannot build without the number of input features: pass "
                "build(input_dim), start with Input(shape=(n,)) or give the first "
                "layer input_dim=..."
            )
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(f"input_dim must be a positive int, got {input_dim!r}")
        known = self.input_dim if self.built else declared
        if known is not None and input_dim != known:
            raise ValueError(f"the model takes inputs with {known} features, not {input_dim}")
        if not self.built:
            if self._backend_arg is not None or default_backend() is not None:
                self._place()
            self._build_rng = host_rng(self.seed)
            self._build_layers((None, input_dim), self._build_rng)
        return self

    def _build_layers(self, shape: tuple[int | None, ...], rng: Any) -> None:
        """Build the unbuilt layers, drawing from `rng` in layer order."""
        placement, dtype = self._storage()
        rng = host_rng(self.seed) if rng is None else rng
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, placement=placement, dtype=dtype, rng=rng)
            shape = layer.compute_output_shape(shape)

    @property
    def input_dim(self) -> int | None:
        return None if not self.built else int(self.layers[0].input_shape[-1])

    @property
    def output_dim(self) -> int:
        shape = self.layers[0].input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return int(shape[-1])

    # ------------------------------------------------------------ the step

    def forward(
        self, x: Array, *, training: bool = False, logits: bool = False
    ) -> tuple[Array, Any]:
        """Run every layer on `x` (on the model's device) and return
        ``(output, backward)``.

        ``backward(grad, need_dx=False)`` replays the layers' backward
        closures in reverse: each stores its parameter gradients in
        ``layer.grads``; the gradient w.r.t. `x` is returned when `need_dx`.
        With ``logits=True`` the output layer stops before its sigmoid /
        softmax (the fused path). A backward may overwrite `grad`. With
        ``training=True``, BatchNormalization layers update their moving
        statistics.
        """
        out, backs = x, []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out, back = layer.forward(out, training=training, logits=logits and i == last)
            backs.append(back)

        def backward(grad: Array, need_dx: bool = False) -> Array | None:
            for i in range(last, -1, -1):
                grad = backs[i](grad, need_dx=need_dx or i > 0)
            return grad if need_dx else None

        return out, backward

    def compute_gradients(
        self, x: Array, y: Array, sample_weight: Array | None = None, *, training: bool = True
    ) -> Step:
        """The batch loss (with the regularization penalty) and the gradient
        of every parameter, for arrays already on the model's device (as
        ``fit`` prepares them; raw data goes through :meth:`train_on_batch`).
        No parameter is updated (in training, BatchNormalization's moving
        statistics are, as in Keras). The gradient arrays are the model's
        buffers: the next step writes over them (copy what you keep)."""
        return self._step_plan(y, sample_weight).gradients(x, y, sample_weight, training)

    def train_step(self, x: Array, y: Array, sample_weight: Array | None = None) -> Step:
        """One optimizer step on a prepared batch: :meth:`compute_gradients`,
        then the update. ``fit`` and :meth:`train_on_batch` call this; override
        it to change how a batch trains. The returned gradients may have been
        consumed by the update (overwritten in place)."""
        plan, communicator = self._step_plan(y, sample_weight), self.__dict__.get("_communicator")
        if type(self).compute_gradients is not Sequential.compute_gradients:  # a subclass's
            return plan.update(self.compute_gradients(x, y, sample_weight), communicator)
        return plan.train(x, y, sample_weight, communicator)

    # fit plans and compiles these, not an override of them
    _planned: ClassVar[dict[str, Any]] = {
        "train_step": train_step,
        "compute_gradients": compute_gradients,
        "forward": forward,
    }

    def _step_plan(self, y: Array, sample_weight: Array | None) -> StepPlan:
        """The plan for this model's step (made once per configuration)."""
        plans = self.__dict__.setdefault("_plans", {})
        key = (sample_weight is None, type(y), y.dtype)  # the type first: no dtype
        plan = plans.get(key)  # comparisons across libraries
        if plan is None or not plan.fits(self):
            own = type(self).forward is Sequential.forward  # else the plan calls the override
            plan = plans[key] = StepPlan(
                self, self._parameter_keys(), sample_weight is not None, _integral(y), own
            )
        return plan

    # ------------------------------------------------------------ weights

    def to(self, backend: str, device: Any = None) -> Sequential:
        """Move weights and optimizer state to `backend` / `device`
        (through the host, explicitly) and train there from now on."""
        new = get_backend(backend, device)
        dtype = float_dtype(new.xp, self.dtype)
        self._move(self.get_weights(), new, dtype)
        self._forget_plans()
        if self.optimizer is not None:
            self.optimizer.set_state(self.optimizer.get_state(), new, self.dtype)
        self._placement, self._dtype = new, dtype
        self._backend_arg, self._device_arg = new.name, device
        return self

    # ------------------------------------------------------------ reporting

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "input_dim": self.input_dim if self.built else self._declared_input_dim(),
            "layers": [serialize_layer(layer) for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """A new, untrained model from :meth:`get_config` output (built at
        once when the config knows the input size)."""
        dim = config.get("input_dim")
        stack = [get_layer(item) for item in config["layers"]]
        return cls(
            [Input(shape=(dim,)), *stack] if dim is not None else stack,
            dtype=config.get("dtype", "float32"),
            seed=config.get("seed", 0),
            name=config.get("name", "sequential"),
        )

    def save(self, path: str) -> None:
        """Write the model to `path` atomically (JSON config + raw arrays, no pickle)."""
        _saving.save_model(self, path)

    def __getstate__(self) -> dict[str, Any]:
        # Namespaces (modules) and device objects do not pickle: keep the
        # backend by name, the arrays as NumPy, and rebuild on unpickling.
        state = self.__dict__.copy()
        for key in ("_keys", "_plans", "_compiled", "_evaluation", "_gate", "_communicator"):
            state.pop(key, None)  # refer to the live layers; rebuilt on demand
        if self._placement is not None:
            token = _device_token(self._placement)
            state["_placement"] = (self._placement.name, token)
            if self._device_arg is not None:  # device objects may not pickle (JAX's)
                state["_device_arg"] = token
            state.pop("_dtype", None)
            state["_host_weights"] = self.get_weights()
            state["layers"] = [_host_layer(layer) for layer in self.layers]
            if self.optimizer is not None:
                state["_host_optimizer"] = self.optimizer.get_state()
                opt = copy.copy(self.optimizer)
                opt.state = {}
                state["optimizer"] = opt
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_host_weights", None)
        opt_state = state.pop("_host_optimizer", None)
        self.__dict__.update(state)
        if isinstance(self._placement, tuple):
            name, device = self._placement
            try:
                found = get_backend(name, device)
            except (ImportError, RuntimeError, ValueError):  # not available here
                found = get_backend("numpy")
            self._placement, self._dtype = found, float_dtype(found.xp, self.dtype)
            self._move(weights, found, self._dtype)
            if opt_state is not None:
                self.optimizer.set_state(opt_state, found, self.dtype)

    def __repr__(self) -> str:
        where = self.backend or ("host" if self.built else "unbuilt")
        return f"Sequential({len(self.layers)} layers, {where}, {self.dtype})"


def _integral(a: Array) -> bool:
    return isdtype(namespace(a), a.dtype, "integral")


def _device_token(placement: Backend) -> str | None:
    """The name :func:`get_backend` resolves to `placement`'s device (device
    objects do not all pickle); None, the library's default, if none does."""
    for token in list_devices(placement.name):
        if get_backend(placement.name, token).device == placement.device:
            return token
    return None


def _host_layer(layer: Layer) -> Layer:
    """A shallow copy of `layer` without device arrays (for pickling)."""
    clone = copy.copy(layer)
    clone.params = dict.fromkeys(layer.params)
    clone.buffers = dict.fromkeys(layer.buffers)
    clone.grads = {}
    return clone
