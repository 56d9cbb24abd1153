"""Backends: the only package that imports the array libraries.

Everything else in xpnet receives arrays and asks this package for their
namespace (``xp``), device and dtype. Each library's quirks live here:

* numpy     -- ``array_api_compat.numpy``; always available; device ``"cpu"``.
* cupy      -- ``array_api_compat.cupy``; usable only with a CUDA device.
* torch     -- ``array_api_compat.torch``; devices are ``torch.device``.
* jax       -- ``jax.numpy``; arrays are immutable, and float64 needs
  ``jax_enable_x64`` (we never let JAX downcast silently).
* array_api_strict -- the reference implementation; its non-default
  devices (``"device1"``) behave like a GPU: no implicit host conversion,
  no mixing of devices.

Host data (NumPy arrays, lists, Python scalars) is moved to a backend with
:func:`asarray`; device data comes back with :func:`to_numpy`. Random numbers
are always drawn on the host from a :class:`numpy.random.Generator`, so one
seed gives the same numbers on every backend.

One module per job; this file only re-exports them:

* ``registry``   -- the known backends, loading each library, which are usable
* ``namespaces`` -- which library an array belongs to (``namespace``)
* ``devices``    -- each library's devices and ``device=`` resolution
* ``selection``  -- the :class:`Backend` value and the default backend
* ``dtypes``     -- float dtypes, what each backend supports, NumPy's errstate
* ``transfers``  -- host <-> device moves
* ``fastpaths``  -- fused / in-place per-step operations, one class per library
* ``numpy_step`` -- the training step of a Dense stack as one flat NumPy loop
* ``files``      -- ``.npy`` read and write, never pickle
* ``rng``        -- the host random generator
* ``tracing``    -- ndonnx's recording arrays, for the ONNX export (loaded on use)
"""

from __future__ import annotations

from xpnet._backend import dtypes, registry, selection
from xpnet._backend.bookkeeping import (
    copy_array,
    copy_arrays,
    filled,
    full_like,
    read_scalars,
    take_rows,
)
from xpnet._backend.devices import device_of
from xpnet._backend.dtypes import (
    FLOAT_DTYPES,
    dtype_name,
    float_dtype,
    isdtype,
    quiet_float_errors,
)
from xpnet._backend.fastpaths import (
    add_scaled_,
    affine,
    any_nonfinite,
    dense_chain,
    flagged_batch,
    is_writeable,
    labels_outside,
    matmul,
    maybe_nonfinite,
    reduce_max,
    reduce_sum,
    relu_,
    relu_backward_,
    sparse_softmax_xent,
    sum_rows,
)
from xpnet._backend.files import read_npy, write_npy
from xpnet._backend.namespaces import backend_name, namespace
from xpnet._backend.registry import (
    BACKENDS,
    available_backends,
    describe_backends,
    library,
)
from xpnet._backend.rng import host_rng, is_host_rng, rng_restorer
from xpnet._backend.selection import (
    Backend,
    backend,
    backend_of,
    default_backend,
    get_backend,
    set_backend,
)
from xpnet._backend.transfers import (
    asarray,
    host_cast,
    host_numeric,
    is_device_array,
    is_host_data,
    synchronize,
    to_numpy,
)

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "Backend",
    "add_scaled_",
    "affine",
    "any_nonfinite",
    "asarray",
    "available_backends",
    "backend",
    "backend_name",
    "backend_of",
    "copy_array",
    "copy_arrays",
    "default_backend",
    "dense_chain",
    "describe_backends",
    "device_of",
    "dtype_name",
    "filled",
    "flagged_batch",
    "float_dtype",
    "full_like",
    "get_backend",
    "host_cast",
    "host_numeric",
    "host_rng",
    "is_device_array",
    "is_host_data",
    "is_host_rng",
    "is_writeable",
    "isdtype",
    "labels_outside",
    "library",
    "matmul",
    "maybe_nonfinite",
    "namespace",
    "quiet_float_errors",
    "read_npy",
    "read_scalars",
    "reduce_max",
    "reduce_sum",
    "relu_",
    "relu_backward_",
    "rng_restorer",
    "set_backend",
    "sparse_softmax_xent",
    "sum_rows",
    "synchronize",
    "take_rows",
    "to_numpy",
    "write_npy",
]

# Private names that tests reach for: they replace ``_load`` and ``_LOADED`` to
# act out a missing library (``registry._namespace_for`` reads both through
# this package for that reason) and reset ``_CURRENT`` between tests.
DEFAULT_FLOAT = dtypes.DEFAULT_FLOAT
_jax_x64_enabled = dtypes._jax_x64_enabled
_load = registry._load
_LOADED = registry._LOADED
_namespace_for = registry._namespace_for
_CURRENT = selection._CURRENT
