"""Export to ONNX: the model's own forward, recorded as a graph.

There is no exporter here, no table that maps layers to ONNX operators.
ndonnx implements the array API standard by recording ONNX operations, and
every xpnet kernel is written against the array API, so running the
inference forward once on ndonnx arrays *is* the graph: the same
``layer.forward(x, training=False)`` that :meth:`~xpnet.Sequential.predict`
runs, on a throw-away copy of each layer whose parameters (and buffers,
such as BatchNormalization's moving statistics) are symbolic arrays named
``"<layer>/<param>"``. Those become the graph's initializers, holding the
model's values; the data is the input ``"x"`` with a symbolic batch
dimension ``"N"``; the output is ``"y"``.

For an estimator of :mod:`xpnet.models` the graph ends as its public
output does: ``predict_proba`` for classifiers (two columns for a single
sigmoid unit), ``predict`` for regressors (one dimension when fitted on a
1-D target).

Sequential and the estimators reach this module through their ``export``
methods; it reads them through public attributes only.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

from xpnet._backend import namespace, to_numpy
from xpnet._backend.tracing import (
    BATCH,
    INSTALL_HINT,
    build_graph,
    is_traced,
    symbolic,
    traceable_dtype,
)
from xpnet._saving import write_atomically
from xpnet._typing import Array

__all__ = ["FORMATS", "export", "to_onnx"]

FORMATS = ("onnx",)
"""The formats :func:`export` writes."""

INPUT, OUTPUT = "x", "y"

Finish = Callable[[Array], Array]


def export(obj: Any, filepath: str | os.PathLike[str], format: str = "onnx") -> None:
    """Write the inference graph of `obj` (a built :class:`~xpnet.Sequential`
    or a fitted estimator of :mod:`xpnet.models`) to `filepath`, atomically.

    Raises
    ------
    ValueError
        For an unknown `format`, an unbuilt model or unfitted estimator, a
        dtype ONNX export cannot hold (bfloat16), or a layer whose forward
        does not run on array API arrays (the message names it).
    TypeError
        When `obj` is neither.
    ImportError
        When ndonnx or onnx is missing (``pip install "xpnet[onnx]"``).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; xpnet exports {FORMATS}")
    data = to_onnx(obj).SerializeToString(deterministic=True)
    write_atomically(os.fspath(filepath), lambda stream: stream.write(data))


def to_onnx(obj: Any) -> Any:
    """The checked ONNX ``ModelProto`` that :func:`export` writes."""
    model, finish, what = _target(obj)
    if not model.built:
        raise ValueError(
            "cannot export a model that is not built yet: fit it, or call build(input_dim)"
        )
    traceable_dtype(model.dtype)  # refuses bfloat16 before any tracing
    onnx = _load_onnx()
    shape = tuple(BATCH if n is None else int(n) for n in model.layers[0].input_shape)
    x = symbolic(shape, model.dtype)
    inputs, values = {INPUT: x}, {}
    out = x
    for layer in model.layers:
        out = _run(_symbolic_copy(layer, model.dtype, inputs, values), out)
    proto = build_graph(inputs, {OUTPUT: finish(out)})
    _weights_to_initializers(proto, values)
    _describe(proto, model, what, shape)
    onnx.checker.check_model(proto, full_check=True)
    return proto


# ---------------------------------------------------------------- what to trace


def _target(obj: Any) -> tuple[Any, Finish, str]:
    """The network to trace, what to apply to its output, and what that is."""
    if hasattr(obj, "layers") and hasattr(obj, "forward"):
        return obj, _unchanged, f"predict of the xpnet model {obj.name!r}"
    if hasattr(obj, "get_params") and hasattr(obj, "fit"):
        return _estimator_target(obj)
    raise TypeError(
        "export expects an xpnet.Sequential or an estimator of xpnet.models, "
        f"got {type(obj).__name__}"
    )


def _estimator_target(est: Any) -> tuple[Any, Finish, str]:
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "model_")  # NotFittedError is a ValueError
    name = type(est).__name__
    if is_classifier(est):
        finish = _two_columns if est.model_.output_dim == 1 else _unchanged
        return est.model_, finish, f"predict_proba of an xpnet {name}"
    # predict's shape says whether it was fitted on a 1-D target: ask it
    one_row = est.predict([[0.0] * int(est.n_features_in_)])
    finish = _first_column if len(one_row.shape) == 1 else _unchanged
    return est.model_, finish, f"predict of an xpnet {name}"


def _unchanged(out: Array) -> Array:
    return out


def _two_columns(out: Array) -> Array:
    """A single sigmoid unit's ``p`` as the columns ``(1 - p, p)``, as
    ``predict_proba`` returns it."""
    return namespace(out).concat([1.0 - out, out], axis=1)


def _first_column(out: Array) -> Array:
    return out[:, 0]


# ---------------------------------------------------------------- tracing


def _symbolic_copy(layer: Any, dtype: str, inputs: dict[str, Array], values: dict) -> Any:
    """A shallow copy of `layer` whose parameters and buffers are symbolic
    arrays; their names go to `inputs` and their host values to `values`.
    The layer itself is left untouched."""
    clone = copy.copy(layer)
    clone.grads = {}
    clone.params = _symbolic_arrays(layer, layer.params, dtype, inputs, values)
    buffers = getattr(layer, "buffers", None)
    if buffers is not None:
        clone.buffers = _symbolic_arrays(layer, buffers, dtype, inputs, values)
    return clone


def _symbolic_arrays(
    layer: Any, arrays: dict[str, Array], dtype: str, inputs: dict[str, Array], values: dict
) -> dict[str, Array]:
    found = {}
    for name, value in arrays.items():
        key = f"{layer.name}/{name}"
        host = to_numpy(value).astype(dtype)
        found[name] = inputs[key] = symbolic(tuple(int(n) for n in host.shape), dtype)
        values[key] = host
    return found


def _run(layer: Any, x: Array) -> Array:
    """`layer`'s inference forward on the symbolic `x`, or a ValueError that
    names the layer when its code cannot be recorded (an in-place write, a
    read back to the host, arrays of another library)."""
    what = f"layer {layer.name!r} ({type(layer).__name__})"
    try:
        y, _ = layer.forward(x, training=False)
    except Exception as exc:
        raise ValueError(
            f"cannot export {what} to ONNX: its forward does not run on array API "
            f"arrays that record a graph ({type(exc).__name__}: {exc})"
        ) from exc
    if not is_traced(y):
        raise ValueError(
            f"cannot export {what} to ONNX: its forward returned a {type(y).__name__}, "
            "not an array computed from its input"
        )
    return y


# ---------------------------------------------------------------- the ONNX file


def _load_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"exporting to ONNX needs ndonnx and onnx: {INSTALL_HINT}") from exc
    return onnx


def _weights_to_initializers(proto: Any, values: dict[str, Any]) -> None:
    """Turn the symbolic weights from graph inputs into initializers holding
    the model's values: constants of the graph, not inputs a caller feeds."""
    from onnx import numpy_helper

    graph = proto.graph
    kept = [entry for entry in graph.input if entry.name not in values]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())


def _describe(proto: Any, model: Any, what: str, shape: tuple[int | str, ...]) -> None:
    proto.producer_name = "xpnet"
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        proto.producer_version = importlib.metadata.version("xpnet")
    proto.graph.name = str(model.name)
    proto.doc_string = (
        f"{what}: input {INPUT!r} of shape ({', '.join(map(str, shape))}), dtype "
        f"{model.dtype}; output {OUTPUT!r}"
    )
