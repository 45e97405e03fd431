"""docs/layout.md is what docs/make_layout.py writes from the code: every package and module of src/ (the plugins
and fuse/ included), every benchmark script and study is listed, and the page is not stale."""

from __future__ import annotations

import runpy

from helpers import REPO

LAYOUT = runpy.run_path(str(REPO / "docs" / "make_layout.py"))


def test_the_layout_page_is_what_the_script_writes_from_the_code():
    page = (REPO / "docs" / "layout.md").read_text()
    assert page == LAYOUT["render"](), "docs/layout.md is stale: run python docs/make_layout.py"


def test_every_package_module_benchmark_and_study_is_listed():
    page = LAYOUT["render"]()
    src = REPO / "src"
    missing = [str(path.relative_to(REPO)) for path in (
        *(p for p in src.rglob("*") if p.is_dir() and LAYOUT["is_package"](p) and p.parent != src),
        *(p for p in src.rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts),
        *(REPO / "benchmarks").glob("*.py"),
    ) if f"`{path.name}{'/' if path.is_dir() else ''}`" not in page]
    missing += [e.stem for e in (LAYOUT["conf_dir"]() / "experiment").glob("*.yaml") if f"- `{e.stem}`" not in page]
    assert missing == []
    assert "(no docstring)" not in page
