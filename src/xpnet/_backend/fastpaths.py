"""Per-step fast paths: fused and in-place variants of the few operations a
training step repeats, with each library's version side by side.

Small models are overhead-bound, so these save what the array API cannot
say: an allocation (writing into an existing buffer), a pass (PyTorch's
``addmm``) or a wrapper layer (NumPy's ufunc reduce). One class per library,
as Thinc keeps ``NumpyOps`` and ``CupyOps`` apart; :class:`ArrayAPIOps` is the
portable fallback (JAX, array-api-strict, anything else) and the base the
others override. The public functions pick the class once per array type.

The convention of this module: helpers take arrays only and find the
namespace from them (once per array type); none takes ``xp``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from xpnet._backend import numpy_step
from xpnet._backend.compiler import is_traced
from xpnet._backend.namespaces import namespace
from xpnet._backend.transfers import to_numpy
from xpnet._typing import Array

_WRITEABLE_BY_TYPE: dict[type, bool] = {}


def is_writeable(x: Array) -> bool:
    """Whether `x` may be updated in place (False for JAX arrays).

    Decided once per array type: it is asked for xpnet's own parameters,
    gradients and optimizer state on every step, which are never read-only
    views.
    """
    kind = type(x)
    found = _WRITEABLE_BY_TYPE.get(kind)
    if found is None:
        found = _WRITEABLE_BY_TYPE[kind] = bool(array_api_compat.is_writeable_array(x))
    return found


# --------------------------------------------------------------------------
# One class per library
# --------------------------------------------------------------------------


class ArrayAPIOps:
    """Plain array API calls: new arrays, in place only where the array says
    it is writable (array-api-strict yes, JAX never)."""

    #: A class that runs the training step of a Dense stack as one flat loop
    #: (see :func:`dense_chain`); None: the step goes layer by layer.
    dense_chain: Any = None

    @staticmethod
    def any_nonfinite(x: Array) -> Array:
        xp = namespace(x)
        return xp.any(~xp.isfinite(x))

    @staticmethod
    def maybe_nonfinite(x: Array) -> Array:
        return ~namespace(x).isfinite(reduce_sum(x, axis=None))

    @classmethod
    def flagged_batch(cls, x: Array, y: Array, k: int) -> bool:
        flag = cls.labels_outside(y, k) | cls.maybe_nonfinite(x)
        return bool(to_numpy(flag))

    @staticmethod
    def labels_outside(y: Array, k: int) -> Array:
        xp = namespace(y)
        if k > xp.iinfo(y.dtype).max:  # no label of this dtype reaches k
            return xp.any(y < 0)
        return xp.any((y < 0) | (y >= k))

    @staticmethod
    def reduce_sum(x: Array, axis: int, keepdims: bool) -> Array:
        return namespace(x).sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def sum_rows(x: Array) -> Array:
        return namespace(x).sum(x, axis=0)

    @staticmethod
    def reduce_max(x: Array, axis: int, keepdims: bool) -> Array:
        return namespace(x).max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def affine(x: Array, w: Array, b: Array) -> Array:
        z = x @ w
        if is_writeable(z):  # the fresh product is ours: add the bias in place
            z += b
            return z
        return z + b

    @staticmethod
    def add_scaled_(y: Array, alpha: float, x: Array) -> Array:
        x *= alpha  # scale the (disposable) x in place: no temporary
        y += x
        return y

    @staticmethod
    def relu_(z: Array) -> Array:
        return namespace(z).maximum(z, 0.0)

    @staticmethod
    def relu_backward_(dy: Array, y: Array) -> Array:
        return namespace(dy).where(y > 0, dy, 0.0)

    @staticmethod
    def matmul_into(a: Array, b: Array, out: Array) -> Array:
        return a @ b

    @staticmethod
    def sparse_softmax_xent(z: Array, labels: Array, mean: bool) -> tuple[Array, Array]:
        xp = namespace(z)
        n, k = z.shape
        shifted = z - reduce_max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = reduce_sum(e, axis=1, keepdims=True)
        hit = labels[:, None] == _class_indices(xp, k, labels)
        # the sum over samples of log(total) - shifted[label]; the max cancels
        loss = reduce_sum(xp.log(total), axis=None) - reduce_sum(
            xp.where(hit, shifted, 0.0), axis=None
        )
        p = e / total
        grad = xp.where(hit, p - 1.0, p)
        if mean:
            return loss / n, grad * (1.0 / n)
        return loss, grad


class NumpyOps(ArrayAPIOps):
    """NumPy: ufuncs with ``out=`` and the ufunc's own reduce, which skips
    the generic wrapper (a few microseconds a call at small sizes)."""

    dense_chain = numpy_step.DenseChain

    @staticmethod
    def reduce_sum(x: Array, axis: int, keepdims: bool) -> Array:
        return np.add.reduce(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def reduce_max(x: Array, axis: int, keepdims: bool) -> Array:
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def sum_rows(x: Array) -> Array:
        return np.dot(numpy_step.ones(x.shape[0], x.dtype), x)

    @staticmethod
    def any_nonfinite(x: Array) -> Array:
        return ~np.logical_and.reduce(np.isfinite(x), axis=None)

    @staticmethod
    def maybe_nonfinite(x: Array) -> Array:
        flat = x.reshape(-1)  # the sum of squares: one BLAS call, no temporary
        return ~np.isfinite(np.dot(flat, flat))

    @classmethod
    def flagged_batch(cls, x: Array, y: Array, k: int) -> bool:
        flat = x.reshape(-1)  # compared as a NumPy scalar: no array flags, no read
        return not np.dot(flat, flat) < np.inf or bool(cls.labels_outside(y, k))

    @staticmethod
    def labels_outside(y: Array, k: int) -> Array:
        unsigned = _UNSIGNED.get(y.dtype)
        # Read as unsigned, a negative label becomes at least 2**(bits - 1):
        # one reduce checks both ends, when k is no larger than that.
        if unsigned is None or k > 1 << (8 * y.dtype.itemsize - 1):
            return ArrayAPIOps.labels_outside(y, k)
        return np.maximum.reduce(y.reshape(-1).view(unsigned), initial=0) >= k

    @staticmethod
    def relu_(z: Array) -> Array:
        return np.maximum(z, 0.0, out=z)

    @staticmethod
    def relu_backward_(dy: Array, y: Array) -> Array:
        return np.multiply(dy, y > 0, out=dy)

    @staticmethod
    def matmul_into(a: Array, b: Array, out: Array) -> Array:
        return np.matmul(a, b, out=out)

    sparse_softmax_xent = staticmethod(numpy_step.sparse_softmax_xent)


_UNSIGNED = {np.dtype(f"i{size}"): np.dtype(f"u{size}") for size in (1, 2, 4, 8)}


class CupyOps(ArrayAPIOps):
    """CuPy: NumPy's ``out=`` ufuncs, on the GPU."""

    @staticmethod
    def relu_(z: Array) -> Array:
        import cupy

        return cupy.maximum(z, 0.0, out=z)

    @staticmethod
    def relu_backward_(dy: Array, y: Array) -> Array:
        import cupy

        return cupy.multiply(dy, y > 0, out=dy)

    @staticmethod
    def matmul_into(a: Array, b: Array, out: Array) -> Array:
        import cupy

        return cupy.matmul(a, b, out=out)


