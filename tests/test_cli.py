"""The command line as a user meets it: --help, --cfg, the closing table, and bad input without tracebacks."""

import gzip
import json
import re

import pytest
from helpers import run_cli

from tricklab.config import CONF_DIR


def test_help_lists_every_group_and_its_choices():
    out = run_cli(["--help"])
    assert out.returncode == 0
    for group_dir in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        choices = sorted(p.stem for p in group_dir.glob("*.yaml"))
        assert re.search(rf"^{group_dir.name}: {', '.join(choices)}$", out.stdout, re.M), group_dir.name


def test_cfg_job_prints_the_composed_config():
    out = run_cli(["optimizer=sgd", "optimizer.lr=0.05", "init=he", "--cfg", "job"])
    assert out.returncode == 0
    assert "name: sgd" in out.stdout and "lr: 0.05" in out.stdout and "name: he" in out.stdout


def test_default_run_prints_the_results_table_and_writes_its_run_dir(tmp_path):
    args = ["trainer.max_epochs=2", "logger=none", f"paths.output_dir={tmp_path}", "callbacks.progress_bar=tqdm"]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert f"{metrics['test']['test/acc']:.4f}" in out.stdout
    for label in ("test accuracy", "best val accuracy", "epochs", "wall time", "run dir"):
        assert label in out.stdout
    assert (run_dirs[0] / ".hydra" / "config.yaml").is_file()


def assert_user_error(out, *fragments):
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    for fragment in fragments:
        assert fragment in out.stderr + out.stdout, fragment


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["optimizer.lr=-1"], ["optimizer.lr=-1", "> 0"]),
        (["dropout.p=1.5"], ["dropout.p=1.5", "[0, 1)"]),
        (["data.batch_size=0"], ["data.batch_size=0", "positive integer"]),
        (["init=nonexistent"], ["init=nonexistent: nonexistent is not a choice of the config group init", "he"]),
        (["optimizer.lrr=0.1"], ["lrr"]),
    ],
)
def test_bad_input_is_one_clear_message_and_a_nonzero_exit(tmp_path, args, fragments):
    earlier = tmp_path / "runs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"status": "completed"}')
    out = run_cli([*args, f"paths.output_dir={tmp_path}"])
    assert_user_error(out, *fragments)
    assert (earlier / "metrics.json").read_text() == '{"status": "completed"}'  # earlier output untouched


def test_missing_dataset_files(tmp_path):
    out = run_cli(["data=fashion_mnist", f"data.root={tmp_path / 'nowhere'}", f"paths.output_dir={tmp_path}"])
    assert_user_error(out, "FashionMNIST not found", "nowhere", "train-images-idx3-ubyte")
    assert out.returncode == 2


def test_corrupt_dataset_file(tmp_path):
    root = tmp_path / "fmnist"
    root.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (root / f"{stem}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")[:20])
    out = run_cli(["data=fashion_mnist", f"data.root={root}", f"paths.output_dir={tmp_path}"])
    assert_user_error(out, "is corrupt", "train-images-idx3-ubyte.gz")
    assert out.returncode == 2
