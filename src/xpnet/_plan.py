"""Step plans: a model's training step, resolved once and then reused.

A step does the same things every batch: run each layer forward, take the
loss and its gradient, run the layers backward, add the penalties, update
each parameter. What those things *are* (which loss kernel, which layers
carry regularizers, the parameter keys, whether the output is fused) only
changes when the model does, so :class:`StepPlan` decides it once per
model configuration, sample weights or not and kind of targets; the batch
loop then only does arithmetic. The arrays themselves are looked up each
step (``layer.params``), since ``set_weights``, a rollback or ``to()`` may
replace them.

On NumPy a stack of plain Dense layers runs as one flat loop
(``xpnet._backend.numpy_step``); on a library with a step compiler (JAX)
``xpnet._compiled`` turns the plan into one compiled program.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from xpnet import activations as _activations
from xpnet import losses as _losses
from xpnet._backend import copy_array, dense_chain
from xpnet._training import Data, Step, Totals
from xpnet._typing import Array


class StepPlan:
    """The resolved step of `model` for batches with (`weighted`) or
    without sample weights and with integer `labels` or not."""

    def __init__(
        self, model: Any, keys: list, weighted: bool, labels: bool, own_forward: bool = True
    ) -> None:
        self.loss, self.optimizer = model.loss, model.optimizer
        self.layers = list(model.layers)
        self.fused = model.fused
        self.forward = None if own_forward else model.forward  # a subclass's forward
        if type(model.loss).compute is _losses.Loss.compute:
            self.kernel = model.loss.training_kernel(self.fused, weighted, labels)
        else:  # a loss that overrides compute is called as it asks

            def compute(y, out, sample_weight, loss=model.loss, fused=self.fused):
                value, grad = loss.compute(y, out, sample_weight, logits=fused)
                return value, copy_array(grad)  # the step writes over it: ours, not the loss's

            self.kernel = compute
        self.regularized = [layer for layer in self.layers if layer.regularizers]
        self.keys = list(keys)  # (layer, name, "layer/name") per parameter
        # A stack of plain Dense layers may run as the library's flat loop
        self.chain = None
        if self.forward is None and not self.regularized:
            self.chain = _chain(self.layers, self.fused, self.kernel)

    def fits(self, model: Any) -> bool:
        """Whether `model` still has the loss, optimizer and layers planned for."""
        return (
            model.loss is self.loss
            and model.optimizer is self.optimizer
            and model.layers == self.layers  # the same layer objects
        )

    def gradients(self, x: Array, y: Array, sample_weight: Array | None, training=True) -> Step:
        """:meth:`Sequential.compute_gradients`, planned."""
        layers, last, fused = self.layers, len(self.layers) - 1, self.fused
        if self.chain is not None and self.chain.takes(x):
            loss, out = self.chain.run(x, y, sample_weight)
            return Step(loss, out, self._gradients())
        if self.forward is not None:
            out, backward = self.forward(x, training=training, logits=fused)
            loss, grad = self.kernel(y, out, sample_weight)
            backward(grad)
        else:
            out, backs = x, []
            for i, layer in enumerate(layers):
                out, back = layer.forward(out, training=training, logits=fused and i == last)
                backs.append(back)
            loss, grad = self.kernel(y, out, sample_weight)
            for i in range(last, -1, -1):
                grad = backs[i](grad, need_dx=i > 0)
        for layer in self.regularized:
            penalty = layer.regularization_loss()
            if penalty is not None:
                loss = loss + penalty
                layer.add_regularization_gradients()
        return Step(loss, out, self._gradients())

    def _gradients(self) -> dict[str, Array]:
        return {key: layer.grads[name] for layer, name, key in self.keys}

    def train(
        self, x: Array, y: Array, sample_weight: Array | None, communicator: Any = None
    ) -> Step:
        """:meth:`Sequential.train_step`, planned."""
        if communicator is None and (done := self._descend(x, y, sample_weight)) is not None:
            return Step(*done, self._gradients())
        return self.update(self.gradients(x, y, sample_weight), communicator)

    def fit_batch(self, x: Array, y: Array, sample_weight: Array | None) -> tuple[Array, Array]:
        """:meth:`train` for ``fit``'s loop: ``(loss, output)``, no :class:`Step`."""
        done = self._descend(x, y, sample_weight)
        if done is None:
            step = self.update(self.gradients(x, y, sample_weight))
            return step.loss, step.output
        return done

    def _descend(
        self, x: Array, y: Array, sample_weight: Array | None
    ) -> tuple[Array, Array] | None:
        """The library's flat step for plain gradient descent, with ``-lr``
        folded into the gradients so that they are the update: ``(loss,
        output)``, or None where the plan has no such step."""
        chain = self.chain
        rate = None if chain is None or not chain.takes(x) else self.optimizer.plain_rate()
        if rate is None:
            return None
        done = chain.run(x, y, sample_weight, -rate)
        chain.descend()
        self.optimizer.iterations += 1
        return done

    def update(self, step: Step, communicator: Any = None) -> Step:
        """Apply `step`'s gradients; with a `communicator`, they are averaged
        over the workers (one collective) first."""
        keys, grads = self.keys, step.gradients
        if communicator is not None:
            averaged = communicator.allreduce_mean([grads[key] for _, _, key in keys])
            grads = step.gradients = {key: g for (_, _, key), g in zip(keys, averaged, strict=True)}
        new = self.optimizer.apply(
            [(key, layer.params[name], grads[key]) for layer, name, key in keys],
            consume_gradients=True,
        )
        for (layer, name, _), value in zip(keys, new, strict=True):
            layer.params[name] = value
        return step


