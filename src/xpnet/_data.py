"""Checking training data and placing it on the model's device.

Everything a user can get wrong about data is caught here, before any
weight changes: shapes, lengths, label ranges, NaN/inf, empty data, arrays
of another library or device. Host data is checked on the host, before it
moves (:func:`staged`, then :func:`placed`): on JAX a check on the device
would first compile a program for each new shape. Device data is checked
on its device, and those checks are read back together, once
(:class:`Checks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from xpnet._backend import (
    Backend,
    any_nonfinite,
    asarray,
    backend_name,
    device_of,
    flagged_batch,
    host_cast,
    host_numeric,
    is_host_data,
    labels_outside,
    maybe_nonfinite,
    namespace,
    read_scalars,
    reduce_max,
    to_numpy,
)
from xpnet._dask import is_dask_array
from xpnet._training import Data
from xpnet._typing import Array, DType


class Gate(NamedTuple):
    """``train_on_batch``'s fast path (:func:`ready`), worked out once per
    configuration of a model."""

    loss: Any
    placement: Any
    spec: Any
    input_dim: int
    planned: bool
    layers: list


@dataclass(frozen=True)
class Spec:
    """What a model expects of its data: where it lives, its dtype, the
    loss's task (``"binary"``, ``"categorical"``, ``"sparse"`` or None),
    the number of outputs, and the loss's name for messages."""

    backend: Backend
    dtype: DType
    task: str | None = None
    n_outputs: int = 1
    loss_name: str = "the loss"


def to_device(data: Any, backend: Backend, name: str, dtype: Any = None) -> Array:
    """Return `data` as an array on `backend`: host data is moved (one
    transfer); arrays of the model's library must already be on its device;
    arrays of any other library are refused."""
    if is_host_data(data):
        return asarray(host_numeric(data, name), backend, dtype)
    if is_dask_array(data):
        raise TypeError(
            f"{name} is a Dask array: fit, evaluate and predict stream its blocks; "
            "elsewhere call .compute() first"
        )
    try:
        xp = namespace(data)
    except TypeError:
        raise TypeError(
            f"{name} must be an array or nested lists, got {type(data).__name__}"
        ) from None
    if not xp.isdtype(data.dtype, ("bool", "integral", "real floating")):
        raise TypeError(
            f"{name} has dtype {data.dtype}; xpnet trains on real numbers (complex values "
            "would lose their imaginary part)"
        )
    if xp is not backend.xp:
        raise TypeError(
            f"{name} is a {backend_name(xp)} array but the model lives on {backend.name}; "
            f"convert it (xpnet.to_numpy) or move the model (model.to({backend_name(xp)!r}))"
        )
    if device_of(data) != backend.device:
        raise ValueError(
            f"{name} is on device {device_of(data)!r} but the model is on {backend.device!r}; "
            "move one of them"
        )
    if dtype is not None and data.dtype != dtype:
        data = xp.astype(data, dtype)
    return data


def staged(data: Any, backend: Backend, name: str, dtype: Any = None) -> Array:
    """`data` as :func:`to_device` gives it, except that host data stays on
    the host, as the NumPy array of `dtype` that :func:`placed` will move."""
    if is_host_data(data):
        host = host_cast(host_numeric(data, name), backend, dtype)
        if host is not None:
            return host
    return to_device(data, backend, name, dtype)


def placed(data: Data, backend: Backend) -> Data:
    """`data` with its :func:`staged` host arrays moved to `backend` (one
    transfer each)."""
    return Data(*(moved(a, backend) for a in (data.x, data.y, data.sample_weight)))


def moved(a: Array | None, backend: Backend) -> Array | None:
    """A :func:`staged` array on `backend`'s device."""
    return asarray(a, backend) if is_host_data(a) else a


class Checks:
    """Collects boolean scalars that must all be False and raises the first
    that is not, in the order they came. Device flags are read in one
    transfer (:func:`read_scalars`): one synchronization per ``fit``, not
    one per check; host flags (NumPy's) are known already."""

    def __init__(self) -> None:
        self.flags: list[Array | bool] = []
        self.messages: list[str] = []

    def fail_if(self, flag: Array | bool, message: str) -> None:
        self.flags.append(bool(flag) if is_host_data(flag) else flag)
        self.messages.append(message)

    def raise_first(self) -> None:
        """Raise the first failed check; the checks so far are then done."""
        on_device = [flag for flag in self.flags if not isinstance(flag, bool)]
        read = iter(read_scalars(on_device) if on_device else [])
        for flag, message in zip(self.flags, self.messages, strict=True):
            if flag if isinstance(flag, bool) else next(read):
                raise ValueError(message)
        self.flags, self.messages = [], []


