"""Checks that turn a damaged or malformed model file into a clear ValueError.

Everything here runs before anything large is allocated. The zip's
directory, ``config.json`` and the ``.npy`` headers (parsed here in plain
Python, without reading any array data) say how big every array is; those
sizes must agree with the bytes the file really holds, and the shapes with
the parameters the config implies. Only then are arrays read and layers
built, so a tiny file that declares ``Dense(10**9)`` is refused at once.
"""

from __future__ import annotations

import ast
import contextlib
import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from xpnet.layers import BatchNormalization, Dense, Dropout, Layer, PReLU

Shape = tuple[int, ...]

FORMAT = "xpnet-model"
VERSION = 1
CONFIG = "config.json"
MAX_CONFIG_BYTES = 16 * 2**20  # a config is a few kB; refuse to inflate more
_MAX_NPY_HEADER = 10_000  # numpy's own default limit (max_header_size)
_NPY_MAGIC = b"\x93NUMPY"
_FLOAT = re.compile(r"[<>=|]?f([248])")


def problem(path: str, text: str, kind: str = "model") -> ValueError:
    """The error for a file (a ``"model"`` or ``"weights"`` file) that is
    damaged or malformed."""
    return ValueError(f"{path!r} is a damaged or malformed xpnet {kind} file: {text}")


def array_member(i: int) -> str:
    return f"arrays/{i}.npy"


