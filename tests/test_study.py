"""Studies: the study block is checked before anything runs, every metric form reads what it says, and the
claims are judged on made-up runs seed by seed through the seed plan's looks (supported, negligible, undecided
with the seeds the next look needs; all-diverged arms never averaged)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from tricklab.analysis.study import Study, assess, metric_value
from tricklab.errors import ConfigError
from tricklab.results import HISTORY_FILE, LAYERS_FILE, METRICS_FILE
from tricklab.sweep import Run, load_sweep

ARMS = {"plain": ["norm=none"], "batch": ["norm=batch"], "huge_lr": ["norm=batch", "optimizer.lr=10"]}
BLOCK = {
    "question": "Does batch norm help?",
    "claims": [
        {"question": "BN is more accurate", "source": "Ioffe & Szegedy 2015", "metric": "test/acc",
         "direction": "higher", "delta": 0.01, "baseline": "plain", "arms": ["batch"]},
        {"question": "BN trains faster", "source": "ibid.", "metric": "epochs_to/val/acc>=0.5", "direction": "lower",
         "delta": 0.5, "baseline": "plain", "arms": ["batch", "huge_lr"]},
    ],
}


def write_run(folder, overrides, status="completed", test_acc=0.5, val_accs=(0.3, 0.6), layers=None):
    folder.mkdir(parents=True)
    seed = next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), 0)
    (folder / METRICS_FILE).write_text(json.dumps(
        {"status": status, "overrides": overrides, "seed": seed, "num_classes": 10, "test": {"test/acc": test_acc}}))
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
    # "huge_lr trains faster": it diverged 4/4 against 0/4. Welch's side reads Fisher p = 0.029 (the largest of
    # the three, so Holm leaves it); the seed plan's first look spends almost nothing, so the decision waits for
    # the next look's 8 seeds, judged on divergences because there is no mean to compare
    assert speed.comparisons[1].by_divergence and speed.comparisons[1].p_holm == pytest.approx(0.0286, abs=1e-4)
    assert speed.decisions[1].by_divergence and speed.verdicts[1] == "undecided at 4 seeds"
    assert speed.decisions[1].needs == 8


def test_the_report_of_a_study_has_its_findings(tmp_path):
    from omegaconf import OmegaConf

    from tricklab.analysis.report import make_report

    for seed in range(3):
        for arm, acc, overrides in (("p", 0.80, ["norm=none"]), ("b", 0.90, ["norm=batch"]),
                                    ("h", 0.0, ["norm=batch", "optimizer.lr=10"])):
            folder = tmp_path / f"{arm}{seed}"
            write_run(folder, [*overrides, f"seed={seed}"], test_acc=acc + 0.01 * seed,
                      status="diverged" if arm == "h" else "completed")
            (folder / ".hydra").mkdir()
            block = {**BLOCK, "seeds": {"pilot": 3, "batch": 3, "cap": 6}}
            OmegaConf.save(OmegaConf.create({"seed": seed, "study": block}), folder / ".hydra" / "config.yaml")
            OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"arms": ARMS}}}), folder / ".hydra" / "hydra.yaml")
    make_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.index("## Findings") < text.index("## Configs")
    assert "### Claim 1: BN is more accurate" in text and "Source: Ioffe & Szegedy 2015" in text
    assert "BN is more accurate (batch vs plain) — **supported**: +10.0 points [10.0, 10.0], 3 seeds" in text
    assert "- **supported**: batch vs plain: paired Δ = +10.0 points" in text
    assert "| huge_lr | 3/3 diverged |" in text
    assert "diverged 3/3 vs 0/3 (Fisher p = 0.1)" in text


def test_a_group_is_its_best_arm_chosen_on_validation_and_compared_on_test(tmp_path):
    arms = {f"{opt}_lr{lr}": [f"optimizer={opt}", f"optimizer.lr={lr}"] for opt in ("sgd", "adam") for lr in (1, 2)}
    block = {"question": "q", "seeds": {"pilot": 3}, "groups": {"sgd": ["sgd_lr1", "sgd_lr2"],
                                                             "adam": ["adam_lr1", "adam_lr2"]},
             "claims": [{"question": "Adam beats SGD", "source": "s", "metric": "test/acc", "direction": "higher",
                         "delta": 0.01, "baseline": "sgd", "arms": ["adam"]}]}
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
    claim = {"question": "c", "source": "s", "metric": "test/acc", "direction": "higher", "delta": 0.01,
             "baseline": "none", "arms": ["none:test_ema/acc", "none:ensemble/2/test/acc"]}
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


def test_every_claim_declares_delta_and_the_seed_plan_is_checked():
    no_delta = {**BLOCK, "claims": [{k: v for k, v in BLOCK["claims"][0].items() if k != "delta"}]}
    with pytest.raises(ConfigError, match=r"study.claims\[0\].delta=None is not allowed; every claim declares"):
        Study.from_config("bn", no_delta, ARMS)
    with pytest.raises(ConfigError) as err:
        Study.from_config("bn", {**BLOCK, "seeds": {"pilot": 30, "cap": 24, "batches": 2}}, ARMS)
    assert "study.seeds.batches is not a setting" in str(err.value)
    with pytest.raises(ConfigError, match="study.seeds.pilot=1 is not allowed; it must be an integer ≥ 2"):
        Study.from_config("bn", {**BLOCK, "seeds": {"pilot": 1}}, ARMS)
    with pytest.raises(ConfigError, match="study.seeds.pilot=30 is above study.seeds.cap=24"):
        Study.from_config("bn", {**BLOCK, "seeds": {"pilot": 30}}, ARMS)
    study = Study.from_config("bn", {**BLOCK, "seeds": {"pilot": 4, "batch": 2, "cap": 8}}, ARMS)
    assert study.seeds.looks == (4, 6, 8) and study.comparisons == 3


def _noisy_runs(tmp_path, seeds, gap, spread=0.01, rng_seed=0):
    """plain and batch arms over ``seeds``: batch = plain + gap, each with its own noise of sd ``spread``."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    for seed in seeds:
        noise = rng.standard_normal(2) * spread
        write_run(tmp_path / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.8 + noise[0])
        write_run(tmp_path / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.8 + gap + noise[1])