def features(x: Any, spec: Spec, checks: Checks | None, name: str = "x") -> Array:
    """`x` as a 2-D, non-empty array of the model's dtype, :func:`staged`;
    NaN/inf are flagged in `checks` (None skips the value check)."""
    x = staged(x, spec.backend, name, spec.dtype)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if checks is not None:
        checks.fail_if(any_nonfinite(x), f"{name} contains NaN or infinite values")
    return x


def targets(y: Any, spec: Spec, n: int, checks: Checks, name: str = "y") -> Array:
    """`y` checked against the loss's task and the model's outputs."""
    backend, task, k = spec.backend, spec.task, spec.n_outputs
    if task == "sparse":
        y = _sparse_labels(y, backend, k, checks, name)
    else:
        y = staged(y, backend, name, spec.dtype)
        xp = namespace(y)
        if y.ndim == 1 and k == 1:
            y = xp.reshape(y, (-1, 1))
        if y.ndim != 2 or int(y.shape[1]) != k:
            raise ValueError(
                f"{name} has shape {tuple(y.shape)} but the model outputs "
                f"(n_samples, {k})"
                + (" (one-hot targets; use SparseCategoricalCrossentropy for integer labels)"
                   if task == "categorical" else "")
            )  # fmt: skip
        checks.fail_if(any_nonfinite(y), f"{name} contains NaN or infinite values")
        if task in ("binary", "categorical"):
            checks.fail_if(
                xp.any((y < 0) | (y > 1)), f"{name} targets of {spec.loss_name} must be in [0, 1]"
            )
    if int(y.shape[0]) != n:
        raise ValueError(f"x has {n} samples but {name} has {int(y.shape[0])}")
    return y


def _sparse_labels(y: Any, backend: Backend, k: int, checks: Checks, name: str) -> Array:
    """Class indices as int32, :func:`staged`. Float labels (1.0, 2.0) are
    checked before they are cast (NaN, inf, fractions and huge values would
    warn or wrap around in the cast): on the host when they come from the
    host, else on the device."""
    y = _whole_labels(staged(y, backend, name), k, checks, name)
    xp = namespace(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = xp.reshape(y, (-1,))
    if y.ndim != 1:
        raise ValueError(
            f"{name} must hold integer labels of shape (n_samples,), got {tuple(y.shape)}"
        )
    return y


def _whole_labels(y: Array, k: int, checks: Checks, name: str) -> Array:
    """Check labels in [0, k) and return them as int32; float labels are
    checked before the cast, and the bad ones replaced so the cast is quiet."""
    xp = namespace(y)
    if xp.isdtype(y.dtype, "bool"):
        y = xp.astype(y, xp.int32)
    if xp.isdtype(y.dtype, "integral"):  # one reduction; a bad label stops all before use
        checks.fail_if(labels_outside(y, k), _range_message(name, k))
        return y if y.dtype == xp.int32 else xp.astype(y, xp.int32)
    in_range = (y >= 0) & (y < k)  # False for NaN
    if xp.isdtype(y.dtype, "real floating"):
        checks.fail_if(xp.any(~xp.isfinite(y)), f"{name} contains NaN or infinite values")
        checks.fail_if(
            xp.any(in_range & (y != xp.floor(y))), f"{name} labels must be whole numbers"
        )
    checks.fail_if(xp.any(~in_range), _range_message(name, k))
    return xp.astype(xp.where(in_range, y, xp.zeros_like(y)), xp.int32)


def _range_message(name: str, k: int) -> str:
    return f"{name} labels must be in [0, {k}) for the {k} outputs of the last layer"


def weights(
    sample_weight: Any,
    class_weight: Mapping[int, float] | None,
    y: Array,
    spec: Spec,
    checks: Checks,
) -> Array | None:
    """The per-sample weights: `sample_weight` times the class weights."""
    n = int(y.shape[0])
    w = None
    if sample_weight is not None:
        w = staged(sample_weight, spec.backend, "sample_weight", spec.dtype)
        if tuple(w.shape) != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {tuple(w.shape)}")
        xp = namespace(w)
        checks.fail_if(xp.any(~xp.isfinite(w) | (w < 0)), "sample_weight must be finite and >= 0")
    if class_weight is not None:
        cw = class_weights(class_weight, y, spec)
        if w is not None and is_host_data(w) != is_host_data(cw):  # one staged, one not
            w, cw = moved(w, spec.backend), moved(cw, spec.backend)
        w = cw if w is None else w * cw
    return w


def class_weights(class_weight: Mapping[int, float], y: Array, spec: Spec) -> Array:
    """Each sample's weight from a ``{class index: weight}`` table."""
    if not isinstance(class_weight, Mapping):
        raise TypeError("class_weight must be a dict {class index: weight}")
    xp = namespace(y)
    k = max(spec.n_outputs, 2)
    table = [1.0] * k
    for cls, weight in class_weight.items():
        if not (isinstance(cls, int) and 0 <= cls < k):
            raise ValueError(f"class_weight key {cls!r} is not a class index in [0, {k})")
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"class_weight[{cls}] must be finite and >= 0, got {weight!r}")
        table[cls] = float(weight)
    table_arr = staged(table, spec.backend, "class_weight", spec.dtype)
    if y.ndim == 1:  # sparse labels
        classes = y
    elif int(y.shape[1]) == 1:  # binary targets
        classes = xp.astype(y[:, 0] > 0.5, xp.int32)
    else:  # one-hot
        classes = xp.argmax(y, axis=1)
    if is_host_data(table_arr) != is_host_data(classes):  # one of them staged, one not
        table_arr, classes = moved(table_arr, spec.backend), moved(classes, spec.backend)
    return namespace(table_arr).take(table_arr, classes, axis=0)


