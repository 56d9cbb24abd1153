"""The ``xpnet`` command: ``demo``, ``info``, ``bench`` and ``export``.

Errors a user can cause (an unknown backend, one that is not installed, a
GPU that is not there) are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import xpnet as xn
from xpnet import _backend
from xpnet._validation import unknown_name_error

DATASETS = ("digits", "breast_cancer", "moons", "spirals")
# Epochs that get each dataset close to its best with the default network.
DEFAULT_EPOCHS = {"digits": 30, "breast_cancer": 30, "moons": 50, "spirals": 300}


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit 2."""


# ---------------------------------------------------------------- datasets


def load_dataset(name: str, seed: int = 0) -> tuple[Any, Any, str]:
    """Return ``(X, y, description)`` as NumPy arrays; everything is offline."""
    try:
        from sklearn import datasets
    except ImportError:
        raise UsageError('the demo needs scikit-learn: pip install "xpnet[demo]"') from None
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return X, y, "8x8 handwritten digits (scikit-learn's bundled copy), 10 classes"
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return X, y, "Wisconsin breast cancer (scikit-learn's bundled copy), 2 classes"
    if name == "moons":
        X, y = datasets.make_moons(n_samples=1000, noise=0.2, random_state=seed)
        return X, y, "two interleaving half moons, 1000 points, 2 classes"
    if name == "spirals":
        X, y = _spirals(seed=seed)
        return X, y, "three interleaved spirals, 900 points, 3 classes"
    raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def _spirals(n_per_class: int = 300, classes: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """Points along `classes` arms of a spiral, with a little noise."""
    xp = _backend.get_backend("numpy").xp
    rng = _backend.host_rng(seed)
    xs, ys = [], []
    for k in range(classes):
        r = xp.linspace(0.05, 1.0, n_per_class)
        theta = xp.linspace(k * 2 * math.pi / classes, k * 2 * math.pi / classes + 3 * math.pi,
                            n_per_class) + rng.normal(0.0, 0.15, n_per_class)  # fmt: skip
        xs.append(xp.stack([r * xp.cos(theta), r * xp.sin(theta)], axis=1))
        ys.append(xp.full(n_per_class, k, dtype=xp.int64))
    return xp.concat(xs, axis=0), xp.concat(ys, axis=0)


# ---------------------------------------------------------------- commands


def _placement(args: argparse.Namespace) -> _backend.Backend:
    name = args.backend
    if name not in _backend.BACKENDS:
        raise UsageError(str(unknown_name_error("backend", name, _backend.BACKENDS)))
    try:
        return _backend.get_backend(name, args.device)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"backend {name!r} cannot run here: {exc}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    placement = _placement(args)
    X, y, description = load_dataset(args.dataset, args.seed)
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    n_classes = int(y.max()) + 1
    print(f"dataset: {args.dataset}: {description}")
    print(f"         {len(x_train)} training / {len(x_test)} test samples, {X.shape[1]} features")
    print(f"backend: {placement.name} on {placement.device}")

    model = xn.Sequential(
        [
            *(xn.layers.Dense(units, activation="relu", kernel_initializer="he_normal")
              for units in args.hidden),
            xn.layers.Dense(n_classes, activation="softmax"),
        ],
        backend=placement.name, device=placement.device, seed=args.seed,
    )  # fmt: skip
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=xn.optimizers.Adam(args.learning_rate),
        metrics=["accuracy"],
    )
    model.build(X.shape[1])
    model.summary()
    start = time.perf_counter()
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=args.batch_size,
        validation_split=0.1, verbose=0 if args.quiet else 1,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test)
    print(f"trained {len(history.history['loss'])} epochs in {seconds:.1f} s")
    print(f"test accuracy: {result['accuracy']:.4f}   test loss: {result['loss']:.4f}")
    if args.plot:
        written = plot_history(history.history, args.plot, f"{args.dataset} on {placement.name}")
        print(f"curves: {args.plot}" if written else "curves: skipped (pip install matplotlib)")
    return 0


