"""``Sequential``: a stack of layers with Keras's build / compile / fit API.

Training one batch is the chain rule made literal: run each layer's forward,
keeping the backward closures; ask the loss for its gradient; replay the
closures in reverse; hand the parameter gradients to the optimizer.

A sigmoid or softmax output followed by binary / categorical cross-entropy
with ``from_logits=False`` is *fused*: in training the output layer stops at
the logits and the loss is computed from them (softplus / log-sum-exp form),
so its gradient is the exact ``(p - y) / N`` and a saturated output still
learns. ``predict`` applies the activation as usual.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from xpnet import _saving
from xpnet._backend import (
    Backend,
    asarray,
    backend_of,
    default_backend,
    float_dtype,
    get_backend,
    host_rng,
    is_host_data,
    to_numpy,
)
from xpnet._trainer import Trainer
from xpnet._training import Step
from xpnet._typing import Array
from xpnet._validation import check_choice
from xpnet.layers import Layer
from xpnet.layers import serialize as serialize_layer

__all__ = ["Sequential", "Step"]


class Sequential(Trainer):
    """A linear stack of layers.

    Parameters
    ----------
    layers : iterable of Layer, optional
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
        """Append `layer`; it gets a unique name if it has none."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        if layer.name is None:
            base = layer.default_name
            taken = {existing.name for existing in self.layers}
            name, i = base, 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def placement(self) -> Backend | None:
        """Where the parameters live (library and device); None until the
        model is built or has seen data."""
        return self._placement

    @property
    def backend(self) -> str | None:
        return None if self._placement is None else self._placement.name

    @property
    def device(self) -> Any:
        return None if self._placement is None else self._placement.device

    def _place(self, data: Any = None) -> Backend:
        """Explicit argument, then the global default, then the data's library."""
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
            self._dtype = float_dtype(found.xp, self.dtype)
            self._placement = found
        return self._placement

    def build(self, input_dim: int | None = None) -> Sequential:
        """Create every layer's parameters for inputs with `input_dim` features
        (or the first layer's ``input_dim``)."""
        if not self.layers:
            raise ValueError("the model has no layers; add some first")
        if input_dim is None:
            input_dim = self.layers[0].input_dim
        if input_dim is None:
            raise ValueError(
                "cannot build without the number of input features: pass "
                "build(input_dim) or give the first layer input_dim=..."
            )
        placement = self._place()
        rng = host_rng(self.seed)
        shape: tuple[int | None, ...] = (None, int(input_dim))
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, placement=placement, dtype=self._dtype, rng=rng)
            shape = layer.compute_output_shape(shape)
        return self

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
        softmax (the fused path). A backward may overwrite `grad`.
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
        """The batch loss and the gradient of every parameter, for arrays
        already on the model's device (as ``fit`` prepares them; raw data
        goes through :meth:`train_on_batch`). Nothing is updated."""
        fused = self.fused
        out, backward = self.forward(x, training=training, logits=fused)
        loss, grad = self.loss.compute(y, out, sample_weight, logits=fused)
        backward(grad)
        grads = {key: layer.grads[name] for layer, name, key in self._parameter_keys()}
        return Step(loss, out, grads)

    def train_step(self, x: Array, y: Array, sample_weight: Array | None = None) -> Step:
        """One optimizer step on a prepared batch: :meth:`compute_gradients`,
        then the update. ``fit`` and :meth:`train_on_batch` call this; override
        it to change how a batch trains. The returned gradients may have been
        consumed by the update (overwritten in place)."""
        step = self.compute_gradients(x, y, sample_weight)
        slots = self._parameter_keys()
        new = self.optimizer.apply(
            [(key, layer.params[name], step.gradients[key]) for layer, name, key in slots],
            consume_gradients=True,
        )
        for (layer, name, _), value in zip(slots, new, strict=True):
            layer.params[name] = value
        return step

    # ------------------------------------------------------------ weights

    def _parameter_keys(self) -> list[tuple[Layer, str, str]]:
        """``(layer, name, "layer/name")`` per parameter; fixed once built."""
        keys = self.__dict__.get("_keys")
        if keys is None:
            keys = [
                (layer, name, f"{layer.name}/{name}")
                for layer in self.layers
                for name in layer.params
            ]
            if self.built:
                self._keys = keys
        return keys

    def get_weights(self) -> list[Any]:
        """NumPy copies of every parameter, in layer order (Dense: kernel, bias)."""
        return [to_numpy(layer.params[name]).copy() for layer, name, _ in self._parameter_keys()]

    def set_weights(self, weights: Iterable[Any]) -> None:
        """Load arrays shaped like :meth:`get_weights`; checks all before changing any."""
        weights = list(weights)
        slots = self._parameter_keys()
        if len(weights) != len(slots):
            raise ValueError(f"expected {len(slots)} weight arrays, got {len(weights)}")
        moved = []
        for (layer, name, key), w in zip(slots, weights, strict=True):
            host = to_numpy(w)
            expected = tuple(layer.params[name].shape)
            if tuple(host.shape) != expected:
                raise ValueError(f"weight {key} has shape {expected}, got {tuple(host.shape)}")
            moved.append(asarray(host, self._placement, self._dtype, copy=True))
        for (layer, name, _), value in zip(slots, moved, strict=True):
            layer.params[name] = value

    def to(self, backend: str, device: Any = None) -> Sequential:
        """Move parameters and optimizer state to `backend` / `device`
        (through the host, explicitly) and train there from now on."""
        new = get_backend(backend, device)
        dtype = float_dtype(new.xp, self.dtype)
        for layer, name, _ in self._parameter_keys():
            layer.params[name] = asarray(to_numpy(layer.params[name]), new, dtype, copy=True)
            layer.grads.clear()
        if self.optimizer is not None:
            self.optimizer.set_state(self.optimizer.get_state(), new, self.dtype)
        self._placement, self._dtype = new, dtype
        self._backend_arg, self._device_arg = new.name, device
        return self

    # ------------------------------------------------------------ reporting

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print each layer's type, output shape and parameter count."""
        if not self.built:
            raise ValueError(
                "the model is not built yet: call build(input_dim), or fit/predict on data"
            )
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = self.layers[0].input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
            )
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "=" * sum(widths)
        lines = [f'Model: "{self.name}"  [{self.backend}, {self.dtype}]', line]
        for i, row in enumerate(rows):
            lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            lines.append(line if i == 0 else "-" * sum(widths))
        lines[-1] = line
        lines.append(f"Total params: {self.count_params():,}")
        print_fn("\n".join(lines))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "input_dim": self.input_dim,
            "layers": [serialize_layer(layer) for layer in self.layers],
        }

    def save(self, path: str) -> None:
        """Write the model to `path` atomically (JSON config + raw arrays, no pickle)."""
        _saving.save_model(self, path)

    def __getstate__(self) -> dict[str, Any]:
        # Namespaces (modules) and device objects do not pickle: keep the
        # backend by name, the arrays as NumPy, and rebuild on unpickling.
        state = self.__dict__.copy()
        state.pop("_keys", None)  # refers to the live layers; rebuilt on demand
        if self._placement is not None:
            state["_placement"] = (self._placement.name, str(self._placement.device))
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
                found = get_backend(name, None if name == "numpy" else device)
            except (ImportError, RuntimeError, ValueError):  # not available here
                found = get_backend("numpy")
            self._placement, self._dtype = found, float_dtype(found.xp, self.dtype)
            for (layer, pname, _), w in zip(self._parameter_keys(), weights, strict=True):
                layer.params[pname] = asarray(w, found, self._dtype, copy=True)
            if opt_state is not None:
                self.optimizer.set_state(opt_state, found, self.dtype)

    def __repr__(self) -> str:
        where = "unbuilt" if self._placement is None else self.backend
        return f"Sequential({len(self.layers)} layers, {where}, {self.dtype})"


def _host_layer(layer: Layer) -> Layer:
    """A shallow copy of `layer` without device arrays (for pickling)."""
    clone = copy.copy(layer)
    clone.params = dict.fromkeys(layer.params)
    clone.grads = {}
    return clone
