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
    fn: Callable[..., tuple[Array, Any]],
    *inputs: Any,
    wrt: Sequence[int] = (0,),
    eps: float = 1e-6,
) -> dict[int, float]:
    """Check the gradients `fn` returns against central finite differences.

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
        target = backend_of(args[i])
        host = to_numpy(args[i]).astype("float64")  # a fresh host copy
        flat = host.reshape(-1)
        numeric = host.copy()
        numeric_flat = numeric.reshape(-1)
        probe = list(args)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            probe[i] = asarray(host, target, "float64", copy=True)
            upper = value(probe)
            flat[j] = original - eps
            probe[i] = asarray(host, target, "float64", copy=True)
            lower = value(probe)
            flat[j] = original
            numeric_flat[j] = (upper - lower) / (2.0 * eps)
        analytic = to_numpy(grad).astype("float64")
        if analytic.shape != numeric.shape:
            raise ValueError(
                f"gradient for input {i} has shape {analytic.shape}, the input has {numeric.shape}"
            )
        scale = max(abs(analytic).max(initial=0.0), abs(numeric).max(initial=0.0))
        diff = abs(analytic - numeric).max(initial=0.0)
        errors[i] = 0.0 if scale < _TINY else float(diff / scale)
    return errors
