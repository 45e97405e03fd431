"""A first end-to-end check: the default run trains and writes its results."""

import csv
import json


def test_default_mlp_run_learns_and_writes_results(run_training, tmp_path):
    metrics = run_training(["trainer.max_epochs=3"])
    assert metrics["status"] == "completed"
    assert metrics["test"]["test/acc"] > 0.2  # 10 classes: chance is 0.1
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test"]["test/acc"] == metrics["test"]["test/acc"]
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
