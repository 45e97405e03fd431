"""``tricklab report`` on a small real sweep: rows, mean ± std, ensembles, diverged runs, plots, CLI, W&B."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from helpers import run_cli
from wandb_file import find_run_files, read_finished_run

from tricklab.analysis.report import make_report
from tricklab.cli import main

SWEEP = ["-m", "optimizer.lr=0.01,1e6", "init=lecun,he", "seed=0,1", "averaging=ema", "diagnostics=on",
         "diagnostics.every_n_steps=2", "callbacks.grad_norm=true", "trainer.max_epochs=2", "data.subset=500",
         "logger=none", "callbacks.progress_bar=none"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """8 real jobs: lr=1e6 diverges, lr=0.01 trains; two inits, two seeds each."""
    root = tmp_path_factory.mktemp("sweep") / "my-sweep"
    done = run_cli([*SWEEP, f"hydra.sweep.dir={root}", f"paths.data_dir={data_dir}",
                    f"paths.output_dir={root.parent}"])
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def report(sweep_dir: Path):
    return make_report(sweep_dir)


def _runs_by_config(sweep_dir: Path) -> dict[tuple, list[dict]]:
    configs = defaultdict(list)
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        metrics["dir"] = path.parent
        key = tuple(o for o in metrics["overrides"] if o.startswith(("init=", "optimizer.lr=")))
        configs[key].append(metrics)
    return configs


def test_a_diverging_job_does_not_stop_the_sweep(sweep_dir):
    statuses = [json.loads(p.read_text())["status"] for p in sweep_dir.glob("*/metrics.json")]
    assert sorted(statuses) == ["completed"] * 4 + ["diverged"] * 4


def test_rows_hold_mean_and_std_of_the_runs_metrics(report, sweep_dir):
    assert report.sweep.swept == ["optimizer.lr", "init"]
    by_label = {row.label: row for row in report.configs}
    configs = _runs_by_config(sweep_dir)
    assert len(by_label) == len(configs) == 4
    text = (sweep_dir / "report.md").read_text()
    for key, runs in configs.items():
        row = by_label[", ".join(key)]
        assert len(row.config.runs) == 2
        if runs[0]["status"] == "diverged":
            assert row.statuses == {"diverged": 2} and row.stats["test/acc"] is None
            continue
        for metric, section in (("test/acc", "test"), ("test/loss", "test"), ("val/acc", "final"),
                                ("test_ema/acc", "test")):
            values = np.array([run[section][metric] for run in runs])
            assert row.stats[metric].mean == pytest.approx(values.mean())
            assert row.stats[metric].std == pytest.approx(values.std(ddof=1))
            assert f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" in text
    ranks = [row.rank for row in report.configs]
    assert ranks == sorted(ranks, reverse=True)
    assert [row.statuses.get("diverged", 0) for row in report.configs] == [0, 0, 2, 2]  # diverged last, kept
    assert text.count("| 2 diverged |") == 2 and "## Runs that did not complete" in text


def test_ensemble_row_averages_the_seeds_probabilities(report, sweep_dir):
    for row in report.configs:
        if not row.config.completed:
            assert row.ensemble is None
            continue
        loaded = [np.load(run.path / "test_predictions.npz") for run in row.config.runs]
        probs, labels = np.mean([d["probs"] for d in loaded], axis=0), loaded[0]["labels"]
        assert row.ensemble["members"] == 2
        assert row.ensemble["test/acc"] == pytest.approx((probs.argmax(1) == labels).mean())
        assert row.ensemble["test/loss"] == pytest.approx(-np.log(probs[np.arange(len(labels)), labels]).mean(),
                                                          rel=1e-5)
    assert (sweep_dir / "report.md").read_text().count("ensemble of its 2 seeds") == 2


def test_no_gradient_norm_figure_without_gradient_norms(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("*.png", "report.md"))
    for history in copy.glob("*/history.csv"):  # as callbacks.grad_norm=false writes it: the column, empty
        rows = list(csv.DictReader(history.open()))
        with history.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**row, "grad_norm": ""} for row in rows)
    names = {path.name for path in make_report(copy).plots}
    assert "gradient_norms.png" not in names and "learning_curves.png" in names


def test_factor_effects_average_over_the_other_factor(report, sweep_dir):
    lr_effect = dict((value, (stat, counts)) for value, stat, counts in report.effects["optimizer.lr"])
    accs = [json.loads(p.read_text())["test"]["test/acc"] for p in sweep_dir.glob("*/metrics.json")
            if json.loads(p.read_text())["status"] == "completed"]
    assert lr_effect["0.01"][0].mean == pytest.approx(np.mean(accs))
    assert lr_effect["1000000.0"][0] is None and lr_effect["1000000.0"][1] == {"diverged": 4}


def test_plots_are_written_and_not_empty(report, sweep_dir):
    names = sorted(path.name for path in report.plots)
    assert names == ["gradient_norms.png", "heatmap.png", "layer_profiles.png", "learning_curves.png"]
    for name in names:
        image = matplotlib.image.imread(sweep_dir / name)
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # not a blank canvas
        assert f"({name})" in (sweep_dir / "report.md").read_text()


def test_cli_prints_the_table_and_rejects_a_folder_without_runs(report, sweep_dir, tmp_path, capsys):
    assert main(["report", str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert "optimizer.lr=0.01, init=lecun" in out and "ensemble" in out
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no metrics.json" in err and "Traceback" not in err


def test_single_run_folder_gets_a_report(sweep_dir):
    run_dir = sorted(sweep_dir.glob("*/metrics.json"))[0].parent
    report = make_report(run_dir)
    assert len(report.configs) == 1 and report.configs[0].ensemble is None
    assert (run_dir / "report.md").is_file()


def test_wandb_gets_the_table_and_plots_in_the_sweeps_group(report, sweep_dir, monkeypatch):
    from tricklab.analysis.report import log_to_wandb
    from tricklab.folders import sweep_group

    monkeypatch.setenv("WANDB_MODE", "offline")
    log_to_wandb(report, project="tricklab-test", group=None)
    (run_file,) = find_run_files(sweep_dir)  # the jobs ran with logger=none: this is the report's run
    run = read_finished_run(run_file)
    assert run.group == sweep_group(sweep_dir) and run.job_type == "report"  # the group its runs are in
    (logged,) = run.history
    assert logged["report/configs/_type"] == "table-file"
    assert logged["report/configs/nrows"] == 6  # 4 configs + 2 ensembles
    for plot in ("learning_curves", "gradient_norms", "heatmap", "layer_profiles"):
        assert logged[f"report/{plot}/_type"] == "image-file"
