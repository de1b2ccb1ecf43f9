"""Write <results>/<stamp>.json, a Markdown summary and PNG plots: ``bench/results/local/`` (ignored
by git) for an ordinary run, the committed ``bench/results/`` with ``--commit`` (bench.verdict)."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.harness import Result
from bench.verdict import BASELINE_TOLERANCE, met_cell, results_dir


def _fmt(d: dict[str, object] | None) -> str:
    if not d:
        return "—"
    return ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())


def markdown(results: list[Result], stamp: str) -> str:
    lines = [
        f"# Sayso benchmark {stamp}",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{_cpus()} CPUs. Ratios compare with a baseline measured in the same run; a comparison whose "
        f"baseline came out below Sayso, or moved more than {BASELINE_TOLERANCE:.0%} between rounds, "
        "is marked unreliable (a busy machine), not met.",
        "",
        "| scenario | measured | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        met = met_cell(r.met, r.unreliable)
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        lines.append(f"| {r.name} | {_fmt(r.measure)} | {_fmt(r.baseline)} | {ratio} | {r.target} | {met} |")
    lines += [
        "",
        "What each measured window cost: mongod op counters (ins/upd/del/query/getmore/cmd), the",
        "documents mongod wrote (inserted/updated/deleted), CPU seconds per process.",
        "",
        "| scenario | window s | mongod ops | mongod docs | CPU s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if r.resources:
            u = r.resources
            ops = "/".join(str(v) for v in u["mongod_ops"].values())
            docs = "/".join(str(v) for v in u["mongod_docs"].values())
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in u["cpu_s"].items())
            lines.append(f"| {r.name} | {u['window_s']} | {ops} | {docs} | {cpu} |")
    for r in results:
        if r.unreliable:
            lines += ["", f"**{r.name}** is unreliable: {r.unreliable}."]
        if r.notes:
            lines += ["", f"**{r.name}**: " + " ".join(r.notes)]
        if table := r.detail.get("table"):
            header, *rows = table
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def plots(results: list[Result], stamp: str, folder: Path) -> list[Path]:
    paths = []
    for r in results:
        if not r.series:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for label, values in r.series.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_title(r.name)
        ax.set_xlabel("round / sample")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / f"{stamp}-{r.name.lower().replace(' ', '-').replace('/', '')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write(results: list[Result], stamp: str, folder: Path | None = None) -> Path:
    """Write the run into ``folder`` (default: bench.verdict.results_dir()); returns the .md."""
    folder = folder or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    md = markdown(results, stamp)
    images = plots(results, stamp, folder)
    md += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n"
    path = folder / f"{stamp}.md"
    path.write_text(md)
    (folder / "latest.md").write_text(md)
    return path
