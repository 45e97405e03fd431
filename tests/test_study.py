"""Studies: the study block is checked before anything runs, every metric form reads what it says, and the
claims are judged on made-up runs (supported, contradicted, all-diverged arms never averaged)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from tricklab.errors import ConfigError
from tricklab.results import HISTORY_FILE, LAYERS_FILE, METRICS_FILE
from tricklab.study import Study, assess, metric_value
from tricklab.sweep import Run, load_sweep

ARMS = {"plain": ["norm=none"], "batch": ["norm=batch"], "huge_lr": ["norm=batch", "optimizer.lr=10"]}
BLOCK = {
    "question": "Does batch norm help?",
    "claims": [
        {"question": "BN is more accurate", "source": "Ioffe & Szegedy 2015", "metric": "test/acc",
         "direction": "higher", "baseline": "plain", "arms": ["batch"]},
        {"question": "BN trains faster", "source": "ibid.", "metric": "epochs_to/val/acc>=0.5", "direction": "lower",
         "baseline": "plain", "arms": ["batch", "huge_lr"]},
    ],
}


def write_run(folder, overrides, status="completed", test_acc=0.5, val_accs=(0.3, 0.6), layers=None):
    folder.mkdir(parents=True)
    (folder / METRICS_FILE).write_text(json.dumps(
        {"status": status, "overrides": overrides, "test": {"test/acc": test_acc}}))
    with (folder / HISTORY_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "val/acc", "train/loss"])
        writer.writeheader()
        writer.writerows({"epoch": i + 1, "val/acc": v, "train/loss": 1 - v} for i, v in enumerate(val_accs))
    if layers:
        with (folder / LAYERS_FILE).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "layer", "act_std"])
            writer.writeheader()
            writer.writerows(layers)
    return Run(folder, json.loads((folder / METRICS_FILE).read_text()))


def test_a_claim_naming_a_missing_arm_or_metric_is_refused_with_every_problem():
    bad = {**BLOCK, "claims": [{**BLOCK["claims"][0], "arms": ["batchnorm"], "metric": "test acc",
                                "direction": "up"}]}
    with pytest.raises(ConfigError) as err:
        Study.from_config("bn", bad, ARMS)
    message = str(err.value)
    assert "names arm 'batchnorm', which hydra.sweeper.arms does not define; arms: plain, batch, huge_lr" in message
    assert "metric='test acc' is not a metric tricklab reads" in message and "val/acc@2" in message
    assert "direction='up' is not allowed" in message
    with pytest.raises(ConfigError, match="hydra.sweeper.arms is empty"):
        Study.from_config("bn", BLOCK, None)
    with pytest.raises(ConfigError, match="study.claims is empty"):
        Study.from_config("bn", {**BLOCK, "claims": []}, ARMS)


def test_each_metric_form_reads_what_it_says(tmp_path):
    run = write_run(tmp_path / "r", ["norm=batch"], test_acc=0.7, val_accs=(0.2, 0.55, 0.5),
                    layers=[{"step": 0, "layer": 0, "act_std": 2.0}, {"step": 0, "layer": 1, "act_std": 0.5},
                            {"step": 5, "layer": 1, "act_std": 9.0}])
    assert metric_value(run, "test/acc") == 0.7
    assert metric_value(run, "val/acc@2") == 0.55
    assert math.isnan(metric_value(run, "val/acc@9"))
    assert metric_value(run, "best/val/acc") == 0.55 and metric_value(run, "final/val/acc") == 0.5
    assert metric_value(run, "best/train/loss") == pytest.approx(0.45)  # a loss: its lowest
    assert metric_value(run, "epochs_to/val/acc>=0.5") == 2
    assert metric_value(run, "epochs_to/val/acc>=0.9") == 4  # never reached in 3 epochs: epochs + 1
    assert metric_value(run, "epochs_to/train/loss<=0.5") == 2
    assert metric_value(run, "auc/val/acc") == pytest.approx(1.25 / 3)
    assert metric_value(run, "max/train/loss") == pytest.approx(0.8)
    assert metric_value(run, "layer_ratio/act_std") == 0.25  # last over first layer, at the first step
    assert metric_value(run, "layer_spread/act_std") == pytest.approx(math.log(4))


def test_claims_are_judged_and_an_all_diverged_arm_is_reported_not_averaged(tmp_path):
    for seed in range(4):
        write_run(tmp_path / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.80 + 0.004 * seed,
                  val_accs=(0.3, 0.4, 0.6))
        write_run(tmp_path / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.90 + 0.004 * seed,
                  val_accs=(0.6, 0.7, 0.8))
        write_run(tmp_path / f"h{seed}", ["norm=batch", "optimizer.lr=10", f"seed={seed}"], status="diverged")
    findings = assess(Study.from_config("bn", BLOCK, ARMS), load_sweep(tmp_path))
    accuracy, speed = findings
    assert accuracy.summaries["batch"].n == 4 and accuracy.summaries["batch"].mean == pytest.approx(0.906)
    assert accuracy.comparisons[0].difference == pytest.approx(0.1)
    assert accuracy.verdicts == ["supported"]
    huge = speed.summaries["huge_lr"]
    assert huge.n == 0 and huge.diverged == 4 and math.isnan(huge.mean)  # its runs are not the batch arm's either
    assert speed.summaries["batch"].values == (1.0,) * 4 and speed.summaries["plain"].values == (3.0,) * 4
    # three comparisons in the study, Holm-corrected together
    p = [accuracy.comparisons[0].p_value, *(c.p_value for c in speed.comparisons)]
    assert accuracy.comparisons[0].p_holm >= accuracy.comparisons[0].p_value and len(p) == 3
    assert speed.verdicts[0] == "supported"
    # "huge_lr trains faster": it diverged 4/4 against 0/4 (Fisher p = 0.029, the largest of the three, so Holm
    # leaves it): the claim is contradicted, judged on divergences because there is no mean to compare
    assert speed.comparisons[1].by_divergence and speed.comparisons[1].p_holm == pytest.approx(0.0286, abs=1e-4)
    assert speed.verdicts[1] == "contradicted"


def test_the_report_of_a_study_has_its_findings(tmp_path):
    from omegaconf import OmegaConf

    from tricklab.report import make_report

    for seed in range(3):
        for arm, acc, overrides in (("p", 0.80, ["norm=none"]), ("b", 0.90, ["norm=batch"]),
                                    ("h", 0.0, ["norm=batch", "optimizer.lr=10"])):
            folder = tmp_path / f"{arm}{seed}"
            write_run(folder, [*overrides, f"seed={seed}"], test_acc=acc + 0.01 * seed,
                      status="diverged" if arm == "h" else "completed")
            (folder / ".hydra").mkdir()
            OmegaConf.save(OmegaConf.create({"seed": seed, "study": BLOCK}), folder / ".hydra" / "config.yaml")
            OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"arms": ARMS}}}), folder / ".hydra" / "hydra.yaml")
    make_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.index("## Findings") < text.index("## Configs")
    assert "### Claim 1: BN is more accurate" in text and "Source: Ioffe & Szegedy 2015" in text
    assert "- **supported**: batch vs plain: Δ test/acc = +0.1" in text
    assert "| huge_lr | 3/3 diverged |" in text
    assert "diverged 3/3 vs 0/3 (Fisher p = 0.1)" in text


def test_a_group_is_its_best_arm_chosen_on_validation_and_compared_on_test(tmp_path):
    arms = {f"{opt}_lr{lr}": [f"optimizer={opt}", f"optimizer.lr={lr}"] for opt in ("sgd", "adam") for lr in (1, 2)}
    block = {"question": "q", "groups": {"sgd": ["sgd_lr1", "sgd_lr2"], "adam": ["adam_lr1", "adam_lr2"]},
             "claims": [{"question": "Adam beats SGD", "source": "s", "metric": "test/acc", "direction": "higher",
                         "baseline": "sgd", "arms": ["adam"]}]}
    # (best val acc, test acc) per arm: sgd_lr2 wins on validation though sgd_lr1 has the better test accuracy
    results = {"sgd_lr1": (0.5, 0.95), "sgd_lr2": (0.7, 0.60), "adam_lr1": (0.8, 0.80), "adam_lr2": (0.6, 0.99)}
    for arm, (val, test) in results.items():
        for seed in range(3):
            write_run(tmp_path / f"{arm}{seed}", [*arms[arm], f"seed={seed}"], test_acc=test + 0.001 * seed,
                      val_accs=(val - 0.1, val))
    (finding,) = assess(Study.from_config("opt", block, arms), load_sweep(tmp_path))
    assert finding.summaries["sgd"].arm == "sgd (best: sgd_lr2)" and finding.summaries["adam"].arm.endswith("adam_lr1)")
    assert finding.comparisons[0].difference == pytest.approx(0.20)
    assert finding.verdicts == ["supported"]
    with pytest.raises(ConfigError, match="study.groups.adam lists adam_lr3, not arms"):
        Study.from_config("opt", {**block, "groups": {**block["groups"], "adam": ["adam_lr3"]}}, arms)


def test_an_arm_can_be_read_with_its_own_metric_and_as_ensembles_of_disjoint_seed_blocks(tmp_path):
    import numpy as np

    from tricklab.results import PREDICTIONS_FILE

    labels = np.array([0, 1, 1, 0])
    for seed in range(4):
        run = write_run(tmp_path / f"s{seed}", ["averaging=none", f"seed={seed}"], test_acc=0.5)
        record = {**run.metrics, "seed": seed, "test": {"test/acc": 0.5, "test_ema/acc": 0.6 + 0.01 * seed}}
        (run.path / METRICS_FILE).write_text(json.dumps(record))
        probs = np.full((4, 2), 0.5)
        probs[seed, labels[seed]] = 0.9  # each seed is sure (and right) of one example
        probs[seed, 1 - labels[seed]] = 0.1
        np.savez(run.path / PREDICTIONS_FILE, probs=probs.astype(np.float32), labels=labels)
    claim = {"question": "c", "source": "s", "metric": "test/acc", "direction": "higher", "baseline": "none",
             "arms": ["none:test_ema/acc", "none:ensemble/2/test/acc"]}
    block = {"question": "q", "claims": [claim]}
    (finding,) = assess(Study.from_config("avg", block, {"none": ["averaging=none"]}), load_sweep(tmp_path))
    assert finding.summaries["none:test_ema/acc"].values == pytest.approx((0.6, 0.61, 0.62, 0.63))
    ensembles = finding.summaries["none:ensemble/2/test/acc"]
    assert ensembles.n == 2  # seeds (0, 1) and (2, 3): disjoint blocks, independent values
    # a pair is right on its two sure examples, and the ties (0.5, 0.5) go to class 0: right on 1 of the other 2
    assert ensembles.values == pytest.approx((0.75, 0.75))
    with pytest.raises(ConfigError, match="reads 'none:ensemble/x': 'ensemble/x' is not a metric"):
        Study.from_config("avg", {**block, "claims": [{**block["claims"][0], "arms": ["none:ensemble/x"]}]},
                          {"none": ["averaging=none"]})
