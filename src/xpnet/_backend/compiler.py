"""Step compilers: the libraries that can turn a whole training step, written
as a pure function of arrays, into one device program.

Only JAX has one that pays off here (``jax.jit``, with ``lax.scan`` to run
several steps per call). PyTorch's ``torch.compile`` was measured on this
project's step and did not win at any benchmark size (see the benchmarks
page), so PyTorch steps stay eager. Everything library-specific about
compiling lives in this module; the step plan (``xpnet._plan``) only asks
for :func:`compiler_for` and calls what it returns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xpnet._backend.selection import Backend


# XLA:CPU hands the matrix products of its YNNPACK fusions partly to the
# thread that starts a program, next to its own worker threads: on a machine
# with few cores they fight for them. Without these fusions the products
# run on the workers alone; measured on 2 cores, a step of the benchmark's
# M model went from 2.8 to 2.4 ms (and S 63 to 57 µs, L 203 to 207 ms). The
# option is experimental: where jaxlib does not know it, it is dropped.
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


class JaxCompiler:
    """``jax.jit`` with donated state, ``lax.scan`` over stacked batches and
    ``lax.dynamic_slice`` to cut batches inside the program."""

    options_refused = False  # this jaxlib does not know CPU_OPTIONS

    def __init__(self, cpu: bool = False) -> None:
        import jax

        self.jax, self.cpu = jax, cpu

    def jit(self, fn: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
        """`fn` compiled once per argument shape; the arguments at positions
        `donate` give their buffers to the result (no copy of the state)."""
        plain = self.jax.jit(fn, donate_argnums=tuple(donate))
        if not self.cpu or JaxCompiler.options_refused:
            return plain
        try:
            tuned = self.jax.jit(fn, donate_argnums=tuple(donate), compiler_options=CPU_OPTIONS)
        except TypeError:  # a JAX without compiler_options
            JaxCompiler.options_refused = True
            return plain

        def call(*args: Any) -> Any:
            if not JaxCompiler.options_refused:
                try:
                    return tuned(*args)
                except RuntimeError as exc:  # refused when compiling: nothing ran
                    refused = str(exc)
                    if "compile option" not in refused and not any(
                        o in refused for o in CPU_OPTIONS
                    ):
                        raise
                    JaxCompiler.options_refused = True
            return plain(*args)

        return call

    def scan(self, body: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any) -> Any:
        """``carry = body(carry, x)[0]`` for each leading slice `x` of `xs`,
        as one loop in the program; returns the final carry."""
        return self.jax.lax.scan(body, carry, xs)[0]

    def rows(self, a: Any, start: Any, size: int) -> Any:
        """``a[start:start + size]`` for a traced `start` (a static `size`)."""
        return self.jax.lax.dynamic_slice_in_dim(a, start, size, axis=0)

    def zeros_like_result(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Shape structs of what ``fn(*args)`` returns, found without running it."""
        return self.jax.eval_shape(fn, *args)

    def like(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A stand-in for an array of `shape` and `dtype` when tracing."""
        return self.jax.ShapeDtypeStruct(shape, dtype)

    def zeros_like(self, like: Any, on: Any) -> Any:
        """Fresh zeros for every leaf of `like` (arrays or shape structs),
        committed to the device of the array `on`: a program's results are,
        and arguments placed differently would compile it a second time."""
        zeros = self.jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), like)
        return self.jax.device_put(zeros, on.sharding)  # made on the host: nothing to compile

    def stack(self, values: Sequence[float] | float, dtype: Any, on: Any) -> Any:
        """Host scalars as one array of `dtype` (per-step learning rates,
        batch starts) on the device of the array `on`."""
        return self.jax.device_put(np.asarray(values, dtype=dtype), on.sharding)


def is_traced(x: Any) -> bool:
    """Whether `x` is a placeholder of a program being traced (it must not
    be kept beyond the trace, in a cache say)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def compiler_for(backend: Backend) -> JaxCompiler | None:
    """The step compiler for `backend`, or None where steps run eagerly."""
    if backend.name == "jax":
        return JaxCompiler(cpu=getattr(backend.device, "platform", None) == "cpu")
    return None
