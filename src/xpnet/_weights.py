"""``Weights``: the half of :class:`~xpnet.Sequential` that reads and writes
its weights (a mixin, like :class:`~xpnet._trainer.Trainer`).

Every weight is a layer's trainable parameter (``layer.params``) or a
buffer that is not trained (``layer.buffers``: BatchNormalization's moving
statistics). ``get_weights`` lists them all, per layer in Keras's order
(parameters, then buffers); the optimizer only sees the parameters
(``_parameter_keys``). Regularizers add their penalties here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from xpnet import _saving
from xpnet._backend import Backend, asarray, copy_arrays, is_host_rng, rng_restorer, to_numpy
from xpnet._typing import Array
from xpnet.layers import Layer


class Weights:
    """Weights, penalties, counts and the summary of a stack of ``layers``;
    the model provides ``layers``, ``built`` and ``_storage()`` (where new
    weights go: the placement, or the host before there is one)."""

    layers: list[Layer]
    built: bool

    def _storage(self) -> tuple[Backend, Any]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _rollback(self) -> Iterator[None]:
        """Put the whole training state back if the block raises an Exception
        (not on KeyboardInterrupt, which keeps the batches finished so far):
        the weights, the optimizer state, the random streams and the model's
        placement and history."""
        fields = ("_placement", "_dtype", "_keys", "history", "stop_training")
        saved = {key: self.__dict__[key] for key in fields if key in self.__dict__}
        restorers = [rng_restorer(self._shuffle_rng)]
        opt = self.optimizer
        slots = {} if opt is None else opt.state
        # every array copied in one go (on JAX one program call)
        copies = iter(copy_arrays(
            [a for layer in self.layers for a in (*layer.params.values(), *layer.buffers.values())]
            + [a for found in slots.values() for a in found.values()]
        ))  # fmt: skip
        layers = [_layer_state(layer, restorers, copies) for layer in self.layers]
        opt_state = None
        if opt is not None:
            slots = {key: {name: next(copies) for name in found} for key, found in slots.items()}
            opt_state = (opt.iterations, slots)
        try:
            yield
        except Exception:
            for key in fields:
                self.__dict__.pop(key, None)
            self.__dict__.update(saved)
            for restore in restorers:
                restore()
            for layer, state in zip(self.layers, layers, strict=True):
                layer.__dict__.clear()
                layer.__dict__.update(state)
            if opt_state is not None:
                opt.iterations, opt.state = opt_state
            raise

    def regularization_loss(self) -> Array | None:
        """The sum of every layer's weight penalty (a 0-d array on the
        model's device), or None when no layer has a regularizer."""
        total = None
        for layer in self.layers:
            penalty = layer.regularization_loss() if layer.regularizers else None
            if penalty is not None:
                total = penalty if total is None else total + penalty
        return total

    def _parameter_keys(self) -> list[tuple[Layer, str, str]]:
        """``(layer, name, "layer/name")`` per trainable parameter; fixed once built."""
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

    def _weight_keys(self) -> list[tuple[Layer, str, str]]:
        """Like :meth:`_parameter_keys`, for every weight (buffers too), in
        :meth:`get_weights` order."""
        return [(lay, n, f"{lay.name}/{n}") for lay in self.layers for n in lay.weight_names]

    def get_weights(self) -> list[Any]:
        """NumPy copies of every weight, in layer order (Dense: kernel, bias;
        BatchNormalization: gamma, beta, moving_mean, moving_variance)."""
        return [to_numpy(layer.weight(name)).copy() for layer, name, _ in self._weight_keys()]

    def set_weights(self, weights: Iterable[Any]) -> None:
        """Load arrays shaped like :meth:`get_weights`; checks all before changing any."""
        if not self.built:
            raise ValueError("the model is not built yet: it has no weights to set")
        weights = list(weights)
        slots = self._weight_keys()
        if len(weights) != len(slots):
            raise ValueError(f"expected {len(slots)} weight arrays, got {len(weights)}")
        hosts = [to_numpy(w) for w in weights]
        for (layer, name, key), host in zip(slots, hosts, strict=True):
            expected = tuple(layer.weight(name).shape)
            if tuple(host.shape) != expected:
                raise ValueError(f"weight {key} has shape {expected}, got {tuple(host.shape)}")
        self._move(hosts, *self._storage())

    def save_weights(self, filepath: str) -> None:
        """Write every weight (trainable or not, named ``layer/param``) to
        `filepath` atomically, as an uncompressed ``.npz`` archive that
        ``numpy.load`` also reads (no pickle)."""
        _saving.save_weights(self, filepath)

    def load_weights(self, filepath: str) -> None:
        """Load weights written by :meth:`save_weights` into this built model.

        The names, count and shapes must match this model's (a ValueError
        otherwise, as for a damaged file), and everything is checked before
        any weight changes.
        """
        _saving.load_weights(self, filepath)

    def count_params(self) -> int:
        """Number of scalars in every weight, trainable or not (as Keras)."""
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print each layer's type, output shape and parameter count."""
        if not self.built:
            raise ValueError(
                "the model is not built yet: give its input size (Input(shape=...), "
                "input_dim=...), call build(input_dim), or fit/predict on data"
            )
        print_fn(_summary_table(self))

    def _move(self, weights: list[Any], placement: Backend, dtype: Any) -> None:
        """Put host `weights` (:meth:`get_weights` order) on `placement`: all
        are moved before any is replaced, so a failed move changes nothing."""
        slots = self._weight_keys()
        moved = [asarray(w, placement, dtype, copy=True) for w in weights]
        for (layer, name, _), value in zip(slots, moved, strict=True):
            layer.replace_weight(name, value)
            layer.grads.clear()


def _summary_table(model: Any) -> str:
    """Keras's layout: each layer's name and type, output shape and weight
    count, then the total, trainable and non-trainable counts."""
    rows = [("Layer (type)", "Output Shape", "Param #")]
    shape = model.layers[0].input_shape
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        rows.append(
            (f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
        )
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
    line = "=" * sum(widths)
    where = model.backend or "host until its first data"
    lines = [f'Model: "{model.name}"  [{where}, {model.dtype}]', line]
    for i, row in enumerate(rows):
        lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        lines.append(line if i == 0 else "-" * sum(widths))
    lines[-1] = line
    total = model.count_params()
    trainable = sum(layer.count_params(trainable=True) for layer in model.layers)
    lines.append(f"Total params: {total:,}")
    lines.append(f"Trainable params: {trainable:,}")
    lines.append(f"Non-trainable params: {total - trainable:,}")
    return "\n".join(lines)


def _layer_state(layer: Layer, restorers: list, copies: Iterator[Array]) -> dict[str, Any]:
    """Everything `layer` holds, with its parameters and buffers (moving
    statistics) taken from `copies` in that order, for
    :meth:`Weights._rollback` (gradient buffers are scratch); a way back for
    each random stream joins `restorers`."""
    state = dict(layer.__dict__)
    state["params"] = {name: next(copies) for name in layer.params}
    state["buffers"] = {name: next(copies) for name in layer.buffers}
    state["grads"] = {}
    restorers.extend(rng_restorer(value) for value in state.values() if is_host_rng(value))
    return state
