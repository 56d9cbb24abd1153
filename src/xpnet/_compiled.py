"""The plan's step compiled: one program per batch size on a library with a
step compiler (JAX; see ``xpnet._backend.compiler``).

:class:`CompiledSteps` turns a :class:`~xpnet._plan.StepPlan` into one pure
function of ``(parameters, buffers, optimizer slots, running totals, epoch
data, batch start, step scalars)`` and compiles it: one device call per
batch, or per ``steps_per_execution`` batches through a scan.
:class:`CompiledEvaluation` does the same for ``evaluate``'s chunks. The
same layer code runs in both, traced instead of executed, so the compiled
and the eager step give the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from xpnet._backend import float_dtype
from xpnet._plan import StepPlan, loss_sum_and_output
from xpnet._training import Data, Totals
from xpnet._typing import Array


def why_not_compiled(model: Any, compiler: Any, overridden: list, communicator: Any) -> str | None:
    """Why `model`'s fit cannot run compiled (None when it can)."""
    if compiler is None:
        return f"the {model.placement.name} backend has no step compiler (JAX has)"
    if overridden:
        return f"the model overrides {overridden[0]}"
    if communicator is not None:
        return "gradients are averaged over workers between backward and update"
    drawing = [layer.name for layer in model.layers if layer.draws_on_host]
    if drawing:
        return f"layer {drawing[0]!r} draws on the host in training"
    return None


