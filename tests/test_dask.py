"""Dask arrays through fit / evaluate / predict (``xpnet._dask``).

The first part tests the streaming machinery on NumPy-backed Dask arrays:
checks, block order, one graph per block, prefetch of exactly one block,
clean shutdown, errors. The second part compares training on Dask arrays
with training on the same data in memory, on every backend. The last part
measures memory in a subprocess.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import weakref

import numpy as np
import pytest

import xpnet as xn
from xpnet import _dask

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
from dask.callbacks import Callback  # noqa: E402

# Generous: only a failing test ever waits this long.
WAIT = 30.0


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("xpnet-dask-")]


class Recorder:
    """A Dask array over `source` whose blocks say when they are computed
    (and can be held back, or made to fail)."""

    def __init__(self, source: np.ndarray, rows: int, fail_at: int | None = None) -> None:
        self.source = source
        self.n_blocks = -(-source.shape[0] // rows)
        self.started = [threading.Event() for _ in range(self.n_blocks)]
        self.finished = [threading.Event() for _ in range(self.n_blocks)]
        self.gates: dict[int, threading.Event] = {}
        self.calls: list[int] = []
        self.threads: list[str] = []
        self.alive: list[weakref.ref] = []
        self.fail_at = fail_at
        chunks = (rows, *source.shape[1:])
        self.array = da.from_array(source, chunks=chunks).map_blocks(
            self._block, dtype=source.dtype, meta=source[:0]
        )

    def _block(self, block, block_info=None):
        i = block_info[0]["chunk-location"][0]
        self.calls.append(i)
        self.threads.append(threading.current_thread().name)
        self.started[i].set()
        if i in self.gates:
            assert self.gates[i].wait(WAIT)
        if i == self.fail_at:
            raise ZeroDivisionError(f"block {i} failed")
        out = block.copy()
        self.alive.append(weakref.ref(out))
        self.finished[i].set()
        return out

    def n_alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.alive)


def data(n=60, f=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, f)), rng.normal(size=n)


# --------------------------------------------------------------------------
# is_dask_array and the import
# --------------------------------------------------------------------------


def test_is_dask_array():
    x, _ = data()
    assert _dask.is_dask_array(da.from_array(x))
    assert not _dask.is_dask_array(x)
    assert not _dask.is_dask_array([1.0, 2.0])


def test_importing_xpnet_and_checking_host_data_do_not_import_dask():
    code = (
        "import sys, numpy as np, xpnet\n"
        "from xpnet import _dask\n"
        "assert not _dask.is_dask_array(np.ones(3))\n"
        "print(sorted(m for m in sys.modules if m == 'dask' or m.startswith('dask.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# Blocks: checks and layout
# --------------------------------------------------------------------------


def test_blocks_layout_and_lazy_rechunk():
    x, y = data(n=50)
    rec = Recorder(x, rows=10)
    dx = rec.array.rechunk((10, 1))  # one chunk per feature: rechunked to one
    dy = da.from_array(y, chunks=7)  # other row chunks: rechunked to x's
    blocks = _dask.Blocks(dx, dy, np.arange(50.0))
    layout = (blocks.n, blocks.n_blocks, blocks.block_rows, blocks.n_features)
    assert layout == (50, 5, (10,) * 5, 4)
    assert blocks.x.chunks == ((10,) * 5, (4,))
    assert blocks.y.chunks == ((10,) * 5,)
    assert blocks.sample_weight.chunks == ((10,) * 5,)
    assert rec.calls == []  # nothing computed before the first epoch


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda x, y: ([x], None), TypeError, "x must be a dask array"),
        (lambda x, y: (da.ones((4, 3, 2)), None), ValueError, r"x must have shape .* \(4, 3, 2\)"),
        (lambda x, y: (da.ones(4), None), ValueError, "x must have shape"),
        (lambda x, y: (da.ones((0, 3)), None), ValueError, "x is empty"),
        (
            lambda x, y: (da.from_array(x.astype(str)), None),
            TypeError,
            "x has dtype <U32",
        ),
        (
            lambda x, y: ((dx := da.from_array(x, chunks=10))[dx[:, 0] > 0], None),
            ValueError,
            r"x has unknown chunk sizes .*x\.compute_chunk_sizes\(\)",
        ),
        (
            lambda x, y: (da.from_array(x), y[:-1]),
            ValueError,
            r"x and y have different numbers of rows: 60 and 59",
        ),
        (
            lambda x, y: (da.from_array(x), da.from_array(y[:-1])),
            ValueError,
            "x and y have different numbers of rows: 60 and 59",
        ),
        (
            lambda x, y: (da.from_array(x), (dy := da.from_array(y))[dy > 0]),
            ValueError,
            r"y has unknown chunk sizes .*y\.compute_chunk_sizes\(\)",
        ),
        (lambda x, y: (da.from_array(x), 1.0), ValueError, "y must have one entry per row"),
    ],
)
def test_blocks_refuses_bad_input(make, error, match):
    x, y = data()
    bx, by = make(x, y)
    with pytest.raises(error, match=match):
        _dask.Blocks(bx, by)


def test_blocks_refuses_bad_sample_weight():
    x, y = data()
    with pytest.raises(ValueError, match="x and sample_weight have different numbers of rows"):
        _dask.Blocks(da.from_array(x), y, np.ones(61))


def test_known_chunks_after_compute_chunk_sizes_are_accepted_and_empty_ones_skipped():
    x, y = data(n=40)
    dx, dy = da.from_array(x, chunks=10), da.from_array(y, chunks=10)
    keep = da.from_array(np.arange(40) >= 20, chunks=10)  # blocks 0 and 1 end up empty
    fx, fy = dx[keep], dy[keep]
    fx.compute_chunk_sizes()
    fy.compute_chunk_sizes()
    blocks = _dask.Blocks(fx, fy)
    assert (blocks.n, blocks.n_blocks, blocks.block_rows) == (20, 2, (10, 10))
    got = list(blocks.epoch())
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), x[20:])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), y[20:])


# --------------------------------------------------------------------------
# epochs: content, order, one graph per block
# --------------------------------------------------------------------------


def test_blocks_are_exactly_the_source_with_host_targets_split_to_x_chunks():
    x, y = data(n=47)
    w = np.linspace(0.5, 1.5, 47)
    blocks = _dask.Blocks(da.from_array(x, chunks=(10, 2)), y.reshape(-1, 1), list(w))
    got = list(blocks.epoch())
    assert [b[0].shape for b in got] == [(10, 4)] * 4 + [(7, 4)]
    assert all(isinstance(a, np.ndarray) for b in got for a in b)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), y.reshape(-1, 1))
    np.testing.assert_array_equal(np.concatenate([b[2] for b in got]), w)


def test_without_targets_the_blocks_carry_none():
    x, _ = data(n=20)
    got = list(_dask.Blocks(da.from_array(x, chunks=5)).epoch())
    assert [(b[1], b[2]) for b in got] == [(None, None)] * 4


def test_epoch_follows_the_order_and_block_order_draws_from_the_generator():
    x, y = data(n=50)
    blocks = _dask.Blocks(da.from_array(x, chunks=10), da.from_array(y, chunks=10))
    order = _dask.block_order(np.random.default_rng(3), blocks.n_blocks)
    np.testing.assert_array_equal(order, np.random.default_rng(3).permutation(5))
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4] and order.tolist() != [0, 1, 2, 3, 4]
    got = list(blocks.epoch(order))
    for k, (xb, yb, _) in zip(order, got, strict=True):
        np.testing.assert_array_equal(xb, x[10 * k : 10 * k + 10])
        np.testing.assert_array_equal(yb, y[10 * k : 10 * k + 10])


@pytest.mark.parametrize("order", [[0, 1, 2], [0, 1, 2, 3, 3], [1, 2, 3, 4, 5]])
def test_epoch_refuses_an_order_that_is_not_a_permutation(order):
    x, _ = data(n=50)
    blocks = _dask.Blocks(da.from_array(x, chunks=10))
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(5\)"):
        blocks.epoch(order)


def test_x_y_and_weights_of_a_block_are_computed_in_one_graph():
    x, y = data(n=40)
    rec = Recorder(np.column_stack([x, y, np.ones(40)]), rows=10)
    # x, y and w all come from one upstream array: one compute per block
    # runs its upstream task once.
    dx, dy, dw = rec.array[:, :4], rec.array[:, 4], rec.array[:, 5]
    computes = []
    with Callback(start=lambda dsk: computes.append(1)):
        got = list(_dask.Blocks(dx, dy, dw).epoch())
    assert len(computes) == 4
    assert sorted(rec.calls) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), y)


# --------------------------------------------------------------------------
# prefetch: exactly one block ahead
# --------------------------------------------------------------------------


def test_the_next_block_is_computed_while_the_caller_holds_this_one_and_no_further():
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    it = _dask.Blocks(rec.array).epoch()
    for i in range(5):
        xb, _, _ = next(it)
        np.testing.assert_array_equal(xb, x[10 * i : 10 * i + 10])
        if i + 1 < 5:
            # prefetch is real: the next block is computed without being asked for
            assert rec.finished[i + 1].wait(WAIT), f"block {i + 1} was not prefetched"
        if i + 2 < 5:
            # and only one: a producer running ahead would start this at once
            assert not rec.started[i + 2].wait(0.2), f"block {i + 2} computed too early"
        # the caller's block and the prefetched one, nothing else...
        assert rec.n_alive() <= 2
        del xb
        # ...and the iterator keeps none it has handed over
        assert rec.n_alive() == (1 if i + 1 < 5 else 0)
    assert list(it) == []
    assert rec.calls == [0, 1, 2, 3, 4]


def test_the_iterator_keeps_no_block_it_has_handed_over():
    x, _ = data(n=30)
    rec = Recorder(x, rows=10)
    it = _dask.Blocks(rec.array).epoch()
    first = weakref.ref(next(it)[0])
    assert rec.finished[1].wait(WAIT)
    second = next(it)
    gc.collect()
    assert first() is None
    del second
    list(it)
    assert rec.n_alive() == 0


def test_the_prefetch_thread_uses_the_current_scheduler():
    x, _ = data(n=30)
    rec = Recorder(x, rows=10)
    with dask.config.set(scheduler="synchronous"):
        list(_dask.Blocks(rec.array).epoch())
    # the synchronous scheduler runs each block in the thread that asks
    assert all(name.startswith("xpnet-dask-prefetch") for name in rec.threads), rec.threads
    rec.threads.clear()
    list(_dask.Blocks(rec.array).epoch())
    assert all(name.startswith("xpnet-dask-compute") for name in rec.threads), rec.threads


# --------------------------------------------------------------------------
# shutdown and errors
# --------------------------------------------------------------------------


@pytest.fixture
def thread_count():
    """The number of threads before the test (after a warm-up epoch), and a
    check that the test leaves no xpnet thread behind."""
    x, _ = data(n=20)
    list(_dask.Blocks(da.from_array(x, chunks=10)).epoch())
    before = threading.active_count()
    yield before
    assert prefetch_threads() == []
    assert threading.active_count() == before


def test_closing_early_stops_the_thread(thread_count):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    it = _dask.Blocks(rec.array).epoch()
    next(it)
    assert threading.active_count() > thread_count
    it.close()  # returns once the thread has ended
    assert prefetch_threads() == []
    assert threading.active_count() == thread_count
    assert len(rec.calls) <= 2  # no block computed after the close


def test_closing_while_a_block_is_computed_waits_for_it_and_computes_no_other(thread_count):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    rec.gates[1] = threading.Event()
    it = _dask.Blocks(rec.array).epoch()
    next(it)
    assert rec.started[1].wait(WAIT)
    closer = threading.Thread(target=it.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waits for the block in flight...
    rec.gates[1].set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert rec.calls == [0, 1]  # ...and starts no other


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_in_the_consumer_stops_the_thread(thread_count, error):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    blocks = _dask.Blocks(rec.array)

    def train():
        for i, _block in enumerate(blocks.epoch()):
            if i == 1:
                raise error("stop")

    with pytest.raises(error, match="stop"):
        train()
    assert prefetch_threads() == []
    assert len(rec.calls) <= 3


def test_breaking_out_of_the_loop_stops_the_thread(thread_count):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    for _block in _dask.Blocks(rec.array).epoch():
        break
    gc.collect()
    assert prefetch_threads() == []
    assert len(rec.calls) <= 2


def test_an_error_computing_a_block_is_raised_in_the_caller(thread_count):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10, fail_at=2)
    it = _dask.Blocks(rec.array).epoch()
    next(it)
    next(it)
    with pytest.raises(ZeroDivisionError, match="block 2 failed"):
        next(it)
    assert prefetch_threads() == []
    assert list(it) == []
    assert rec.calls == [0, 1, 2]


def test_an_epoch_never_started_starts_no_thread(thread_count):
    x, _ = data(n=50)
    rec = Recorder(x, rows=10)
    it = _dask.Blocks(rec.array).epoch()
    assert prefetch_threads() == []
    del it
    assert rec.calls == []


# --------------------------------------------------------------------------
# the model on Dask arrays (every backend)
# --------------------------------------------------------------------------

N, F, B, ROWS = 96, 5, 8, 32  # 3 blocks of 4 batches each


def regression(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, F))
    y = np.column_stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 3]])
    return x, y


def make_model(placement, optimizer, metrics=None):
    model = xn.Sequential(
        [xn.layers.Dense(8, activation="tanh"), xn.layers.Dense(2)],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
        seed=1,
    )
    opt = {
        "sgd": lambda: xn.optimizers.SGD(0.05, momentum=0.9),
        "adam": lambda: xn.optimizers.Adam(0.01),
    }[optimizer]()
    model.compile(loss="mse", optimizer=opt, metrics=metrics)
    return model


def assert_same_weights(a, b, rtol=1e-12):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_on_dask_equals_fit_in_memory(placement, optimizer):
    x, y = regression()
    memory, streamed = make_model(placement, optimizer), make_model(placement, optimizer)
    h1 = memory.fit(x, y, epochs=3, batch_size=B, shuffle=False, verbose=0)
    dx, dy = da.from_array(x, chunks=(ROWS, 2)), da.from_array(y, chunks=(24, 2))
    h2 = streamed.fit(dx, dy, epochs=3, batch_size=B, shuffle=False, verbose=0)
    assert_same_weights(memory, streamed)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-12)
    assert len(h2.history["loss"]) == 3


def test_fit_on_dask_with_sample_weight_equals_fit_in_memory(placement):
    x, y = regression()
    w = np.linspace(0.2, 2.0, N)
    memory, streamed = make_model(placement, "sgd"), make_model(placement, "sgd")
    h1 = memory.fit(x, y, sample_weight=w, epochs=2, batch_size=B, shuffle=False, verbose=0)
    dx, dy = da.from_array(x, chunks=ROWS), da.from_array(y, chunks=ROWS)
    dw = da.from_array(w, chunks=16)
    h2 = streamed.fit(dx, dy, sample_weight=dw, epochs=2, batch_size=B, shuffle=False, verbose=0)
    assert_same_weights(memory, streamed)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-12)


def test_shuffled_fit_on_dask_is_reproducible_from_the_seed(placement):
    x, y = regression()
    dx, dy = da.from_array(x, chunks=ROWS), da.from_array(y, chunks=ROWS)
    a, b, c = (make_model(placement, "sgd") for _ in range(3))
    ha = a.fit(dx, dy, epochs=3, batch_size=B, shuffle=True, verbose=0)
    hb = b.fit(dx, dy, epochs=3, batch_size=B, shuffle=True, verbose=0)
    c.fit(dx, dy, epochs=3, batch_size=B, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert ha.history["loss"] == hb.history["loss"]
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0], rtol=1e-6)


def test_evaluate_on_dask_equals_evaluate_in_memory(placement):
    x, y = regression()
    model = make_model(placement, "adam", metrics=["mae", "mse"])
    model.fit(x, y, epochs=1, batch_size=B, verbose=0)
    expected = model.evaluate(x, y)
    got = model.evaluate(da.from_array(x, chunks=(20, 3)), da.from_array(y, chunks=ROWS))
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12)


def test_predict_on_dask_is_lazy_and_equals_predict_in_memory(placement):
    x, y = regression()
    model = make_model(placement, "sgd")
    model.fit(x, y, epochs=1, batch_size=B, verbose=0)
    rec = Recorder(x, rows=ROWS)
    out = model.predict(rec.array)
    assert isinstance(out, da.Array)
    assert out.shape == (N, 2) and out.chunks == ((ROWS,) * 3, (2,))
    assert out.dtype == np.float64
    assert rec.calls == []  # nothing computed yet
    got = out.compute()
    assert sorted(rec.calls) == [0, 1, 2]
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, xn.to_numpy(model.predict(x)), rtol=1e-12, atol=1e-14)


def test_fit_with_dask_validation_data_equals_in_memory(placement):
    x, y = regression()
    xv, yv = regression(seed=1)
    memory, streamed = make_model(placement, "sgd"), make_model(placement, "sgd")
    h1 = memory.fit(
        x, y, epochs=2, batch_size=B, shuffle=False, validation_data=(xv, yv), verbose=0
    )
    dx, dy = da.from_array(x, chunks=ROWS), da.from_array(y, chunks=ROWS)
    dxv, dyv = da.from_array(xv, chunks=40), da.from_array(yv, chunks=40)
    h2 = streamed.fit(
        dx, dy, epochs=2, batch_size=B, shuffle=False, validation_data=(dxv, dyv), verbose=0
    )
    np.testing.assert_allclose(h2.history["val_loss"], h1.history["val_loss"], rtol=1e-12)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-12)


def test_fit_on_dask_refuses_validation_split_and_changes_nothing():
    x, y = regression()
    model = make_model(xn._backend.get_backend("numpy"), "sgd")
    before = model.get_weights()
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(da.from_array(x, chunks=ROWS), y, validation_split=0.2, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_on_dask_builds_an_unbuilt_model_and_checks_features():
    x, _ = regression()
    model = xn.Sequential([xn.layers.Dense(3)], dtype="float64", seed=0)
    out = model.predict(da.from_array(x, chunks=ROWS))
    assert model.built and model.input_dim == F
    assert model.backend == "numpy"  # the blocks' library, never Dask's array namespace
    np.testing.assert_allclose(out.compute(), xn.to_numpy(model.predict(x)), rtol=1e-12)
    with pytest.raises(ValueError, match=r"expects 5 input features, got x of shape \(96, 4\)"):
        _dask.predict(model, da.from_array(x[:, :4]))


def test_predict_with_float32_model_gives_float32_blocks():
    x, _ = regression()
    model = xn.Sequential([xn.layers.Dense(3)], seed=0)
    out = _dask.predict(model, da.from_array(x, chunks=ROWS), batch_size=7)
    assert out.dtype == np.float32
    got = out.compute()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, xn.to_numpy(model.predict(x)), rtol=1e-6)


def test_predict_on_dask_under_the_threaded_scheduler_with_many_blocks():
    x, _ = regression()
    model = xn.Sequential([xn.layers.Dense(4, activation="relu"), xn.layers.Dense(2)], seed=0)
    model.compile(loss="mse", optimizer="sgd")
    out = _dask.predict(model, da.from_array(x, chunks=4))  # 24 blocks, shared model
    assert model.built and model.backend == "numpy"  # built and placed before any block
    with dask.config.set(scheduler="threads", num_workers=4):
        got = out.compute()
    np.testing.assert_allclose(got, xn.to_numpy(model.predict(x)), rtol=1e-6)


# --------------------------------------------------------------------------
# a distributed cluster (two worker processes)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        with distributed.Client(cluster) as c:
            yield c
    finally:
        cluster.close()


def test_predict_on_a_local_cluster(client):
    x, _ = regression()
    model = xn.Sequential([xn.layers.Dense(4, activation="tanh"), xn.layers.Dense(2)], seed=0)
    model.build(F)
    out = _dask.predict(model, da.from_array(x, chunks=16), batch_size=5)
    got = out.compute()  # the client is the default scheduler
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, xn.to_numpy(model.predict(x)), rtol=1e-6)
    workers = client.run(lambda: os.getpid())
    assert len(workers) == 2


def test_blocks_stream_from_a_local_cluster(client):
    x, y = regression()
    dx = da.from_array(x, chunks=ROWS).map_blocks(lambda b: b + 0.0)
    blocks = _dask.Blocks(dx, da.from_array(y, chunks=ROWS))
    got = list(blocks.epoch([2, 0, 1]))
    np.testing.assert_array_equal(np.concatenate([got[1][0], got[2][0], got[0][0]]), x)
    np.testing.assert_array_equal(np.concatenate([got[1][1], got[2][1], got[0][1]]), y)


def test_fit_on_a_local_cluster_equals_fit_in_memory(client):
    x, y = regression()
    backend = xn._backend.get_backend("numpy")
    memory, streamed = make_model(backend, "adam"), make_model(backend, "adam")
    memory.fit(x, y, epochs=2, batch_size=B, shuffle=False, verbose=0)
    dx, dy = da.from_array(x, chunks=ROWS), da.from_array(y, chunks=ROWS)
    streamed.fit(dx, dy, epochs=2, batch_size=B, shuffle=False, verbose=0)
    assert_same_weights(memory, streamed)


# --------------------------------------------------------------------------
# memory: streaming holds a few blocks, not the data
# --------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import dask.array as da
    import numpy as np
    import xpnet as xn
    from xpnet import _dask

    mode, total_mb, block_mb, features = sys.argv[1], *map(int, sys.argv[2:5])
    rows = block_mb * 2**20 // (4 * features)
    n = total_mb * 2**20 // (4 * features) // rows * rows
    w = np.linspace(-1, 1, features, dtype=np.float32)

    def data(n, rows, seed):
        x = da.random.default_rng(seed).random((n, features), chunks=(rows, -1), dtype=np.float32)
        return x, x @ w  # y shares x's blocks: one graph per block

    def model():
        m = xn.Sequential([xn.layers.Dense(16, activation="relu"), xn.layers.Dense(1)], seed=0)
        m.compile(loss="mse", optimizer=xn.optimizers.SGD(0.01))
        return m

    def train(m, x, y, batch):
        if mode == "fit":
            m.fit(x, y, epochs=1, batch_size=batch, shuffle=True, verbose=0)
            return
        for xb, yb, _ in _dask.Blocks(x, y).epoch(_dask.block_order(np.random.default_rng(0), x.numblocks[0])):
            for start in range(0, xb.shape[0], batch):
                m.train_on_batch(xb[start : start + batch], yb[start : start + batch])

    def status_mb(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

    train(model(), *data(4 * 4096, 4096, 1), 4096)  # warm up: imports, pools, caches
    # Linux keeps ru_maxrss across exec, so a child forked from a large parent
    # (pytest) starts with the parent's peak: reset this process's own peak
    # (VmHWM) instead, and measure from the memory in use now.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_mb("VmRSS:")
    x, y = data(n, rows, 0)
    start = time.perf_counter()
    train(model(), x, y, 8192)
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM:")
    block = rows * features * 4 / 2**20
    print(json.dumps({
        "mode": mode, "array_mb": n * features * 4 / 2**20, "block_mb": block,
        "blocks": n // rows, "baseline_mb": base, "peak_mb": peak, "growth_mb": peak - base,
        "growth_blocks": (peak - base) / block, "seconds": seconds,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def run_memory(mode: str, total_mb: int, block_mb: int, features: int = 128) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, mode, str(total_mb), str(block_mb), str(features)],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "XPNET_BACKEND"},
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    return figures


@pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="measures peak memory through Linux's /proc"
)
@pytest.mark.parametrize("mode", ["blocks", "fit"])
def test_streaming_480mb_holds_a_few_blocks(mode):
    # Blocks of 40 MB: above glibc's largest mmap threshold (32 MB), each is
    # its own mapping, returned to the system when freed, so the peak counts
    # the blocks alive, not blocks cached by the allocator.
    figures = run_memory(mode, total_mb=480, block_mb=40)
    assert figures["array_mb"] > 470 and figures["blocks"] == 12
    # Blocks alone: the caller's block, the prefetched one and, at the
    # handover, the next one being computed. fit adds the block's shuffled
    # copy and the checks' temporaries. Loading the data would take 12 blocks.
    limit = 3 if mode == "blocks" else 5
    assert figures["growth_mb"] < limit * figures["block_mb"] + 40, figures