@contextlib.contextmanager
def zip_errors(path: str, member: str, kind: str = "model") -> Iterator[None]:
    """Report what the zip reader finds wrong (bad CRC, unsupported or
    encrypted entries, a stream cut short) as a ValueError naming `member`."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as exc:
        raise problem(path, f"member {member}: {exc}", kind) from exc
    except (NotImplementedError, RuntimeError) as exc:  # flag bits zipfile cannot read
        raise problem(path, f"member {member} cannot be read: {exc}", kind) from exc


# ---------------------------------------------------------------- the zip


def check_directory(
    archive: zipfile.ZipFile, path: str, file_size: int, kind: str = "model"
) -> None:
    """Entries are unique, unencrypted, and the bytes they declare are really there.

    Arrays must be stored uncompressed (as :func:`save_model` writes them),
    so the memory a member can ask for is bounded by the file's size; the
    declared sizes of all entries together must fit in the file too, so
    entries cannot share bytes to multiply it.
    """
    infos = archive.infolist()
    twice = sorted(name for name, n in Counter(i.filename for i in infos).items() if n > 1)
    if twice:
        raise problem(path, f"members appear more than once: {twice}", kind)
    total = 0
    for info in infos:
        _check_entry(info, path, file_size, kind)
        total += info.compress_size
    if total > file_size:
        raise problem(
            path, f"its members declare {total} bytes but the file holds only {file_size}", kind
        )


def _check_entry(info: zipfile.ZipInfo, path: str, file_size: int, kind: str) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        raise problem(path, f"member {name} is encrypted", kind)
    if info.header_offset < 0 or info.header_offset + info.compress_size > file_size:
        raise problem(path, f"member {name} lies outside the file (truncated?)", kind)
    if name == CONFIG and kind == "model":
        if info.file_size > MAX_CONFIG_BYTES:
            raise problem(
                path, f"{CONFIG} declares {info.file_size} bytes (at most {MAX_CONFIG_BYTES})"
            )
    elif info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise problem(
            path,
            f"member {name} is compressed or declares {info.file_size} bytes for "
            f"{info.compress_size} stored; xpnet stores arrays uncompressed",
            kind,
        )


def check_members(archive: zipfile.ZipFile, path: str, count: int) -> None:
    """The archive holds config.json and exactly the `count` listed arrays."""
    found = set(archive.namelist())
    expected = {CONFIG, *(array_member(i) for i in range(count))}
    missing = sorted(expected - found)
    if missing:
        raise problem(path, f"missing member(s) {missing} listed in {CONFIG}")
    extra = sorted(found - expected)
    if extra:
        raise problem(path, f"member(s) {extra} are not listed in {CONFIG}")


# ---------------------------------------------------------------- .npy headers


def npy_shape(
    stream: Any, info: zipfile.ZipInfo, where: str, path: str, kind: str = "model"
) -> Shape:
    """The shape in a ``.npy`` stream's header, read without its data.

    Only float16/32/64 arrays are accepted, and the shape must account for
    exactly the bytes the member holds, so that reading it later allocates
    no more than the file really contains.
    """
    head = stream.read(8)
    if len(head) < 8 or head[:6] != _NPY_MAGIC:
        raise problem(path, f"{where} is not a .npy array", kind)
    width = {1: 2, 2: 4, 3: 4}.get(head[6])
    if width is None:
        raise problem(path, f"{where} has unsupported .npy format version {head[6]}", kind)
    raw = stream.read(width)
    (length,) = struct.unpack("<H" if width == 2 else "<I", raw.ljust(width, b"\0"))
    if len(raw) < width or length > _MAX_NPY_HEADER:
        raise problem(path, f"{where} has a truncated or oversized .npy header", kind)
    text = stream.read(length)
    try:
        header = ast.literal_eval(text.decode("utf8" if head[6] == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise problem(path, f"{where} has an unreadable .npy header ({exc})", kind) from exc
    shape, itemsize = _header_fields(header, where, path, kind)
    count = 1
    for s in shape:
        count *= s
    held = info.file_size - (8 + width + length)
    if count * itemsize != held:
        raise problem(
            path,
            f"{where} declares shape {shape} ({count * itemsize} bytes of data) "
            f"but holds {held} bytes",
            kind,
        )
    return shape


def _header_fields(header: Any, where: str, path: str, kind: str) -> tuple[Shape, int]:
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise problem(path, f"{where} has a malformed .npy header", kind)
    descr, shape = header["descr"], header["shape"]
    if descr in ("O", "|O"):
        raise problem(
            path,
            f"{where} holds Python objects, which are never unpickled (allow_pickle=False)",
            kind,
        )
    match = _FLOAT.fullmatch(descr) if isinstance(descr, str) else None
    if match is None:
        raise problem(
            path, f"{where} has dtype {descr!r}; expected float16, float32 or float64", kind
        )
    if not isinstance(header["fortran_order"], bool) or not (
        isinstance(shape, tuple) and all(_is_int(s) and s >= 0 for s in shape)
    ):
        raise problem(path, f"{where} has a malformed .npy header {header!r:.200}", kind)
    return shape, int(match.group(1))


# ---------------------------------------------------------------- config.json


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KINDS: dict[str, tuple[type, ...]] = {
    "a string": (str,),
    "an object": (dict,),
    "a list": (list,),
    "an object or null": (dict, type(None)),
    "a string or null": (str, type(None)),
}


def field(obj: dict[str, Any], key: str, kind: str, where: str, path: str) -> Any:
    """``obj[key]``, which must be present and of `kind` (a key of ``_KINDS``,
    or ``"an int >= N"``); `where` names `obj` in the file for the message."""
    if key not in obj:
        raise problem(path, f"{where} has no key {key!r}")
    value = obj[key]
    if kind.startswith("an int >= "):
        ok = _is_int(value) and value >= int(kind.rsplit(" ", 1)[1])
    else:
        ok = isinstance(value, _KINDS[kind])
    if not ok:
        raise problem(path, f"{where}[{key!r}] must be {kind}, got {value!r:.80}")
    return value


def check_config(config: Any, path: str) -> None:
    """The keys and types of ``config.json`` that loading relies on."""
    if not isinstance(config, dict):
        raise problem(path, f"{CONFIG} holds a {type(config).__name__}, not an object")
    if config.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an xpnet model file (format {config.get('format')!r})")
    version = field(config, "version", "an int >= 1", CONFIG, path)
    if version > VERSION:
        raise ValueError(
            f"{path!r} was written by a newer xpnet (format version {version}; "
            f"this one reads up to {VERSION})"
        )
    field(config, "backend", "a string or null", CONFIG, path)
    _check_model(field(config, "model", "an object", CONFIG, path), path)
    compiled = field(config, "compile", "an object or null", CONFIG, path)
    if compiled is not None:
        for key in ("loss", "optimizer"):
            field(compiled, key, "an object", "compile", path)
        field(compiled, "iterations", "an int >= 0", "compile", path)
        metrics = field(compiled, "metrics", "a list", "compile", path)
        if not all(isinstance(m, str) for m in metrics):
            raise problem(path, f"compile['metrics'] must be a list of names, got {metrics!r:.80}")
    _check_array_names(field(config, "arrays", "a list", CONFIG, path), compiled, path)


def _check_model(model: dict[str, Any], path: str) -> None:
    field(model, "name", "a string", "model", path)
    field(model, "dtype", "a string", "model", path)
    field(model, "seed", "an int >= 0", "model", path)
    field(model, "input_dim", "an int >= 1", "model", path)
    layers = field(model, "layers", "a list", "model", path)
    if not layers:
        raise problem(path, "model['layers'] is empty")
    for i, item in enumerate(layers):
        where = f"model['layers'][{i}]"
        if not isinstance(item, dict):
            raise problem(path, f"{where} must be an object, got {item!r:.80}")
        field(item, "class_name", "a string", where, path)
        field(field(item, "config", "an object", where, path), "name", "a string", where, path)


def _check_array_names(names: list[Any], compiled: Any, path: str) -> None:
    if not all(isinstance(n, str) for n in names):
        raise problem(path, f"{CONFIG}['arrays'] must be a list of names")
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:
        raise problem(path, f"arrays listed more than once: {twice}")
    for name in names:
        kind, _, key = name.partition("/")
        if kind not in ("params", "optimizer") or (kind == "optimizer" and "/" not in key):
            raise problem(path, f"array {name!r} is neither params/... nor optimizer/.../slot")
        if kind == "optimizer" and compiled is None:
            raise problem(path, f"array {name!r} is optimizer state, but the model is not compiled")


# ---------------------------------------------------------------- shapes


def parameter_shapes(
    layers: list[Layer], input_dim: int, *, trainable_only: bool = False
) -> dict[str, Shape]:
    """``{"layer/weight": shape}`` for every weight in the model's order
    (``get_weights``: each layer's parameters, then its buffers), or only the
    trainable parameters; computed from the layers' settings without
    building them (which would allocate).

    Raises ValueError when two layers with weights share a name.
    """
    shapes: dict[str, Shape] = {}
    shape: tuple[int | None, ...] = (None, input_dim)
    for layer in layers:
        trainable, buffers = _layer_weight_shapes(layer, int(shape[-1]))
        for name, weight_shape in {**trainable, **({} if trainable_only else buffers)}.items():
            key = f"{layer.name}/{name}"
            if key in shapes:
                raise ValueError(f"two layers are named {layer.name!r}: their weights clash")
            shapes[key] = weight_shape
        shape = layer.compute_output_shape(shape)
    return shapes


def _layer_weight_shapes(layer: Layer, fan_in: int) -> tuple[dict[str, Shape], dict[str, Shape]]:
    """The shapes of `layer`'s trainable parameters and of its buffers."""
    if isinstance(layer, Dense):
        kernel = {"kernel": (fan_in, layer.units)}
        return {**kernel, **({"bias": (layer.units,)} if layer.use_bias else {})}, {}
    if isinstance(layer, PReLU):
        return {"alpha": (fan_in,)}, {}
    if isinstance(layer, BatchNormalization):
        names = [n for n, on in (("gamma", layer.scale), ("beta", layer.center)) if on]
        return {n: (fan_in,) for n in names}, {
            "moving_mean": (fan_in,),
            "moving_variance": (fan_in,),
        }
    if type(layer).build in (Layer.build, Dropout.build):  # no weights
        return {}, {}
    # A layer with weights must be taught here before its files can be
    # loaded: building it unchecked could allocate what a forged file asks.
    raise NotImplementedError(
        f"xpnet.io cannot check the parameter shapes of {type(layer).__name__}"
    )


def check_weights(found: dict[str, Shape], expected: dict[str, Shape], path: str) -> None:
    """A weights file holds exactly the model's weights, in order, with their
    shapes; otherwise a ValueError saying how it differs."""
    where = f"{path!r} does not match the model"
    if list(found) != list(expected):
        missing = [k for k in expected if k not in found]
        unknown = [k for k in found if k not in expected]
        raise ValueError(
            f"{where}: the file holds {len(found)} weights and the model has {len(expected)} "
            f"(missing {missing}, unexpected {unknown}; expected in order {list(expected)})"
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise ValueError(
                f"{where}: weight {key} has shape {found[key]} in the file and {shape} in the model"
            )


def check_parameters(found: dict[str, Shape], expected: dict[str, Shape], path: str) -> None:
    """The file's params/... arrays are the model's parameters, in order, with their shapes."""
    if list(found) != list(expected):
        missing = [k for k in expected if k not in found]
        unknown = [k for k in found if k not in expected]
        raise problem(
            path,
            f"the arrays do not match the layers' parameters (missing {missing}, "
            f"unexpected {unknown}; expected in order {list(expected)})",
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise problem(
                path, f"parameter {key} has shape {found[key]}, but the config implies {shape}"
            )


def check_optimizer_state(
    found: dict[str, Shape], expected: dict[str, Shape], slots: tuple[str, ...], path: str
) -> None:
    """Each optimizer/<param>/<slot> array belongs to a parameter, is one of
    the optimizer's slots, and has that parameter's shape; each parameter
    with state has all the slots."""
    per_key: dict[str, set[str]] = {}
    for name, shape in found.items():
        key, slot = name.rsplit("/", 1)
        if key not in expected:
            raise problem(path, f"optimizer state {name} is for {key}, which is not a parameter")
        if slot not in slots:
            raise problem(
                path,
                f"optimizer state {name}: the optimizer has no slot {slot!r} "
                f"(it keeps {list(slots)})",
            )
        if shape != expected[key]:
            raise problem(
                path,
                f"optimizer state {name} has shape {shape}, "
                f"but parameter {key} has shape {expected[key]}",
            )
        per_key.setdefault(key, set()).add(slot)
    for key, have in per_key.items():
        if have != set(slots):
            raise problem(
                path,
                f"optimizer state for {key} has slots {sorted(have)}, expected {sorted(slots)}",
            )