class CompiledSteps:
    """The plan's step, with the optimizer update and the running totals,
    compiled into one program per batch size (and one more that scans
    `group` full batches).

    The model's state goes in and comes out as arrays (donated: updated
    without a copy) and is written back to the layers and the optimizer
    when an epoch's batches are done, or stopped.
    """

    def __init__(self, model: Any, plan: StepPlan, compiler: Any, group: int) -> None:
        self.model, self.plan, self.compiler, self.group = model, plan, compiler, group
        self.names = [key for _, _, key in plan.keys]
        self.buffer_keys = [(layer, name) for layer in plan.layers for name in layer.buffers]
        self.traces = 0  # how often a program was traced (for tests)
        self._single: dict[int, Any] = {}
        self._scans: dict[int, Any] = {}
        self._totals_like: Any = None
        self._constants: dict[tuple, Any] = {}
        self.totals: Totals | None = None

    # -- the pure step --------------------------------------------------

    @contextlib.contextmanager
    def _bound(self, params, buffers, slots) -> Iterator[None]:
        """Put (traced) state into the layers and the optimizer, and take it
        out again afterwards, whatever happens: no tracer outlives a trace."""
        opt = self.plan.optimizer
        saved_state = opt.state
        try:
            with _bound(self.plan.layers, self.plan.keys, params, self.buffer_keys, buffers):
                opt.state = {key: dict(s) for key, s in zip(self.names, slots, strict=True)}
                yield
        finally:
            opt.state = saved_state

    def _step(self, state, x, y, w, hyper):
        params, buffers, slots, acc = state
        plan, opt = self.plan, self.plan.optimizer
        with self._bound(params, buffers, slots):
            step = plan.gradients(x, y, w)
            items = [
                (key, p, step.gradients[key]) for key, p in zip(self.names, params, strict=True)
            ]
            new_params = opt._update(items, tuple(hyper), False)
            new_slots = [opt.state[key] for key in self.names]
            new_buffers = [layer.buffers[name] for layer, name in self.buffer_keys]
        n = x.shape[0]
        acc = self.totals.fold(acc, step.loss * n, y, step.output)
        return new_params, new_buffers, new_slots, acc

    def _program(self, size: int):
        """The compiled step for batches of `size` rows starting at a traced row."""
        rows = self.compiler.rows

        def one(state, x, y, w, start, hyper):
            self.traces += 1
            x, y, w = (None if a is None else rows(a, start, size) for a in (x, y, w))
            return self._step(state, x, y, w, hyper)

        return one

    def _single_for(self, size: int):
        found = self._single.get(size)
        if found is None:
            found = self._single[size] = self.compiler.jit(self._program(size), donate=(0,))
        return found

    def _scan_for(self, size: int):
        """The compiled scan over full batches (traced once per run length)."""
        found = self._scans.get(size)
        if found is None:
            one = self._program(size)

            def many(state, x, y, w, starts, hypers):
                def body(carry, item):
                    start, hyper = item
                    hyper = [hyper[i] for i in range(len(hyper))]
                    return one(carry, x, y, w, start, hyper), None

                return self.compiler.scan(body, state, (starts, hypers))

            found = self._scans[size] = self.compiler.jit(many, donate=(0,))
        return found

    # -- one epoch --------------------------------------------------------

    def _pack(self, totals: Totals, data: Data, size: int) -> tuple:
        """The model's state as the program's first argument."""
        plan, opt = self.plan, self.plan.optimizer
        params = [layer.params[name] for layer, name, _ in plan.keys]
        for (_, _, key), p in zip(plan.keys, params, strict=True):
            if key not in opt.state:
                opt._slots_for(key, p)
        slots = [opt.state[key] for key in self.names]
        buffers = [layer.buffers[name] for layer, name in self.buffer_keys]
        if totals.count:  # a later block of a streamed epoch: carry on
            return params, buffers, slots, (totals.loss, list(totals.states))
        return params, buffers, slots, self._empty_totals(totals, data, size)

    def _empty_totals(self, totals: Totals, data: Data, size: int) -> Any:
        """Zero running totals: the loss and each metric's state, shaped as
        after one batch (found once by tracing, not by running)."""
        if self._totals_like is None:
            self._totals_like = _totals_like(self.compiler, self.model, totals, data, size)
        return self.compiler.zeros_like(self._totals_like, data.x)

    def _unpack(self, state: tuple, totals: Totals) -> None:
        """Hand the program's new state to the model (after every call, so
        callbacks read live arrays; the next call donates them again)."""
        params, buffers, slots, acc = state
        totals.loss, totals.states = acc[0], list(acc[1])
        plan, opt = self.plan, self.plan.optimizer
        for (layer, name, _), value in zip(plan.keys, params, strict=True):
            layer.params[name] = value
        for (layer, name), value in zip(self.buffer_keys, buffers, strict=True):
            layer.buffers = {**layer.buffers, name: value}
        for key, s in zip(self.names, slots, strict=True):
            opt.state[key] = s

    def _hypers(self, count: int) -> list[tuple[float, ...]]:
        """The next `count` steps' scalars, and the optimizer's step count moved on."""
        opt = self.plan.optimizer
        found = []
        for _ in range(count):
            lr = opt.current_learning_rate()
            opt.iterations += 1
            found.append(opt._hyper(lr, opt.iterations))
        return found

    def _constant(self, values: Any, dtype: Any, on: Array) -> Array:
        """`values` (a list, or one number) as an array on `on`'s device,
        made once per distinct values (batch starts, a constant learning
        rate): no transfer per call."""
        key = (tuple(values) if isinstance(values, list) else values, str(dtype))
        found = self._constants.get(key)
        if found is None:
            if len(self._constants) > 256:
                self._constants.clear()
            found = self._constants[key] = self.compiler.stack(values, dtype, on)
        return found

    def epoch(self, data: Data, spans: list[tuple[int, int]], totals: Totals) -> Iterator[int]:
        """Like :func:`eager_epoch`, one program call per yield."""
        self.totals = totals
        size = spans[0][1] - spans[0][0]
        state = self._pack(totals, data, size)
        x, y, w = data.x, data.y, data.sample_weight
        dtype = float_dtype(self.model.placement.xp, self.model.dtype)
        b, base = 0, totals.count
        while b < len(spans):
            full = [s for s in spans[b : b + self.group] if s[1] - s[0] == size]
            if len(full) > 1:  # a run of full batches: one scan over them
                starts = self._constant([s[0] for s in full], "int32", x)
                hypers = self._constant(self._hypers(len(full)), dtype, x)
                state = self._scan_for(size)(state, x, y, w, starts, hypers)
                b += len(full)
            else:
                start, stop = spans[b]
                (hyper,) = self._hypers(1)
                program, start = self._single_for(stop - start), self._constant(start, "int32", x)
                state = program(state, x, y, w, start, hyper)
                b += 1
            self._unpack(state, totals)
            totals.count = base + spans[b - 1][1]
            yield b - 1


