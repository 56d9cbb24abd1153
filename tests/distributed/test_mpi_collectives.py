"""MPICommunicator's collectives, shard and sync_model on every backend,
with as many ranks as the job has (one outside mpiexec).

Every rank builds the inputs of every other rank from its rank number, so
each can compute the expected result on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import _backend, distributed
from xpnet.distributed import Communicator, check_consistent, shard, sync_model


def inputs_of(rank):
    """Host arrays of rank `rank`: float64 and float32, 0-d, empty."""
    return [
        np.arange(6.0).reshape(2, 3) * (rank + 1) + 0.25 * rank,
        np.full(4, rank + 1.0, dtype=np.float32),
        np.asarray(2.0 * rank - 1.0),
        np.zeros((0, 3)),
    ]


def on(placement, hosts):
    return [_backend.asarray(h, placement) for h in hosts]


def check_placed(outs, like):
    assert len(outs) == len(like)
    for out, ref in zip(outs, like, strict=True):
        assert _backend.backend_of(out) == _backend.backend_of(ref)
        assert out.dtype == ref.dtype
        assert tuple(out.shape) == tuple(ref.shape)


def test_the_communicator_follows_the_protocol(comm):
    assert isinstance(comm, Communicator)
    assert 0 <= comm.rank < comm.size
    assert repr(comm).startswith(f"MPICommunicator(rank={comm.rank}, size={comm.size}")


# --------------------------------------------------------------------------
# allreduce_mean / allreduce_sum
# --------------------------------------------------------------------------


def test_allreduce_mean_averages_over_the_ranks(comm, placement):
    given = on(placement, inputs_of(comm.rank))
    outs = comm.allreduce_mean(given)
    again = comm.allreduce_mean(on(placement, inputs_of(comm.rank + 7)))  # reuses the buffers
    expected = [
        np.mean([inputs_of(r)[i] for r in range(comm.size)], axis=0).astype(h.dtype)
        for i, h in enumerate(inputs_of(0))
    ]
    check_placed(outs, given)
    for out, want in zip(outs, expected, strict=True):
        np.testing.assert_allclose(xn.to_numpy(out), want, rtol=1e-6)
    for g, h in zip(given, inputs_of(comm.rank), strict=True):  # inputs untouched
        np.testing.assert_array_equal(xn.to_numpy(g), h)
    assert len(again) == len(outs)


def test_allreduce_mean_of_float64_is_exact(comm, placement):
    given = on(placement, [np.arange(5.0) * 2.0**comm.rank])
    (out,) = comm.allreduce_mean(given)
    expected = np.arange(5.0) * sum(2.0**r for r in range(comm.size)) / comm.size
    np.testing.assert_array_equal(xn.to_numpy(out), expected)


def test_allreduce_mean_of_nothing(comm):
    assert comm.allreduce_mean([]) == []


def test_allreduce_mean_refuses_integers(two_ranks):
    with pytest.raises(TypeError, match="floating"):
        two_ranks.allreduce_mean([np.arange(3)])


def test_allreduce_sum_of_numbers(comm):
    total = comm.allreduce_sum(comm.rank + 1)
    half = comm.allreduce_sum(0.5 * (comm.rank + 1))
    n = comm.size
    assert total == n * (n + 1) // 2 and isinstance(total, int)
    assert half == 0.25 * n * (n + 1) and isinstance(half, float)


def test_allreduce_sum_of_an_array(comm, placement):
    given = _backend.asarray(np.array([1.0, 2.0, 3.0]) * (comm.rank + 1), placement, "float32")
    out = comm.allreduce_sum(given)
    check_placed([out], [given])
    weight = comm.size * (comm.size + 1) / 2
    np.testing.assert_allclose(xn.to_numpy(out), np.array([1.0, 2.0, 3.0]) * weight)


def test_allreduce_sum_of_host_integers(comm):
    out = comm.allreduce_sum(np.array([comm.rank, 1], dtype=np.int64))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [comm.size * (comm.size - 1) // 2, comm.size])


# --------------------------------------------------------------------------
# broadcast
# --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["first", "last"])
def test_broadcast_gives_the_roots_values(comm, placement, which):
    root = 0 if which == "first" else comm.size - 1
    given = on(placement, inputs_of(comm.rank))
    outs = comm.broadcast(given, root=root)
    check_placed(outs, given)
    for out, want in zip(outs, inputs_of(root), strict=True):
        np.testing.assert_array_equal(xn.to_numpy(out), want)


def test_broadcast_refuses_other_shapes_on_every_rank(two_ranks):
    with pytest.raises(ValueError, match="same shapes and dtypes"):
        two_ranks.broadcast([np.zeros(3 + two_ranks.rank)])


@pytest.mark.parametrize(("root", "error"), [(-1, ValueError), (99, ValueError), (0.0, TypeError)])
def test_broadcast_refuses_a_bad_root(comm, root, error):
    with pytest.raises(error, match="root"):
        comm.broadcast([np.zeros(2)], root=root)


def test_counters_measure_the_collectives(comm):
    calls, seconds = comm.calls, comm.collective_seconds
    comm.allreduce_mean([np.ones(10)])
    comm.barrier()
    assert comm.calls == calls + 2
    assert comm.collective_seconds >= seconds
    assert 0.0 <= comm.mpi_seconds <= comm.collective_seconds


@pytest.fixture(scope="module")
def cuda_aware(comm):
    from xpnet.distributed import MPICommunicator

    return MPICommunicator(cuda_aware=True)


def test_cuda_aware_with_host_arrays_stages_through_the_host(cuda_aware, placement):
    given = on(placement, inputs_of(cuda_aware.rank))
    outs = cuda_aware.allreduce_mean(given)
    check_placed(outs, given)
    want = np.mean([inputs_of(r)[0] for r in range(cuda_aware.size)], axis=0)
    np.testing.assert_allclose(xn.to_numpy(outs[0]), want)


def test_the_device_path_hands_the_arrays_to_mpi_without_the_host(cuda_aware, monkeypatch):
    # No GPU here: let CPU torch tensors stand in for CUDA arrays (mpi4py
    # reads both through DLPack), and make any host staging fail.
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(distributed, "_is_cuda", lambda x: isinstance(x, torch.Tensor))
    monkeypatch.setattr(distributed, "to_numpy", None)
    given = [torch.asarray(h) for h in inputs_of(cuda_aware.rank)]
    means = cuda_aware.allreduce_mean(given)
    roots = cuda_aware.broadcast(given, root=cuda_aware.size - 1)
    total = cuda_aware.allreduce_sum(torch.ones(3, dtype=torch.float64))
    monkeypatch.undo()
    check_placed(means, given)
    check_placed(roots, given)
    for i, (mean, root) in enumerate(zip(means, roots, strict=True)):
        want = np.mean([inputs_of(r)[i] for r in range(cuda_aware.size)], axis=0)
        np.testing.assert_allclose(mean.numpy(), want, rtol=1e-6)
        np.testing.assert_array_equal(root.numpy(), inputs_of(cuda_aware.size - 1)[i])
    np.testing.assert_array_equal(total.numpy(), np.full(3, float(cuda_aware.size)))


# --------------------------------------------------------------------------
# shard, check_consistent
# --------------------------------------------------------------------------


def test_shards_tile_the_rows(comm, placement):
    n = 3 * comm.size + 1
    host = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    part = shard(_backend.asarray(host, placement), comm)
    start, stop = comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size
    # every rank writes its rows into zeros; the sum over ranks is the whole
    mine = np.zeros_like(host)
    mine[start:stop] = xn.to_numpy(part)
    whole = comm.allreduce_sum(mine)
    assert _backend.backend_of(part) == placement
    np.testing.assert_array_equal(xn.to_numpy(part), host[start:stop])
    np.testing.assert_array_equal(whole, host)


def test_check_consistent_passes_equal_values(comm):
    check_consistent(comm, batches=4, epochs=3)


def test_check_consistent_refuses_different_values_on_every_rank(two_ranks):
    with pytest.raises(ValueError, match="same batches on every rank"):
        check_consistent(two_ranks, epochs=3, batches=4 + two_ranks.rank)


# --------------------------------------------------------------------------
# sync_model
# --------------------------------------------------------------------------


def make_model(placement, seed, units=4, optimizer=None):
    model = xn.Sequential(
        [
            xn.layers.Dense(units, activation="relu", input_dim=3),
            xn.layers.BatchNormalization(),
            xn.layers.Dense(2),
        ],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
        seed=seed,
    )
    model.compile(loss="mse", optimizer=optimizer or xn.optimizers.Adam(learning_rate=0.01))
    return model


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, 3)), rng.normal(size=(8, 2))


def test_sync_model_copies_the_roots_weights_and_optimizer_state(comm, agree, placement):
    model = make_model(placement, seed=comm.rank)  # different weights on every rank
    if comm.rank == 0:  # only the root has stepped: only it has Adam's slots
        for seed in range(2):
            model.train_on_batch(*batch(seed))
    sync_model(model, comm)
    state = model.optimizer.get_state()
    slots = [a for key in sorted(state["slots"]) for a in state["slots"][key].values()]
    same_weights = agree(model.get_weights())
    same_slots = agree(slots)
    iterations = comm.allreduce_sum(state["iterations"])
    model.train_on_batch(*batch(5))  # the same data everywhere: the same step
    same_after_a_step = agree(model.get_weights())
    assert same_weights and same_slots and same_after_a_step
    assert iterations == 2 * comm.size
    assert len(slots) == 2 * 2 * 3  # m and v for 2 kernels, 2 biases, gamma, beta
    kernel = model.layers[0].params["kernel"]
    assert _backend.backend_of(kernel) == placement


def test_sync_model_refuses_another_architecture(two_ranks):
    placement = _backend.get_backend("numpy")
    model = make_model(placement, seed=0, units=4 + two_ranks.rank)
    before = model.get_weights()
    with pytest.raises(ValueError, match="does not match rank 0"):
        sync_model(model, two_ranks)
    for w, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, b)


def test_sync_model_refuses_another_optimizer(two_ranks):
    placement = _backend.get_backend("numpy")
    optimizer = xn.optimizers.Adam() if two_ranks.rank == 0 else xn.optimizers.SGD()
    model = make_model(placement, seed=0, optimizer=optimizer)
    with pytest.raises(ValueError, match="does not match rank 0"):
        sync_model(model, two_ranks)