class TorchOps(ArrayAPIOps):
    """PyTorch: fused kernels (``addmm``, ``add_(alpha=)``) and the in-place
    ``_`` methods."""

    @staticmethod
    def affine(x: Array, w: Array, b: Array) -> Array:
        import torch

        return torch.addmm(b, x, w)

    @staticmethod
    def add_scaled_(y: Array, alpha: float, x: Array) -> Array:
        return y.add_(x, alpha=alpha)

    @staticmethod
    def relu_(z: Array) -> Array:
        return z.clamp_(min=0)

    @staticmethod
    def relu_backward_(dy: Array, y: Array) -> Array:
        import torch

        # autograd's own ReLU backward, written over dy: one pass, no mask
        return torch.ops.aten.threshold_backward.grad_input(dy, y, 0, grad_input=dy)

    @staticmethod
    def matmul_into(a: Array, b: Array, out: Array) -> Array:
        import torch

        return torch.matmul(a, b, out=out)


_CLASS_INDICES: dict[tuple, Array] = {}


def _class_indices(xp, k: int, labels: Array) -> Array:
    """``arange(k)`` in the labels' dtype and device, made once per combination
    (an array is immutable once made here, so sharing it is safe)."""
    from xpnet._backend.devices import device_of

    device = device_of(labels)
    key = (id(xp), k, labels.dtype, str(device))
    found = _CLASS_INDICES.get(key)
    if found is None:
        found = xp.arange(k, dtype=labels.dtype, device=device)
        if not is_traced(found):
            _CLASS_INDICES[key] = found
    return found