class CompiledEvaluation:
    """``evaluate``'s chunks (and ``fit``'s validation) as one program per
    chunk size: the forward pass in inference mode, the summed loss and
    penalty, and each metric's state folded in. Without it JAX runs (and
    first compiles) every operation of the forward pass and the metrics one
    at a time."""

    def __init__(self, model: Any, compiler: Any) -> None:
        self.model, self.compiler = model, compiler
        self.layers = list(model.layers)
        self.keys = [(layer, name, None) for layer in self.layers for name in layer.params]
        self.buffer_keys = [(layer, name) for layer in self.layers for name in layer.buffers]
        self.traces = 0  # how often a program was traced (for tests)
        self._programs: dict[tuple[int, bool], Any] = {}
        self._like: dict[tuple, Any] = {}
        self.totals: Totals | None = None

    def _program(self, size: int, weighted: bool) -> Any:
        found = self._programs.get((size, weighted))
        if found is not None:
            return found
        rows, model = self.compiler.rows, self.model

        def chunk(params, buffers, acc, x, y, w, start):
            self.traces += 1
            part = Data(rows(x, start, size), rows(y, start, size),
                        None if w is None else rows(w, start, size))  # fmt: skip
            with _bound(self.layers, self.keys, params, self.buffer_keys, buffers):
                loss, out = loss_sum_and_output(model, part)
            return self.totals.fold(acc, loss, part.y, out)

        found = self._programs[size, weighted] = self.compiler.jit(chunk, donate=(2,))
        return found

    def add(self, block: Data, start: int, stop: int, totals: Totals) -> None:
        """Fold rows ``start:stop`` of `block` into `totals`."""
        self.totals, size = totals, stop - start
        if totals.count:
            acc = (totals.loss, list(totals.states))
        else:
            key = (size, block.y.shape[1:], str(block.y.dtype), len(totals.metrics))
            if key not in self._like:
                self._like[key] = _totals_like(self.compiler, self.model, totals, block, size)
            acc = self.compiler.zeros_like(self._like[key], block.x)
        params = [layer.params[name] for layer, name, _ in self.keys]
        buffers = [layer.buffers[name] for layer, name in self.buffer_keys]
        w = block.sample_weight
        program = self._program(size, w is not None)
        totals.loss, states = program(params, buffers, acc, block.x, block.y, w, start)
        totals.states, totals.count = list(states), totals.count + size


@contextlib.contextmanager
def _bound(layers: list, keys: list, params: list, buffer_keys: list, buffers: list):
    """Put (traced) parameters and buffers into `layers` (at `keys` and
    `buffer_keys`), and the layers' own back afterwards, whatever happens."""
    saved = [(layer, dict(layer.params), layer.buffers, layer.grads) for layer in layers]
    try:
        for (layer, name, _), value in zip(keys, params, strict=True):
            layer.params[name] = value
        for layer in layers:
            layer.buffers = dict(layer.buffers)
            layer.grads = {}
        for (layer, name), value in zip(buffer_keys, buffers, strict=True):
            layer.buffers[name] = value
        yield
    finally:
        for layer, params_, buffers_, grads in saved:
            layer.params, layer.buffers, layer.grads = params_, buffers_, grads


def _totals_like(compiler: Any, model: Any, totals: Totals, data: Data, size: int) -> Any:
    """The shapes of `totals`' loss and metric states after a batch of
    `size` rows of `data` (found by tracing, not by running)."""

    def first(y, out):
        return totals.fold((0.0, [None] * len(totals.metrics)), 0.0 * out[0, 0], y, out)

    y = compiler.like((size, *data.y.shape[1:]), data.y.dtype)
    out = compiler.like((size, model.output_dim), data.x.dtype)
    return compiler.zeros_like_result(first, y, out)
