"""End to end: a one-flag sweep over the architectures on MNIST-1D, and what a run reports about its model."""

from __future__ import annotations

import json

from helpers import run_cli
from wandb_file import find_run_files, read_finished_run

TINY = ["trainer.max_epochs=1", "data.subset=256", "data.batch_size=64"]


def test_sweep_over_architectures_runs_end_to_end(tmp_path, data_dir):
    result = run_cli([
        "-m", "architecture=resnet,inception,plain_deep",
        "logger=none", "callbacks.progress_bar=tqdm", f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}",
        "verbose=true", "hydra/launcher=basic", *TINY,  # verbose, basic: the jobs print their summaries here
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(tmp_path.glob("multirun/*/*/metrics.json"))
    records = [json.loads(path.read_text()) for path in runs]
    assert sorted(r["choices"]["architecture"] for r in records) == ["inception", "plain_deep", "resnet"]
    assert all(r["status"] == "completed" and r["epochs"] == 1 for r in records)
    assert len({r["params"] for r in records}) == 3
    # Each job printed its layer summary (verbose, tqdm bar) and its parameter count.
    out = result.stdout + result.stderr
    assert out.count("Total params") == 3
    assert all(f"{r['params']:,}" in out for r in records)


def test_parameter_count_reaches_wandb_config(run_training, tmp_path):
    metrics = run_training(["architecture=resnet", "architecture.depth=8", "logger=wandb", "logger.mode=offline",
                            *TINY])
    (wandb_file,) = find_run_files(tmp_path / "run")
    assert read_finished_run(wandb_file).config["params"] == metrics["params"] > 0
