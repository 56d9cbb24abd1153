"""Dask arrays in ``fit``, ``evaluate`` and ``predict``: data larger than memory.

Training streams a Dask array one *block* (a chunk of rows) at a time:
:class:`Blocks` checks the arrays once and rechunks them lazily so that the
features, targets and sample weights of one block are computed together, in
one ``dask.compute`` call (one graph, so work they share upstream runs once).
While the model trains on one block, a background thread computes the next
one, and no further: at most two blocks are held in memory, the one in
training and the one prefetched. The block order is shuffled per epoch
(:func:`block_order`); the rows within a block are shuffled by the caller.

Prediction is lazy: :func:`predict` maps the model over the blocks and
returns a Dask array, which the user computes (or writes with ``to_zarr``)
when and where they like.

The work runs on whatever scheduler Dask would use for the arrays (a
``dask.config.set(scheduler=...)``, a ``distributed.Client``, else the
threaded one); nothing here chooses one. Dask is imported only when a Dask
array is met, so ``import xpnet`` does not load it.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from xpnet._backend import float_dtype, get_backend, host_numeric, namespace, to_numpy

# One block: features, then targets and sample weights (None when not given).
Block = tuple[Any, Any, Any]


def is_dask_array(x: Any) -> bool:
    """Whether `x` is a ``dask.array.Array`` (without importing Dask: an
    object cannot be one unless Dask is already loaded)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def block_order(rng: Any, n_blocks: int) -> Any:
    """A shuffled order of `n_blocks` blocks, drawn from the host
    ``numpy.random.Generator`` `rng` (the model's shuffle stream)."""
    return rng.permutation(n_blocks)


def _known(size: float) -> bool:
    return not (isinstance(size, float) and math.isnan(size))


def _check_known(a: Any, name: str) -> None:
    if not all(_known(s) for s in a.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {a.shape}), as after boolean indexing; "
            f"call {name}.compute_chunk_sizes() first"
        )


def _check_numeric(a: Any, name: str) -> None:
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {a.dtype}; xpnet trains on real numbers")


class Blocks:
    """Dask arrays ``x`` (and ``y``, ``sample_weight``) as a sequence of
    row blocks, streamed to the host one block at a time.

    Parameters
    ----------
    x : dask array of shape (n_samples, n_features)
        Its row chunks are the blocks (chunks with no rows are skipped); it
        is rechunked (lazily) to one chunk along the features.
    y, sample_weight : dask array, host array or None, of length n_samples
        Rechunked (lazily) to `x`'s row chunks; host arrays are split to them.

    Attributes
    ----------
    n : int
        Number of rows.
    n_blocks : int
        Number of (non-empty) blocks.
    block_rows : tuple of int
        Rows in each block, in stored order.
    n_features : int

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> blocks = Blocks(da.ones((10, 3), chunks=4), np.arange(10.0))
    >>> blocks.n_blocks, blocks.block_rows
    (3, (4, 4, 2))
    >>> [(xb.shape, yb[0]) for xb, yb, _ in blocks.epoch([2, 0, 1])]
    [((2, 3), np.float64(8.0)), ((4, 3), np.float64(0.0)), ((4, 3), np.float64(4.0))]
    """

    def __init__(self, x: Any, y: Any = None, sample_weight: Any = None) -> None:
        if not is_dask_array(x):
            raise TypeError(f"x must be a dask array, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n_samples, n_features), got shape {x.shape}")
        _check_known(x, "x")
        _check_numeric(x, "x")
        if x.shape[0] == 0:
            raise ValueError(f"x is empty: shape {x.shape}")
        self.x = x.rechunk({1: -1})
        rows = self.x.chunks[0]
        self.y = self._along(y, "y", rows)
        self.sample_weight = self._along(sample_weight, "sample_weight", rows)
        self._index = [i for i, r in enumerate(rows) if r > 0]
        self._chunks = _chunk_tasks(self.x, self.y, self.sample_weight)
        self.n = int(x.shape[0])
        self.n_features = int(x.shape[1])
        self.n_blocks = len(self._index)
        self.block_rows = tuple(int(rows[i]) for i in self._index)

    def _along(self, a: Any, name: str, rows: tuple[int, ...]) -> Any:
        """`a` as a Dask array whose row chunks are `rows`, or None."""
        if a is None:
            return None
        import dask.array as da

        if not is_dask_array(a):
            host = host_numeric(a, name)
            if host.ndim == 0:
                raise ValueError(f"{name} must have one entry per row of x, got a scalar")
            if host.shape[0] != sum(rows):
                raise ValueError(
                    f"x and {name} have different numbers of rows: {sum(rows)} and "
                    f"{host.shape[0]} ({name} of shape {host.shape})"
                )
            return da.from_array(host, chunks=(rows, *host.shape[1:]))
        if a.ndim == 0:
            raise ValueError(f"{name} must have one entry per row of x, got a 0-d dask array")
        _check_known(a, name)
        _check_numeric(a, name)
        if a.shape[0] != sum(rows):
            raise ValueError(
                f"x and {name} have different numbers of rows: {sum(rows)} and "
                f"{a.shape[0]} ({name} of shape {a.shape})"
            )
        return a.rechunk({0: rows, **{axis: -1 for axis in range(1, a.ndim)}})

    def compute_block(self, k: int, **scheduler: Any) -> Block:
        """Block `k` (0 <= k < n_blocks, stored order) as host arrays
        ``(x, y, sample_weight)``, the three computed in one graph."""
        import dask

        i = self._index[k]
        found = list(dask.compute(*(chunks[i] for chunks in self._chunks), **scheduler))
        xb = found.pop(0)
        yb = found.pop(0) if self.y is not None else None
        wb = found.pop(0) if self.sample_weight is not None else None
        return xb, yb, wb

    def epoch(self, order: Sequence[int] | None = None) -> Iterator[Block]:
        """The blocks in `order` (None: stored order; else a permutation of
        ``range(n_blocks)``, see :func:`block_order`), each as host arrays
        ``(x, y, sample_weight)``.

        The next block is computed in a background thread while the caller
        works on the current one. An error computing a block is raised here,
        in the caller. Closing the iterator (``close()``, or dropping it
        when the caller stops early) stops the thread: it finishes the
        block it may be computing and computes no other.
        """
        if order is None:
            indices = list(range(self.n_blocks))
        else:
            indices = [int(i) for i in order]
            if sorted(indices) != list(range(self.n_blocks)):
                raise ValueError(
                    f"order must be a permutation of range({self.n_blocks}) "
                    f"(the number of blocks), got {list(order)!r}"
                )
        return _prefetched(self.compute_block, indices, _current_scheduler(self.x))


