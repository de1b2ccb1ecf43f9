"""MkDocs hook (mkdocs.yml): the benchmark and soak plots the explanation pages show live in
bench/results/, outside docs/, where `make bench` and `make soak` write them; they are added to
the site under the same path instead of being copied into docs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PLOTS = ROOT / "bench" / "results"


def on_files(files: Files, config: Any) -> Files:
    for plot in sorted(PLOTS.glob("*.png")):
        files.append(File.generated(config, f"bench/results/{plot.name}", abs_src_path=str(plot)))
    return files
