"""Finite-difference gradient checks.

The analytic gradient a kernel returns is compared with central
differences ``(f(x + h) - f(x - h)) / 2h`` computed in float64. The
perturbed inputs are built on the host and moved to the input's own backend
and device, so the check exercises the real kernel of that backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xpnet._backend import asarray, backend_of, float_dtype, namespace, to_numpy
from xpnet._typing import Array

__all__ = ["gradcheck"]

_TINY = 1e-12


def gradcheck(
    fn: Callable[..., tuple[Array, Any]] | Any,
    *inputs: Any,
    wrt: Sequence[int] = (0,),
    eps: float = 1e-6,
    training: bool = False,
) -> dict[Any, float]:
    """Check the gradients `fn` (or a model) returns against central finite differences.

    With a compiled float64 model, ``gradcheck(model, x, y)`` backpropagates
    the loss once and compares every parameter's gradient with finite
    differences of the loss (with the regularization penalty); the result is
    keyed ``"layer/param"``. The model's weights are left as they were.
    With ``training=True`` the layers run as in ``fit`` (BatchNormalization
    on batch statistics; its moving statistics are restored afterwards);
    a model with Dropout draws new masks on every pass, so check it with
    the default ``training=False``.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> (value, grads)``: `value` is the loss (summed if it
        is not a scalar, as with ``reduction="none"``), `grads` the gradient
        of that sum w.r.t. each input listed in `wrt` (a single array when
        `wrt` has one entry). Every loss in :mod:`xpnet.functional` has
        this form.
    *inputs : arrays
        Arguments of `fn`, of any backend. Those in `wrt` are cast to float64
        (JAX needs ``jax_enable_x64``).
    wrt : sequence of int
        Positions of the inputs to differentiate.
    eps : float
        The finite-difference step.
    training : bool
        Only for a model: run the forward passes in training mode.

    Returns
    -------
    dict
        For each position in `wrt`, the normwise relative error
        ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``
        (0 when both are zero).

    Examples
    --------
    >>> import numpy as np
    >>> import xpnet as xn
    >>> z = np.array([[0.3, -1.2], [2.0, 0.1]])
    >>> errors = xn.gradcheck(xn.F.softmax_cross_entropy_with_logits, z, np.array([1, 0]))
    >>> errors[0] < 1e-8
    True
    """
    if hasattr(fn, "layers") and hasattr(fn, "loss"):
        return _gradcheck_model(fn, *inputs, eps=eps, training=training)
    wrt = tuple(wrt)
    if not wrt:
        raise ValueError("wrt must name at least one input")
    for i in wrt:
        if not 0 <= i < len(inputs):
            raise ValueError(f"wrt position {i} is out of range for {len(inputs)} inputs")
    args = list(inputs)
    for i in wrt:
        xp = namespace(args[i])
        args[i] = xp.astype(args[i], float_dtype(xp, "float64"))

    _, grads = fn(*args)
    if not isinstance(grads, tuple | list):
        grads = (grads,)
    if len(grads) != len(wrt):
        raise ValueError(f"fn returned {len(grads)} gradient(s) for {len(wrt)} inputs in wrt")

    def value(at: list[Any]) -> float:
        return float(to_numpy(fn(*at)[0]).sum())

    errors = {}
    for i, grad in zip(wrt, grads, strict=True):
        errors[i] = _compare(
            grad, args[i], lambda value_at, i=i: _probe_input(value, args, i, value_at), eps
        )
    return errors


def _probe_input(value, args, i, moved):
    probe = list(args)
    probe[i] = moved
    return value(probe)


def _compare(grad: Array, point: Array, loss_at: Callable[[Array], float], eps: float) -> float:
    """Normwise relative error between `grad` and central differences of
    `loss_at` (a function of an array shaped like `point`) around `point`."""
    placement = backend_of(point)
    host = to_numpy(point).astype("float64")  # a fresh host copy
    flat = host.reshape(-1)
    numeric = host.copy()
    numeric_flat = numeric.reshape(-1)
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        upper = loss_at(asarray(host, placement, "float64", copy=True))
        flat[j] = original - eps
        lower = loss_at(asarray(host, placement, "float64", copy=True))
        flat[j] = original
        numeric_flat[j] = (upper - lower) / (2.0 * eps)
    analytic = to_numpy(grad).astype("float64")
    if analytic.shape != numeric.shape:
        raise ValueError(f"a gradient has shape {analytic.shape}, its input {numeric.shape}")
    scale = max(abs(analytic).max(initial=0.0), abs(numeric).max(initial=0.0))
    diff = abs(analytic - numeric).max(initial=0.0)
    return 0.0 if scale < _TINY else float(diff / scale)


def _gradcheck_model(model: Any, x: Any, y: Any, *, eps: float, training: bool) -> dict[str, float]:
    """Per-parameter gradient check of a compiled model on ``(x, y)``."""
    if model.loss is None:
        raise RuntimeError("compile the model before gradcheck(model, x, y)")
    data = model.prepare(x, y)
    if model.dtype != "float64":
        raise TypeError(f"gradcheck needs a float64 model, this one is {model.dtype}")

    fused = model.fused

    def loss_value() -> float:  # forward only: the gradient buffers stay as computed
        out, _ = model.forward(data.x, training=training, logits=fused)
        loss = model.loss.compute(data.y, out, logits=fused)[0]
        penalty = model.regularization_loss()
        return float(to_numpy(loss if penalty is None else loss + penalty))

    buffers = [layer.buffers for layer in model.layers]  # replaced, never written into
    try:
        grads = model.compute_gradients(data.x, data.y, training=training).gradients
        errors: dict[str, float] = {}
        for layer in model.layers:
            for name, original in list(layer.params.items()):

                def loss_at(moved, layer=layer, name=name):
                    layer.params[name] = moved
                    return loss_value()

                try:
                    key = f"{layer.name}/{name}"
                    errors[key] = _compare(grads[key], original, loss_at, eps)
                finally:
                    layer.params[name] = original
    finally:
        for layer, kept in zip(model.layers, buffers, strict=True):
            layer.buffers = kept
    return errors