ONE_CLAIM = {"question": "BN is more accurate", "claims": [{**BLOCK["claims"][0], "delta": 0.02}]}


def test_no_difference_within_delta_is_negligible_and_a_small_one_waits_for_more_seeds(tmp_path):
    study = Study.from_config("bn", ONE_CLAIM, {"plain": ARMS["plain"], "batch": ARMS["batch"]})
    _noisy_runs(tmp_path / "none", range(8), gap=0.0, spread=0.002)
    (finding,) = assess(study, load_sweep(tmp_path / "none"))
    decision = finding.decisions[0]
    assert decision.verdict == "negligible" and decision.needs == 0 and decision.units == 8
    assert -0.02 < decision.interval[0] < decision.estimate < decision.interval[1] < 0.02
    _noisy_runs(tmp_path / "small", range(4), gap=0.01, spread=0.01)
    (finding,) = assess(study, load_sweep(tmp_path / "small"))
    assert finding.verdicts == ["undecided at 4 seeds"] and finding.decisions[0].needs == 8


def test_seeds_are_paired_a_shared_seed_effect_cancels(tmp_path):
    """Seed s moves both arms alike (same init, same batch order): the paired difference sees through it."""
    for seed in range(8):
        shared = 0.05 * ((seed * 7) % 5 - 2)  # large seed-to-seed spread, the same in both arms
        write_run(tmp_path / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.8 + shared)
        write_run(tmp_path / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.81 + shared + 0.0005 * seed)
    study = Study.from_config("bn", ONE_CLAIM, {"plain": ARMS["plain"], "batch": ARMS["batch"]})
    (finding,) = assess(study, load_sweep(tmp_path))
    assert finding.comparisons[0].p_value > 0.5  # Welch, unpaired: lost in the seeds' spread
    assert finding.verdicts == ["supported"] and finding.decisions[0].p_better[0] == 1.0


def _as_study_folder(folder, block, arms):
    from omegaconf import OmegaConf

    for run_dir in folder.iterdir():
        (run_dir / ".hydra").mkdir()
        seed = json.loads((run_dir / METRICS_FILE).read_text())["seed"]
        OmegaConf.save(OmegaConf.create({"seed": seed, "study": block, "data": {"name": "digits", "batch_size": 32},
                                         "optimizer": {"name": "sgd", "lr": 0.1}, "scheduler": {"name": "none"}}),
                       run_dir / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"arms": arms}, "runtime": {"choices": {
            "experiment": "bn"}}}}), run_dir / ".hydra" / "hydra.yaml")


def test_the_next_round_adds_the_seeds_of_the_next_look_to_the_undecided_comparisons_arms_only(tmp_path):
    from tricklab.analysis.studies import next_round

    arms = {"plain": ARMS["plain"], "batch": ARMS["batch"], "huge_lr": ARMS["huge_lr"]}
    block = {"question": "q", "claims": [
        {**BLOCK["claims"][0], "arms": ["batch"]},  # decided at the pilot: every pair differs by exactly 0.1
        {**BLOCK["claims"][1], "baseline": "plain", "arms": ["huge_lr"]}]}  # all diverged: waits for 8 seeds
    for seed in range(4):
        write_run(tmp_path / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.8 + 0.01 * seed)
        write_run(tmp_path / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.9 + 0.01 * seed)
        write_run(tmp_path / f"h{seed}", ["norm=batch", "optimizer.lr=10", f"seed={seed}"], status="diverged")
    _as_study_folder(tmp_path, block, arms)
    assert next_round(tmp_path) == (8, ["plain", "huge_lr"])


