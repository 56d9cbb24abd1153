"""Fixtures of the data-parallel tests.

These tests run under MPI, every rank running the same tests in the same
order::

    mpiexec -n 2 python -m mpi4py -m pytest tests/distributed -q -p no:cacheprovider

and also as one plain process (size 1), where the tests that need two ranks
skip. ``python -m mpi4py`` turns an unhandled exception on one rank into an
``MPI_Abort`` of the whole job; inside pytest a failing test is handled, so
the tests make every collective call before their first assertion: a rank
that fails does not leave the other waiting. The backend fixtures
(``placement``, ``make``) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import _backend


@pytest.fixture(scope="session")
def comm():
    """The MPICommunicator over COMM_WORLD (size 1 outside mpiexec)."""
    pytest.importorskip("mpi4py", reason='mpi4py is not installed: pip install "xpnet[mpi]"')
    from xpnet.distributed import MPICommunicator

    return MPICommunicator()


@pytest.fixture
def two_ranks(comm):
    """Skip unless the job has at least two ranks."""
    if comm.size < 2:
        pytest.skip("needs at least 2 MPI ranks: mpiexec -n 2 python -m mpi4py -m pytest ...")
    return comm


@pytest.fixture
def agree(comm):
    """``agree(arrays)``: whether every rank holds bit-identical `arrays`
    (same dtypes, same values): collective, the same answer on every rank."""

    def agree(arrays) -> bool:
        hosts = [np.ascontiguousarray(_backend.to_numpy(a)) for a in arrays]
        roots = [_backend.to_numpy(a) for a in comm.broadcast(hosts, root=0)]
        same = all(
            a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
            for a, b in zip(hosts, roots, strict=True)
        )
        return comm.allreduce_sum(0 if same else 1) == 0

    return agree