def _chunk_tasks(*arrays: Any) -> list[Any]:
    """Each array's chunks along the rows, as Delayed objects.

    Computed together, a block's chunks form one graph in which work they
    share upstream is one task, run once. The graphs are left unoptimized:
    Dask's array optimization fuses shared work into each array's tasks
    (running it once per array), and a one-chunk array would be copied into
    a new array when computed, where a Delayed chunk computes to the chunk
    itself.
    """
    return [a.to_delayed(optimize_graph=False).ravel() for a in arrays if a is not None]


def _current_scheduler(x: Any) -> Callable[..., Any]:
    """The scheduler Dask would use for `x` from the calling thread (a
    ``Client`` made current in a context is not seen from other threads)."""
    import dask.base

    return dask.base.get_scheduler(collections=[x])


@contextlib.contextmanager
def _scheduler_options(schedule: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """``dask.compute`` keywords for `schedule`, valid in one thread.

    Dask's threaded scheduler gives every thread but the main one a pool of
    its own and frees it only on a later call from another thread; the
    prefetch thread brings a pool (of Dask's configured size) and shuts it
    down when it ends, so no idle threads outlive an epoch.
    """
    import dask
    import dask.threaded

    if schedule is not dask.threaded.get or dask.config.get("pool", None) is not None:
        yield {"scheduler": schedule}
        return
    from concurrent.futures import ThreadPoolExecutor

    pool_type = getattr(dask.threaded, "ContextAwareThreadPoolExecutor", ThreadPoolExecutor)
    workers = dask.config.get("num_workers", None) or dask.threaded.CPU_COUNT
    pool = pool_type(workers, thread_name_prefix="xpnet-dask-compute")
    try:
        yield {"scheduler": schedule, "pool": pool}
    finally:
        pool.shutdown(wait=True)


def _produce(
    compute: Callable[..., Block],
    indices: list[int],
    schedule: Callable[..., Any],
    results: queue.Queue[tuple[bool, Any]],
    credits: threading.Semaphore,
    stop: threading.Event,
) -> None:
    """The prefetch thread: compute each block once the consumer grants a
    credit for it; hand over the blocks, or the first error."""
    try:
        with _scheduler_options(schedule) as options:
            for k in indices:
                credits.acquire()
                if stop.is_set():
                    return
                results.put((True, compute(k, **options)))
    except BaseException as exc:  # re-raised in the consumer's thread
        results.put((False, exc))


def _prefetched(
    compute: Callable[..., Block], indices: list[int], schedule: Callable[..., Any]
) -> Iterator[Block]:
    """Yield ``compute(k)`` for each k in `indices`, computing one block ahead.

    The consumer grants the producer one credit per block: when it asks for
    block i it grants block i + 1, so the thread computes the next block
    during the caller's work on this one and never runs further ahead. The
    generator keeps no reference to a block it has yielded.
    """
    results: queue.Queue[tuple[bool, Any]] = queue.Queue()
    credits = threading.Semaphore(0)
    stop = threading.Event()
    thread = threading.Thread(
        target=_produce,
        args=(compute, indices, schedule, results, credits, stop),
        name=f"xpnet-dask-prefetch-{uuid.uuid4().hex[:8]}",
        daemon=True,  # never keeps the interpreter alive
    )
    credits.release()
    thread.start()
    try:
        for i in range(len(indices)):
            if i + 1 < len(indices):
                credits.release()
            yield _unwrap(results.get())
    finally:
        stop.set()
        credits.release()  # wakes a thread waiting for a credit, to see `stop`
        thread.join()


def _unwrap(item: tuple[bool, Any]) -> Block:
    ok, value = item
    if not ok:
        raise value
    return value


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


def _host_dtype(name: str) -> Any:
    """The host dtype of predictions for a model of dtype `name` (NumPy has
    no bfloat16: those come back as float32)."""
    return float_dtype(get_backend("numpy").xp, "float32" if name == "bfloat16" else name)


def _predict_block(block: Any, model: Any, batch_size: int | None, dtype: Any) -> Any:
    """The model's outputs for one block, on the host."""
    if block.shape[0] == 0:  # an empty chunk (after filtering) predicts nothing
        return get_backend("numpy").xp.empty((0, model.output_dim), dtype=dtype)
    out = model.predict(block, batch_size=batch_size)
    if model.dtype == "bfloat16":
        xp = namespace(out)
        out = xp.astype(out, xp.float32)
    return to_numpy(out)


def _place(model: Any, x: Any) -> None:
    """Build and place `model` now, on one row of zeros of `x`'s library,
    so that the blocks never race to do it (threads share the model)."""
    from dask.array.utils import meta_from_array

    try:
        xp = namespace(meta_from_array(x))
    except TypeError:  # an array type xpnet does not know; the blocks will say
        return
    model.predict(xp.zeros((1, int(x.shape[1])), dtype=x.dtype))


def predict(model: Any, x: Any, batch_size: int | None = None) -> Any:
    """`model`'s outputs for the Dask array `x`, as a lazy Dask array.

    Each block of rows goes through ``model.predict`` when the result is
    computed, on whichever scheduler computes it, and comes back as a NumPy
    array of the model's dtype; the result has `x`'s row chunks and one
    chunk of ``model.output_dim`` columns. The blocks use the model's
    weights as they are when the result is computed. An unbuilt model is
    built for `x`'s features now.
    """
    if not is_dask_array(x):
        raise TypeError(f"x must be a dask array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n_samples, n_features), got shape {x.shape}")
    _check_numeric(x, "x")
    if not _known(x.shape[1]):
        raise ValueError(
            f"x has an unknown number of features (shape {x.shape}); call "
            "x.compute_chunk_sizes() first"
        )
    if model.built and int(x.shape[1]) != model.input_dim:
        raise ValueError(
            f"layer {model.layers[0].name!r} expects {model.input_dim} input features, got "
            f"x of shape {x.shape}"
        )
    if model.placement is None or not model.built:
        _place(model, x)
    import dask

    x = x.rechunk({1: -1})
    k = int(model.output_dim)
    dtype = _host_dtype(model.dtype)
    # The model enters the graph once, as its own key: a distributed
    # cluster ships it to each worker once, not with every block.
    shared = dask.delayed(model, name=f"xpnet-model-{uuid.uuid4().hex}", traverse=False)
    return x.map_blocks(
        _predict_block,
        shared,
        batch_size,
        dtype,
        dtype=dtype,
        chunks=(x.chunks[0], (k,)),
        meta=get_backend("numpy").xp.empty((0, k), dtype=dtype),
        name=f"xpnet-predict-{uuid.uuid4().hex}",
    )


__all__ = ["Blocks", "block_order", "is_dask_array", "predict"]