class JaxOps(ArrayAPIOps):
    """JAX runs each operation as its own program, compiled on first use for
    every new shape: each check of a new dataset is one program of its own
    (jitted here), not a program per operation."""

    _nonfinite: Any = None

    @classmethod
    def any_nonfinite(cls, x: Array) -> Array:
        if cls._nonfinite is None:
            import jax

            cls._nonfinite = jax.jit(_jax_any_nonfinite)
        return cls._nonfinite(x)

    _outside: Any = None

    @classmethod
    def labels_outside(cls, y: Array, k: int) -> Array:
        if k > np.iinfo(y.dtype).max:  # no label of this dtype reaches k
            return ArrayAPIOps.labels_outside(y, k)
        if cls._outside is None:  # one program, not four operations
            import jax

            cls._outside = jax.jit(_jax_labels_outside)
        return cls._outside(y, k)


def _jax_labels_outside(y: Array, k: Array) -> Array:
    return (y < 0).any() | (y >= k).any()


def _jax_any_nonfinite(a: Array) -> Array:
    """Whether `a` holds a NaN or an infinity, from one sum: ``a * 0`` is 0
    for a finite value and NaN for a NaN or an infinity, and a sum lets a
    NaN through (a max does not: XLA:CPU's vectorised max reduction drops
    NaN from 4096 elements up, openxla/xla#21461). Exact, and on XLA:CPU
    about 3 x faster than reducing ``isfinite`` with ``all``, whose boolean
    reduce is not vectorised (4096 x 784 float32: 0.32 against 1.07 ms)."""
    import jax.numpy as jnp

    return jnp.isnan(jnp.sum(a * 0))


# --------------------------------------------------------------------------
# Dispatch: once per array type
# --------------------------------------------------------------------------

_OPS_BY_TYPE: dict[type, type[ArrayAPIOps]] = {}


def _ops_for_new_type(x: Array) -> type[ArrayAPIOps]:
    if type(x) is np.ndarray:  # exactly: subclasses (np.matrix, ...) go generic
        return NumpyOps
    if array_api_compat.is_torch_array(x):
        return TorchOps
    if array_api_compat.is_cupy_array(x):
        return CupyOps
    if array_api_compat.is_jax_array(x):
        return JaxOps
    return ArrayAPIOps


def _ops(x: Array) -> type[ArrayAPIOps]:
    """The fast paths for arrays of the type of `x`."""
    ops = _OPS_BY_TYPE.get(type(x))
    if ops is None:
        ops = _OPS_BY_TYPE[type(x)] = _ops_for_new_type(x)
    return ops


def any_nonfinite(x: Array) -> Array:
    """Whether `x` holds a NaN or an infinity, as a device boolean."""
    return _ops(x).any_nonfinite(x)


def maybe_nonfinite(x: Array) -> Array:
    """A device boolean that is False only when every value of `x` is
    finite: a check in one pass (a sum, which overflows to a false alarm
    for huge values; confirm an alarm with :func:`any_nonfinite`). NumPy
    warns of such an overflow: call it within ``quiet_float_errors()``."""
    return _ops(x).maybe_nonfinite(x)


