"""The training step of a stack of Dense layers, written for NumPy, and
NumPy's softmax cross-entropy kernel for integer labels.

A small model's step is bound by Python, not arithmetic: each NumPy call
costs about a microsecond whatever the size of its arrays, so the speed is
decided by how many calls a step makes and by what runs between them. The
layer-by-layer step (:class:`xpnet._plan.StepPlan`) pays for a closure per
layer, the per-call dispatch of :mod:`~xpnet._backend.fastpaths` and the
optimizer's generic loop. :class:`DenseChain` is the same arithmetic as one
flat loop: the bias add, the ReLU and its gradient are ufuncs that write
in place (``out=``), the gradients land in each layer's existing buffers,
and for plain gradient descent the ``-learning_rate`` factor is folded into
the loss gradient, so that the backward pass produces the update itself
and each parameter takes one add.

The numbers are the layer-by-layer step's up to rounding: the factor
multiplies before the products instead of after them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet._typing import Array

_matmul, _dot, _add, _multiply, _maximum, _greater = (
    np.matmul, np.dot, np.add, np.multiply, np.maximum, np.greater,
)  # fmt: skip

#: The activation the chain writes as two ufunc calls of its own.
RELU = "relu"


class DenseChain:
    """Forward, loss and backward of Dense `layers`, for NumPy arrays.

    Parameters
    ----------
    layers : list
        Dense layers; their ``params`` are read on every call (``set_weights``
        or a rollback may replace them) and their ``grads`` written.
    activations : list
        Per layer: :data:`RELU`, None (linear, or fused into the loss), or an
        activation object whose ``forward_``/``backward_`` may write over
        their inputs.
    kernel : callable
        ``kernel(y, out, sample_weight) -> (loss, grad)``: the plan's loss
        kernel, whose gradient is a new array the chain may write over.
    """

    def __init__(self, layers: list[Any], activations: list[Any], kernel: Any) -> None:
        self.layers = list(layers)
        self.activations = [RELU if a == RELU else a for a in activations]  # `is` below
        self.kernel = kernel
        self._scratch: dict[int, Array] = {}  # layer -> its input gradient

    def takes(self, x: Array) -> bool:
        """Whether `x` is a NumPy array of the parameters' dtype (anything
        else, such as float64 data for a float32 model, goes layer by layer)."""
        return type(x) is np.ndarray and x.dtype == self.layers[0].params["kernel"].dtype

    def run(
        self, x: Array, y: Array, sample_weight: Array | None, scale: float | None = None
    ) -> tuple[Array, Array]:
        """One forward and backward pass: ``(loss, output)``. The gradients
        are left in each layer's ``grads``; with `scale` they are `scale`
        times the gradients (the loss gradient is scaled before backward)."""
        inputs, pre, post = self._forward(x)
        out = post[-1]
        loss, grad = self.kernel(y, out, sample_weight)
        if grad.dtype != out.dtype or not grad.flags.writeable:  # a loss of one's own
            grad = grad.astype(out.dtype)
        if scale is not None:
            _multiply(grad, scale, out=grad)
        self._backward(grad, inputs, pre, post)
        return loss, out

    def _forward(self, x: Array) -> tuple[list[Array], list[Array], list[Array]]:
        """Each layer's input, pre-activation and output."""
        inputs, pre, post = [], [], []
        a = x
        for layer, act in zip(self.layers, self.activations, strict=True):
            params = layer.params
            inputs.append(a)
            z = _matmul(a, params["kernel"])
            bias = params.get("bias")
            if bias is not None:
                _add(z, bias, out=z)
            if act is None:
                a = z
            elif act is RELU:
                a = _maximum(z, 0.0, out=z)
            else:  # forward_ may write over z only where its backward needs just a
                a = act.forward_(z)
            pre.append(z)
            post.append(a)
        return inputs, pre, post

    def _backward(self, grad: Array, inputs: list, pre: list, post: list) -> None:
        layers, activations, n = self.layers, self.activations, grad.shape[0]
        column = ones(n, grad.dtype)  # bias gradients: sums over rows, as products with it
        for i in range(len(layers) - 1, -1, -1):
            act = activations[i]
            if act is RELU:  # relu(z) > 0 exactly where z > 0
                _multiply(grad, _greater(post[i], 0.0), out=grad)
            elif act is not None:
                grad = act.backward_(grad, pre[i], post[i])
            params, grads = layers[i].params, layers[i].grads
            kernel = params["kernel"]
            grads["kernel"] = _matmul(inputs[i].T, grad, out=_buffer(grads.get("kernel"), kernel))
            bias = params.get("bias")
            if bias is not None:
                grads["bias"] = _dot(column, grad, out=_buffer(grads.get("bias"), bias))
            if i:
                grad = _matmul(grad, kernel.T, out=self._scratch_for(i, n, kernel))

    def _scratch_for(self, i: int, n: int, kernel: Array) -> Array:
        """The array that layer `i`'s input gradient is written to: one per
        layer (consecutive layers never share), remade when the batch size
        changes (once an epoch at most, for fit's last batch)."""
        out = self._scratch.get(i)
        if out is None or out.shape != (n, kernel.shape[0]) or out.dtype != kernel.dtype:
            out = self._scratch[i] = np.empty((n, kernel.shape[0]), kernel.dtype)
        return out

    def descend(self) -> None:
        """``param += grad`` for every parameter: the update of plain
        gradient descent after :meth:`run` with ``scale=-learning_rate``."""
        for layer in self.layers:
            grads = layer.grads
            for name, param in layer.params.items():
                _add(param, grads[name], out=param)