def plot_history(history: dict[str, list[float]], path: str, title: str) -> bool:
    """Loss and accuracy per epoch, training and validation, to a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = range(1, len(history["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in ((left, "loss", "cross-entropy loss"), (right, "accuracy", "accuracy")):
        axis.plot(epochs, history[key], label="training")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    left.set_yscale("log")
    fig.suptitle(f"xpnet demo: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def cmd_info(args: argparse.Namespace) -> int:
    print(f"xpnet {xn.__version__} (Python {platform.python_version()}, {platform.machine()})")
    for row in _backend.describe_backends():
        if "unavailable" in row:
            print(f"  {row['name']:<17} not available: {row['unavailable']}")
        else:
            print(f"  {row['name']:<17} {row['version']:<12} devices: {', '.join(row['devices'])}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from xpnet import bench

    records = bench.run(
        _bench_backends(args), args.sizes, args.dtype, args.seconds, not args.no_references
    )
    print(bench.table(records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _bench_backends(args: argparse.Namespace) -> list[str]:
    """The backends asked for (default: every available one) that can run
    `args.dtype`; a named backend that cannot is a usage error."""
    usable = []
    for name in args.backends or _backend.available_backends():
        try:
            _backend.float_dtype(_backend.get_backend(name).xp, args.dtype)
        except TypeError as exc:  # e.g. float64 on JAX without 64-bit mode
            if args.backends:
                raise UsageError(f"backend {name!r}: {exc}") from None
            print(f"skipping {name}: {exc}")
            continue
        except (ImportError, RuntimeError, ValueError) as exc:
            raise UsageError(f"backend {name!r}: {exc}") from None
        usable.append(name)
    return usable


def cmd_export(args: argparse.Namespace) -> int:
    try:
        # NumPy holds any saved model's weights: no other library is needed
        model = xn.load_model(args.model, backend="numpy")
    except OSError as exc:
        raise UsageError(f"cannot read {args.model!r}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:  # not a model file, or a damaged one
        raise UsageError(str(exc)) from None
    try:
        model.export(args.output, format=args.format)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"cannot export {args.model!r}: {exc}") from None
    print(
        f"wrote {args.output}: input 'x' of shape (N, {model.input_dim}), {model.dtype}; "
        f"output 'y' of shape (N, {model.output_dim})"
    )
    return 0


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpnet", description="Train neural networks on any array library."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train an MLP on a real dataset and show how it went")
    demo.add_argument("--dataset", choices=DATASETS, default="digits")
    demo.add_argument(
        "--backend", default="numpy", help="numpy, torch, jax, cupy or array_api_strict"
    )
    demo.add_argument("--device", default=None, help="e.g. cuda:0, or device1 for array_api_strict")
    demo.add_argument(
        "--epochs", type=_positive_int, default=None,
        help="default: 30 (digits, breast_cancer), 50 (moons), 300 (spirals)",
    )  # fmt: skip
    demo.add_argument("--batch-size", type=_positive_int, default=32)
    demo.add_argument("--hidden", type=_positive_int, nargs="+", default=[64, 64],
                      help="units of each hidden layer (default: 64 64)")  # fmt: skip
    demo.add_argument("--learning-rate", type=float, default=0.003)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", default="xpnet-demo.png", help="PNG path ('' to skip)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=cmd_demo)

    info = sub.add_parser("info", help="version, backends, devices")
    info.set_defaults(run=cmd_info)

    bench = sub.add_parser("bench", help="forward/backward/step throughput across backends")
    bench.add_argument("--backends", nargs="+", default=None, help="default: all available")
    bench.add_argument("--sizes", nargs="+", choices=["L", "M", "S"], default=["S", "M"])
    bench.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    bench.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    bench.add_argument("--no-references", action="store_true", help="skip PyTorch/NumPy/sklearn")
    bench.add_argument("--json", default=None, help="also write the records to this file")
    bench.set_defaults(run=cmd_bench)

    export = sub.add_parser(
        "export", help="write a saved model as an ONNX file (for ONNX Runtime and friends)"
    )
    export.add_argument("model", help="a model file written by model.save, e.g. model.xpnet")
    export.add_argument("output", help="the file to write, e.g. model.onnx")
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.set_defaults(run=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"xpnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
