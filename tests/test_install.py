"""Install and run from anywhere: the configs ship inside the package, outputs and data go below the project root
found from the working directory (never the package's location), a second checkout runs its own code and
configs, a plain (non-editable) install trains from an empty folder (slow), and an optional extra that is missing
is one paragraph, exit 2, nothing created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, run_cli

from tricklab.config import CHECKOUT_MARKER, CONF_DIR, ROOT_ENV, project_root

TINY = ["trainer.max_epochs=1", "logger=none", "data.num_samples=500", "callbacks.progress_bar=none"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH and TRICKLAB_ROOT (each test says where tricklab comes from)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ROOT_ENV)}
    return {**env, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **extra}


def test_the_configs_are_inside_the_package():
    import tricklab

    assert Path(tricklab.__file__).resolve().parent / "conf" == CONF_DIR
    assert (CONF_DIR / "config.yaml").is_file() and (CONF_DIR / "experiment").is_dir()
    assert (REPO / CHECKOUT_MARKER).is_file()
    assert not (REPO / "conf").exists()


def test_the_root_is_found_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert project_root(REPO / "tests" / "conf") == REPO  # anywhere inside a checkout: that checkout
    assert project_root(tmp_path) == tmp_path.resolve()  # elsewhere: the working directory itself
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path.resolve()
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "elsewhere"))
    assert project_root(REPO) == (tmp_path / "elsewhere").resolve()


def composed_paths(out: subprocess.CompletedProcess) -> dict[str, str]:
    """root_dir, output_dir, data_dir and seed from ``--cfg job --resolve``'s output."""
    found = {}
    for line in out.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("root_dir", "output_dir", "data_dir", "seed"):
            found[key] = value
    return found


def test_a_second_checkout_runs_its_own_code_and_configs(tmp_path):
    """Checkout B beside this one (A), with A's tricklab first on the path as an editable install of A puts it:
    B's train.py runs B's code and configs, and any tricklab run in B writes below B."""
    other = tmp_path / "b"
    shutil.copytree(REPO / "src", other / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy2(REPO / "train.py", other / "train.py")
    config = other / CHECKOUT_MARKER
    config.write_text(config.read_text().replace("\nseed: 0\n", "\nseed: 7\n"))
    (other / "sub").mkdir()
    a_first = clean_env(PYTHONPATH=str(REPO / "src"))

    ours = run_cli(["--cfg", "job", "--resolve"], cwd=other / "sub", env=a_first, script=[str(other / "train.py")])
    assert ours.returncode == 0, ours.stderr
    assert composed_paths(ours) == {"root_dir": str(other), "output_dir": str(other / "outputs"),
                                    "data_dir": str(other / "data"), "seed": "7"}
    # A's code run in B (tricklab train from A's install): A's configs, but B's outputs.
    theirs = subprocess.run([sys.executable, "-m", "tricklab.train", "--cfg", "job", "--resolve"], cwd=other,
                            env=a_first, capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    assert composed_paths(theirs) == {"root_dir": str(other), "output_dir": str(other / "outputs"),
                                      "data_dir": str(other / "data"), "seed": "0"}
    assert not (other / "outputs").exists() and not (REPO / "src" / "outputs").exists()


NO_TENSORBOARD = ("import sys; sys.modules['tensorboardX'] = sys.modules['tensorboard'] = None; "
                  "from tricklab.train import cli; sys.argv[0] = 'train.py'; cli()")


@pytest.mark.parametrize("sweep", [False, True])
def test_logger_tensorboard_without_its_extra_is_one_paragraph(tmp_path, sweep):
    args = [*(["-m", "seed=0,1"] if sweep else []), *TINY, "logger=tensorboard", f"paths.output_dir={tmp_path / 'o'}",
            f"paths.data_dir={tmp_path / 'd'}"]
    out = run_cli(args, script=["-c", NO_TENSORBOARD])
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "logger=tensorboard needs tensorboardX" in out.stderr and "[tensorboard] extra" in out.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def written_since(root: Path, start: float) -> list[str]:
    """Files and folders below ``root`` changed since ``start`` (caches and git aside)."""
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache"}
    changed = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.lstat().st_mtime >= start:
                changed.append(str(path.relative_to(root)))
    return changed


@pytest.mark.slow
def test_a_plain_install_trains_from_an_empty_folder(tmp_path):
    """``pip install`` (not editable) into a fresh venv, then a one-job sweep from an empty folder: the configs
    and plugins come from the install, outputs and data land in that folder, nothing in the checkout."""
    start = time.time() - 1
    source = tmp_path / "source"  # pip builds in the source tree: a copy, so the checkout stays untouched
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    env = clean_env()
    # Without pip: the venv uses this interpreter's pip and setuptools (ensurepip's setuptools may be too old).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                                str(source)], env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # the install must not need its source
    where = subprocess.run([str(python), "-c", "import tricklab.config as c, hydra_plugins.tricklab_sweeper as s; "
                            "print(c.CONF_DIR); print(s.__file__)"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout  # not another tricklab

    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([str(venv / "bin" / "tricklab"), "train", "-m", *TINY, "seed=0", "hydra.launcher.workers=1"],
                         cwd=empty, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (sweep,) = (empty / "outputs" / "multirun").iterdir()
    (metrics,) = sweep.glob("*/metrics.json")
    assert json.loads(metrics.read_text())["status"] == "completed"
    assert sorted(p.name for p in empty.iterdir()) == ["data", "outputs"]
    studies = subprocess.run([str(venv / "bin" / "tricklab"), "study", "list"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=300)
    assert studies.returncode == 0 and "batchnorm:" in studies.stdout, studies.stderr
    assert written_since(REPO, start) == []
