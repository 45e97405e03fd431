"""The README's groups table lists every config group and every choice; the guide's links lead somewhere."""

from __future__ import annotations

import re

import pytest
from helpers import REPO
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra

from tricklab.config import CONF_DIR

README = REPO / "README.md"
# Linked from the README before they exist: other branches write them.
PENDING = {"docs/adding-a-trick.md", "docs/layout.md"}
# Hydra's own groups the table covers; the `hydra` group itself (the project's Hydra settings) is not a user choice.
HYDRA_GROUPS = ("hydra/launcher", "hydra/sweeper")


def groups_table() -> dict[str, list[str]]:
    """{group: choices} from the README's "Config groups" table (each backticked name in the choices column)."""
    section = README.read_text().split("## Config groups", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return rows


@pytest.fixture(scope="module")
def hydra_options() -> dict[str, list[str]]:
    """Every group Hydra sees from the project's config folder and plugins, with its choices."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = [g for g in loader.list_groups("") if g != "hydra"] + list(HYDRA_GROUPS)
        return {g: loader.get_group_options(g) for g in groups}


def test_readme_groups_table_lists_every_group_and_choice(hydra_options):
    table = groups_table()
    assert set(table) == set(hydra_options), "README's groups table: groups missing or extra"
    for group, options in hydra_options.items():
        if group in HYDRA_GROUPS:
            continue
        assert sorted(table[group]) == sorted(options), f"README's row for {group}"


def test_readme_hydra_rows_list_tricklabs_own_choices(hydra_options):
    """Launchers and sweepers: every choice tricklab provides (its files and plugins) is listed, and nothing else
    than what Hydra can load (Hydra's basic launcher is listed; the submitit plugin's extra names are not)."""
    table = groups_table()
    store = ConfigStore.instance().repo["hydra"]
    for group in HYDRA_GROUPS:
        kind = group.split("/")[1]
        ours = {name.removesuffix(".yaml") for name, node in store[kind].items() if node.provider == "tricklab"}
        ours |= {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
        assert ours <= set(table[group]), f"README's row for {group}"
        assert set(table[group]) <= set(hydra_options[group]), f"README's row for {group}"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", "docs/reference.md", "docs/sweeps.md", "docs/measurements.md"])
def test_guide_links_lead_to_files_and_headings(page):
    path = REPO / page
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if str(dest.relative_to(REPO.resolve())) in PENDING:
            continue
        assert dest.exists(), f"{page}: link to {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", dest.read_text(), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page}: no heading for #{anchor}"
