"""Plot ``xpnet bench --json`` records: the step's ratio to the GEMM floor
and to plain PyTorch, per backend and size.

    xpnet bench --sizes S M L --json docs/figures/bench-float32.json
    python docs/figures/plot_bench.py docs/figures/bench-float32.json
"""

from __future__ import annotations

import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(path: str) -> None:
    records = [r for r in json.loads(pathlib.Path(path).read_text()) if r["phase"] == "step"]
    sizes = sorted({r["size"] for r in records}, key="SML".index)
    backends = list(dict.fromkeys(r["backend"] for r in records))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(backends)
    for ax, key, title in (
        (axes[0], "floor_ratio", "training step time / GEMM floor (lower is better)"),
        (axes[1], "torch_ratio", "training step time / plain PyTorch (lower is better)"),
    ):
        for i, backend in enumerate(backends):
            values = []
            for size in sizes:
                found = [r[key] for r in records if r["backend"] == backend and r["size"] == size]
                values.append(found[0] if found and found[0] is not None else 0.0)
            xs = [j + i * width for j in range(len(sizes))]
            ax.bar(xs, values, width, label=backend)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))])
        ax.set_xticklabels([f"{s}" for s in sizes])
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    dtype = records[0]["dtype"]
    fig.suptitle(f"xpnet bench, {dtype}, 2-core CPU (S: 64-32-10 b32, M: 784-256-256-10 b256, "
                 "L: 1024-2048-2048-10 b1024)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    out = pathlib.Path(path).with_suffix(".png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/figures/bench-float32.json")
