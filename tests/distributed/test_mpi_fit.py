"""Data-parallel ``fit(..., communicator=comm)`` against one process.

With ``s`` ranks, each training on its shard with ``batch_size=b``, every
step averages the gradients of ``s`` half batches: exactly the gradient of
one process's batch of ``s*b`` rows. The data are ordered so that the
shards' batches are the parts of the reference's batches: rank ``r``'s
``j``-th batch is the ``r``-th part of the reference's ``j``-th batch.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet.distributed import shard

CASES = [("numpy", None), ("array_api_strict", None), ("array_api_strict", "device1")]
PER_RANK, N_BATCHES, EPOCHS = 8, 4, 3


def make_model(backend, device, seed, optimizer):
    model = xn.Sequential(
        [xn.layers.Dense(8, activation="tanh", input_dim=5), xn.layers.Dense(3)],
        backend=backend,
        device=device,
        dtype="float64",
        seed=seed,
    )
    opt = (
        xn.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        if optimizer == "sgd"
        else xn.optimizers.Adam(learning_rate=0.01)
    )
    model.compile(
        loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=opt,
        metrics=["accuracy"],
    )
    return model


def global_data(size):
    """The reference's data (global batches in order) and the same rows
    reordered so that shard() gives each rank its part of every batch."""
    n = N_BATCHES * PER_RANK * size
    rng = np.random.default_rng(42)
    x = rng.normal(size=(n, 5))
    y = rng.integers(0, 3, size=n)
    order = np.arange(n).reshape(N_BATCHES, size, PER_RANK).transpose(1, 0, 2).reshape(-1)
    return (x, y), (x[order], y[order])


def backend_ids(case):
    return case[0] if case[1] is None else f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", CASES, ids=backend_ids)
def test_data_parallel_fit_equals_one_process_on_the_global_batches(comm, agree, case, optimizer):
    backend, device = case
    (x, y), (x_dist, y_dist) = global_data(comm.size)
    reference = make_model(backend, device, seed=0, optimizer=optimizer)
    ref_history = reference.fit(
        x, y, epochs=EPOCHS, batch_size=PER_RANK * comm.size, shuffle=False, verbose=0
    )
    # another seed on every rank: fit must start from rank 0's weights
    model = make_model(backend, device, seed=comm.rank, optimizer=optimizer)
    history = model.fit(
        shard(x_dist, comm),
        shard(y_dist, comm),
        epochs=EPOCHS,
        batch_size=PER_RANK,
        shuffle=False,
        verbose=0,
        communicator=comm,
    )
    identical = agree(model.get_weights())
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(history.history["loss"], ref_history.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(
        history.history["accuracy"], ref_history.history["accuracy"], rtol=1e-12
    )
    assert len(history.history["loss"]) == EPOCHS
    assert identical, "the ranks ended with different weights"
    assert model.optimizer.iterations == EPOCHS * N_BATCHES


def test_only_rank_0_reports_and_checkpoints(comm, capsys, tmp_path):
    (_, _), (x_dist, y_dist) = global_data(comm.size)
    model = make_model("numpy", None, seed=0, optimizer="sgd")
    path = tmp_path / f"rank{comm.rank}.xpnet"
    checkpoint = xn.callbacks.ModelCheckpoint(path, monitor="loss")
    capsys.readouterr()
    model.fit(
        shard(x_dist, comm),
        shard(y_dist, comm),
        epochs=2,
        batch_size=PER_RANK,
        shuffle=False,
        verbose=2,
        callbacks=[checkpoint],
        communicator=comm,
    )
    printed = capsys.readouterr().out
    if comm.rank == 0:
        assert "Epoch 2/2" in printed
        assert path.exists()
    else:
        assert printed == ""
        assert not path.exists()


def test_shards_with_different_batch_counts_are_refused_on_every_rank(two_ranks):
    comm = two_ranks
    rng = np.random.default_rng(0)
    rows = PER_RANK * (2 + comm.rank)  # 2 batches on rank 0, 3 on rank 1
    x, y = rng.normal(size=(rows, 5)), rng.integers(0, 3, size=rows)
    model = make_model("numpy", None, seed=0, optimizer="sgd")
    before = model.get_weights()
    with pytest.raises(ValueError, match="same"):
        model.fit(x, y, epochs=1, batch_size=PER_RANK, verbose=0, communicator=comm)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