def labels_outside(y: Array, k: int) -> Array:
    """Whether integer labels `y` hold one outside ``[0, k)``, as a device
    boolean."""
    return _ops(y).labels_outside(y, k)


def flagged_batch(x: Array, y: Array, k: int) -> bool:
    """Whether integer labels `y` hold one outside ``[0, k)`` or `x` may
    hold a non-finite value (:func:`maybe_nonfinite`'s false alarms
    included), read at once: ``train_on_batch``'s check. As with
    :func:`maybe_nonfinite`, call it within ``quiet_float_errors()``."""
    return _ops(x).flagged_batch(x, y, k)


def reduce_sum(x: Array, axis: int, keepdims: bool = False) -> Array:
    """``xp.sum`` for the per-step kernels; on NumPy the ufunc's own reduce,
    which skips the generic wrapper (a few microseconds a call at small sizes)."""
    return _ops(x).reduce_sum(x, axis, keepdims)


def sum_rows(x: Array) -> Array:
    """The sum over the rows of a 2-D `x` (a bias gradient); on NumPy a BLAS
    product with ones, as :class:`~xpnet._backend.numpy_step.DenseChain`
    takes it, so the two steps agree to the last bit."""
    return _ops(x).sum_rows(x)


def reduce_max(x: Array, axis: int, keepdims: bool = False) -> Array:
    """``xp.max``, with the same NumPy shortcut as :func:`reduce_sum`."""
    return _ops(x).reduce_max(x, axis, keepdims)


def affine(x: Array, w: Array, b: Array | None) -> Array:
    """``x @ w + b`` in one pass where the library has it (PyTorch's addmm),
    else the product plus an in-place bias add on the fresh result."""
    if b is None:
        return x @ w
    return _ops(x).affine(x, w, b)


def add_scaled_(y: Array, alpha: float, x: Array) -> Array:
    """``y += alpha * x`` in place, for writable `y`; `x` may be overwritten
    (NumPy and CuPy scale it in place to avoid a temporary; PyTorch fuses)."""
    return _ops(y).add_scaled_(y, alpha, x)


def relu_(z: Array) -> Array:
    """``max(z, 0)`` written over `z` where the library allows it (saves one
    activation-sized array per ReLU layer); a new array on JAX."""
    return _ops(z).relu_(z)


def relu_backward_(dy: Array, y: Array) -> Array:
    """``where(y > 0, dy, 0)``, written over `dy` where the library allows it."""
    return _ops(dy).relu_backward_(dy, y)


def matmul(a: Array, b: Array, out: Array | None = None) -> Array:
    """``a @ b``, written into `out` when given and the library can (NumPy,
    CuPy, PyTorch), so a gradient buffer is reused instead of reallocated."""
    if out is None or not is_writeable(out) or out.shape != (a.shape[0], b.shape[1]):
        return a @ b
    return _ops(out).matmul_into(a, b, out)


def dense_chain(like: Array, layers: list, activations: list, kernel: Any) -> Any:
    """The library's flat training step for a stack of Dense `layers` whose
    parameters are arrays like `like` (see :mod:`~xpnet._backend.numpy_step`),
    or None where the library has none and the step goes layer by layer.
    `activations` holds, per layer, ``"relu"``, None (linear or fused into
    the loss) or an activation object."""
    make = _ops(like).dense_chain
    return None if make is None else make(layers, activations, kernel)


def sparse_softmax_xent(
    z: Array, labels: Array, mean: bool = True, *, checked: bool = True
) -> tuple[Array, Array]:
    """Softmax cross-entropy of logits `z` ``(n, k)`` against integer
    `labels` ``(n,)``: ``(loss, grad)``, averaged over the samples when
    `mean` (else summed). With `checked` (the model's prepared batches) the
    labels are known to lie in ``[0, k)`` and may index rows directly;
    otherwise a label out of range matches no class."""
    if not checked:
        return ArrayAPIOps.sparse_softmax_xent(z, labels, mean)
    return _ops(z).sparse_softmax_xent(z, labels, mean)