def labelled(
    x: Array, y: Any, sample_weight: Any, class_weight: Any, spec: Spec, checks: Checks, suffix=""
) -> Data:
    """Checked features `x` with their targets and weights, as one
    :class:`Data` (host arrays still :func:`staged`); raises the first failed
    value check (one device read for all of them)."""
    ys = targets(y, spec, int(x.shape[0]), checks, "y" + suffix)
    if class_weight is not None:  # the labels index the class table: check them first
        checks.raise_first()
    w = weights(sample_weight, class_weight, ys, spec, checks)
    checks.raise_first()
    return Data(x, ys, w)


def ready(x: Any, y: Any, spec: Spec, input_dim: int) -> Data | None:
    """``(x, y)`` as they are, when they already are what the step takes
    (the model's library, device and dtype, the right shapes) and their
    values pass one fused check (finite features, targets or labels in
    range): ``train_on_batch``'s fast path. None otherwise, and the full
    checks run (and say what is wrong)."""
    try:
        xp = namespace(x, y)
    except TypeError:
        return None
    backend, k = spec.backend, spec.n_outputs
    if xp is not backend.xp or x.dtype != spec.dtype or x.ndim != 2 or x.shape[0] == 0:
        return None
    if type(x) is not _array_type(backend) or type(y) is not type(x):  # no subclasses
        return None
    n = int(x.shape[0])
    if y.ndim == 0 or int(x.shape[1]) != input_dim or int(y.shape[0]) != n:
        return None
    if device_of(x) != backend.device:
        return None
    if spec.task == "sparse":
        if y.ndim != 1 or y.dtype not in (xp.int32, xp.int64):  # as the full checks cast to
            return None
        return None if flagged_batch(x, y, k) else Data(x, y)
    if y.dtype != spec.dtype or tuple(y.shape) not in ((n, k), (n,) * (k == 1)):
        return None
    bad = maybe_nonfinite(x) | maybe_nonfinite(y)
    if spec.task in ("binary", "categorical"):
        bad = bad | (reduce_max(-y, axis=None) > 0) | (reduce_max(y, axis=None) > 1)
    return None if bool(to_numpy(bad)) else Data(x, xp.reshape(y, (n, k)))


_ARRAY_TYPES: dict[tuple[int, str], type] = {}


def _array_type(backend: Backend) -> type:
    """The exact array type of `backend` (subclasses such as ``np.matrix``
    take the full checks)."""
    key = (id(backend.xp), str(backend.device))
    found = _ARRAY_TYPES.get(key)
    if found is None:
        found = _ARRAY_TYPES[key] = type(backend.xp.zeros(0, device=backend.device))
    return found