def _chain(layers: list, fused: bool, kernel: Any) -> Any:
    """The backend's flat step (:func:`xpnet._backend.dense_chain`) when every
    layer is a plain Dense, else None."""
    from xpnet.layers.core import Dense

    if not layers or any(type(layer) is not Dense for layer in layers):
        return None
    activations: list[Any] = []
    for i, layer in enumerate(layers):
        act = layer.activation
        if (fused and i == len(layers) - 1) or act.name == "linear":
            activations.append(None)
        elif type(act) is _activations.ReLU:
            activations.append("relu")
        else:
            activations.append(act)
    return dense_chain(layers[0].params["kernel"], layers, activations, kernel)


def eager_epoch(
    train: Any, data: Data, spans: list[tuple[int, int]], totals: Totals, group: int
) -> Iterator[int]:
    """Train on `data`'s batches `spans` one ``train(x, y, sample_weight) ->
    (loss, output)`` at a time (the plan's :meth:`StepPlan.fit_batch`, or
    the model's ``train_step``), adding each to `totals`; yields the index of
    the last batch done after every `group` batches (``steps_per_execution``)
    and at the end."""
    x, y, w = data.x, data.y, data.sample_weight
    add = totals.add
    last = len(spans) - 1
    for b, (start, stop) in enumerate(spans):
        yb = y[start:stop, ...]
        loss, out = train(x[start:stop, ...], yb, None if w is None else w[start:stop])
        add(loss * (stop - start), yb, out, stop - start)
        if (b + 1) % group == 0 or b == last:
            yield b


def eager_chunk(model: Any, block: Data, start: int, stop: int, totals: Totals) -> None:
    """Fold rows ``start:stop`` of `block` into `totals`, op by op (the
    eager counterpart of ``xpnet._compiled.CompiledEvaluation.add``)."""
    part = block.slice(start, stop)
    loss, out = loss_sum_and_output(model, part)
    totals.add(loss, part.y, out, stop - start)


def loss_sum_and_output(model: Any, part: Data) -> tuple[Array, Array]:
    """A chunk's summed loss (the weight penalty counted once per sample,
    as each training batch's mean loss carries it) and its outputs."""
    fused = model.fused
    out, _ = model.forward(part.x, logits=fused)
    loss, _ = model.loss.compute(part.y, out, part.sample_weight, logits=fused, reduction="sum")
    penalty = model.regularization_loss()
    if penalty is not None:
        loss = loss + penalty * part.n
    return loss, out