_ONES: dict[tuple[int, Any], Array] = {}


def ones(n: int, dtype: Any) -> Array:
    """A vector of `n` ones, to take a sum over rows or columns as one BLAS
    product (a ufunc reduce along short rows costs microseconds). Made once
    per length and dtype, never written to."""
    found = _ONES.get((n, dtype))
    if found is None:
        if len(_ONES) >= 64:  # many batch sizes (train_on_batch): start over
            _ONES.clear()
        found = _ONES[n, dtype] = np.ones(n, dtype)
        found.flags.writeable = False
    return found


def _buffer(found: Array | None, like: Array) -> Array:
    """`found` when it can hold a gradient of `like`, else a new array."""
    if found is None or found.shape != like.shape or found.dtype != like.dtype:
        return np.empty_like(like)
    return found


def sparse_softmax_xent(z: Array, labels: Array, mean: bool) -> tuple[Array, Array]:
    """The softmax cross-entropy of logits `z` with integer `labels`:
    ``(loss, gradient)``, the generic kernel's numbers in fewer and cheaper
    calls. A reduce along short rows costs microseconds, so the row maxima
    come from ``argmax`` and the row sums are BLAS products with ones; the
    labels index the flat rows, and the exponentials become the gradient in
    place, divided by their sums and the batch size in one pass."""
    n, k = z.shape
    starts = _row_starts(n, k)
    top = z.reshape(-1).take(starts + z.argmax(axis=1))
    # C order, whatever the logits' layout: the flat view below must be a view
    shifted = np.subtract(z, top[:, None], order="C")
    e = np.exp(shifted)
    total = np.dot(e, ones(k, e.dtype))
    at = starts + labels
    loss = np.dot(np.log(total) - shifted.reshape(-1).take(at), ones(n, e.dtype))
    scale = 1.0 / n if mean else 1.0
    np.multiply(e, (scale / total)[:, None], out=e)
    e.reshape(-1)[at] -= scale
    return loss * scale, e


_ROW_STARTS: dict[tuple[int, int], Array] = {}


def _row_starts(n: int, k: int) -> Array:
    """``arange(n) * k``: where each row of an ``(n, k)`` array starts in
    its flat view. Made once per shape, never written to."""
    found = _ROW_STARTS.get((n, k))
    if found is None:
        found = _ROW_STARTS[n, k] = np.arange(n, dtype=np.intp) * k
    return found
