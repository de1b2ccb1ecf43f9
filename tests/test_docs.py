"""The documentation site (mkdocs.yml, docs/) builds with no warning, its generated reference pages
match the code, and every setting a service reads has a docs entry. The snippets on its pages
run in tests/test_readme.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.docsgen import reference
from tools.docsgen.reference import Setting, UndocumentedError

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    """mkdocs build --strict: a broken link or anchor, or a page missing from the nav, fails. The
    pages load nothing from another origin (no web fonts, no CDN) and Material's search index is
    built with the site."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    assert (site / "search" / "search_index.json").is_file()
    assert (site / "reference" / "configuration" / "index.html").is_file()
    for page in site.rglob("*.html"):
        text = page.read_text()
        for remote in ('src="http', 'href="https://fonts', "fonts.googleapis", "cdn.jsdelivr", "unpkg.com"):
            assert remote not in text, (page, remote)


def test_the_generated_reference_pages_are_current() -> None:
    assert reference.stale_pages() == [], "run: uv run --frozen python -m tools.docsgen"


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_every_setting_has_a_docs_entry() -> None:
    reference.check_settings_documented(reference.settings_fields(), reference.descriptions())


def _fields(*names: str) -> dict[str, Setting]:
    return {n: Setting(n, {"api": "`1`"}) for n in names}


@pytest.mark.parametrize(
    ("fields", "described", "problem"),
    [
        (
            _fields("SAYSO_A", "SAYSO_B"),
            {"setting": [{"names": ["SAYSO_A"], "text": "a"}]},
            "SAYSO_B: no entry",
        ),
        (
            _fields("SAYSO_A"),
            {"setting": [{"names": ["SAYSO_A", "SAYSO_GONE"], "text": "a"}]},
            "SAYSO_GONE: in",
        ),
        (
            _fields("SAYSO_A"),
            {"setting": [{"names": ["SAYSO_A"], "text": "a"}, {"names": ["SAYSO_A"], "text": "b"}]},
            "SAYSO_A: described 2 times",
        ),
        (
            _fields("SAYSO_A"),
            {"setting": [{"names": ["SAYSO_A"], "text": "a", "used_by": ["realtime"]}]},
            "realtime",
        ),
        (
            _fields("SAYSO_A"),
            {"setting": [{"names": ["SAYSO_A"], "text": "a"}], "make_run": [{"names": ["SAYSO_NOT_READ_X"]}]},
            "SAYSO_NOT_READ_X: make run does not read it",
        ),
    ],
)
def test_a_setting_without_its_entry_is_refused(
    fields: dict[str, Setting], described: dict[str, object], problem: str
) -> None:
    with pytest.raises(UndocumentedError, match=problem.replace("(", r"\(")):
        reference.check_settings_documented(fields, described)


def test_error_codes_are_read_from_the_enum() -> None:
    codes = reference.error_codes()
    assert codes["already_voted"] == {"api"}
    assert codes["too_many_connections"] == {"realtime"}
    assert {"api", "common", "realtime"} <= codes["not_found"]
    page = reference.errors_page()
    assert "| `already_voted` | 409 | This person already voted on the quorum review. | api |" in page