def test_the_page_leads_with_answers_flags_chance_and_lists_design_changes_with_verdicts_before(tmp_path):
    from tricklab.analysis.report import make_report

    arms = {"plain": ARMS["plain"], "batch": ARMS["batch"]}
    block = {**ONE_CLAIM, "regime": "As the source: 30 epochs.", "seeds": {"pilot": 4, "cap": 4},
             "changes": [{"what": "epochs 10 -> 30", "why": "the source trains 30 epochs"}]}
    for seed in range(4):
        write_run(tmp_path / "runs" / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.1, val_accs=(0.1, 0.12))
        write_run(tmp_path / "runs" / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.9, val_accs=(0.8, 0.9))
    _as_study_folder(tmp_path / "runs", block, arms)
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "bn.json").write_text(json.dumps({  # the page of the earlier, fixed-seed design
        "study": "bn", "question": "q",
        "verdicts": ["inconclusive at 3 seeds: batch (best: b1) vs plain (best: p1) (test/acc)"],
        "Commit": "trained at abc123", "Runs": "6", "Wall time": "9 s", "Machine": "m"}))
    make_report(tmp_path / "runs", page=pages)
    text = (pages / "bn.md").read_text()
    answer = "- BN is more accurate (batch vs plain) — **supported**: +80.0 points [80.0, 80.0], 4 seeds"
    assert text.index("## Answers") < text.index(answer) < text.index("## Regime") < text.index("## Findings")
    assert "**Arm plain never leaves chance**" in text and "Arm batch never" not in text
    assert "As the source: 30 epochs." in text and "| plain | digits | - | 32 | - | - | sgd | 0.1 | none | 4 |" in text
    assert "- epochs 10 -> 30: the source trains 30 epochs" in text
    assert "| batch vs plain (test/acc) | inconclusive at 3 seeds | supported |" in text
    assert answer.removeprefix("- ") in (pages / "index.md").read_text()
    make_report(tmp_path / "runs", page=pages)  # written again from the same design: "before" stays the old one
    assert "| batch vs plain (test/acc) | inconclusive at 3 seeds | supported |" in (pages / "bn.md").read_text()


def test_layer_ratio_reads_the_last_hidden_layer_not_the_logits(tmp_path):
    run = write_run(tmp_path / "r", ["init=he"], layers=[
        {"step": 0, "layer": 0, "act_std": 1.0}, {"step": 0, "layer": 1, "act_std": 0.5},
        {"step": 0, "layer": 2, "act_std": 7.0}])
    with (run.path / LAYERS_FILE).open("w", newline="") as f:  # the output layer has no activation
        writer = csv.DictWriter(f, fieldnames=["step", "layer", "activation", "act_std"])
        writer.writeheader()
        writer.writerows([{"step": 0, "layer": 0, "activation": "relu", "act_std": 1.0},
                          {"step": 0, "layer": 1, "activation": "relu", "act_std": 0.5},
                          {"step": 0, "layer": 2, "activation": "none", "act_std": 7.0}])
    assert metric_value(Run(run.path, run.metrics), "layer_ratio/act_std") == 0.5


def test_the_page_flags_an_arm_that_diverged_in_some_seeds(tmp_path):
    from tricklab.analysis.report import make_report

    arms = {"plain": ARMS["plain"], "batch": ARMS["batch"]}
    for seed in range(4):
        write_run(tmp_path / "runs" / f"p{seed}", ["norm=none", f"seed={seed}"], test_acc=0.8, val_accs=(0.7, 0.8))
        write_run(tmp_path / "runs" / f"b{seed}", ["norm=batch", f"seed={seed}"], test_acc=0.9, val_accs=(0.8, 0.9),
                  status="diverged" if seed == 0 else "completed")
    _as_study_folder(tmp_path / "runs", ONE_CLAIM, arms)
    make_report(tmp_path / "runs", page=tmp_path / "pages")
    text = (tmp_path / "pages" / "bn.md").read_text()
    assert "**Arm batch diverged in 1 of 4 seeds**" in text and "Arm plain diverged" not in text


def test_an_arm_read_only_at_initialisation_is_not_flagged_as_near_chance(tmp_path):
    from tricklab.analysis.study import near_chance

    block = {"question": "q", "claims": [{**BLOCK["claims"][0], "metric": "layer_spread/act_std", "direction": "lower",
                                          "delta": 0.1}]}
    for seed in range(2):
        write_run(tmp_path / f"p{seed}", ["norm=none", f"seed={seed}"], val_accs=(0.1,))
        write_run(tmp_path / f"b{seed}", ["norm=batch", f"seed={seed}"], val_accs=(0.1,))
    arms = {"plain": ARMS["plain"], "batch": ARMS["batch"]}
    assert near_chance(Study.from_config("bn", block, arms), load_sweep(tmp_path)) == []
    assert [a for a, *_ in near_chance(Study.from_config("bn", ONE_CLAIM, arms), load_sweep(tmp_path))] == \
        ["plain", "batch"]
