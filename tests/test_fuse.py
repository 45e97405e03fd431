"""Fused packs (tricklab.fuse): seeds trained as one stacked model, each job recorded exactly as if it ran alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config

from tricklab.fuse.run import run_pack
from tricklab.run.context import RunContext
from tricklab.run.fit import run

# float64 and no dropout: a member must train as its unfused twin, to rounding. 10 steps an epoch, 10 epochs.
COMMON = ["logger=csv", "data.subset=320", "data.batch_size=32", "trainer.max_epochs=10", "dropout.p=0.0",
          "trainer.precision=64-true", "callbacks.checkpoint.every_seconds=0", "threads=1"]
MEMBERS = [(0, "glorot"), (1, "glorot"), (0, "he"), (1, "he")]
ARCHITECTURES = {
    # per-member clipping norms, weight decay that skips each member's biases and BN parameters, an L2 penalty
    "mlp": ["architecture=mlp", "norm=batch", "clip=norm", "clip.max_norm=0.5", "optimizer=adamw",
            "optimizer.weight_decay=0.1", "regularization=l2", "callbacks.early_stopping.enabled=true",
            "callbacks.early_stopping.patience=1", "callbacks.early_stopping.monitor=val/loss",
            "callbacks.early_stopping.mode=min"],  # tested: each member's best epoch by val/loss, not by val/acc
    # SWA's own learning-rate phase from epoch 7 of 10, annealed to its rate over 2 epochs (one rate for the pack)
    "mlp-swa": ["architecture=mlp", "averaging=swa", "averaging.lr=1e-4", "averaging.anneal_epochs=2",
                "optimizer=rmsprop", "scheduler=step"],
    "cnn": ["architecture=cnn", "architecture.channels=[8,16]", "architecture.hidden=32", "norm=batch",
            "callbacks.grad_norm=true", "averaging=ema"],
    "resnet": ["architecture=resnet", "architecture.depth=8", "norm=batch", "optimizer=momentum",
               "scheduler=cosine"],
}
TOLERANCE = 1e-6


def jobs(tmp_path: Path, data_dir: Path, overrides: list[str], folder: str,
         members: list[tuple[int, str]] = MEMBERS, common: list[str] = COMMON) -> list[tuple]:
    """One (config, context) per member, in folder/<init>-<seed>."""
    made = []
    for seed, init in members:
        job = [*common, *overrides, f"seed={seed}", f"init={init}"]
        made.append((compose_config(job, tmp_path / "outputs", data_dir),
                     RunContext(tmp_path / folder / f"{init}-{seed}", {"init": init}, job)))
    return made


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


def assert_twins(alone: dict, fused: dict, ignore: tuple[str, ...] = ()) -> None:
    """A fused job's record, files, history, checkpoints and test predictions are its unfused twin's."""
    assert fused["status"] == alone["status"] and fused["steps"] == alone["steps"]
    for key in ("test_weights", "test_epoch", "test_monitor", "test_monitor_mode"):  # the weights tested
        assert fused[key] == alone[key], key
    assert set(fused) - {"fused"} == set(alone)
    for section in ("final", "test", "best"):
        assert set(fused[section]) == set(alone[section])
        for key, value in alone[section].items():
            assert fused[section][key] == pytest.approx(value, abs=TOLERANCE), (section, key)
    a_dir, f_dir = Path(alone["run_dir"]), Path(fused["run_dir"])
    assert files(f_dir) - {"output.log"} == files(a_dir) - {"output.log"}
    rows_a, rows_f = history(a_dir), history(f_dir)
    assert list(rows_a[0]) == list(rows_f[0]) and len(rows_a) == len(rows_f)
    for row_a, row_f in zip(rows_a, rows_f, strict=True):
        for key in row_a:
            if key not in ("time_s", "total_time_s", *ignore) and row_a[key]:
                assert float(row_f[key]) == pytest.approx(float(row_a[key]), abs=TOLERANCE), key
    last_a, last_f = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=False) for d in (a_dir, f_dir))
    assert set(last_a) == set(last_f) and last_f["global_step"] == last_a["global_step"]
    assert set(last_a["state_dict"]) == set(last_f["state_dict"])
    for key, value in last_a["state_dict"].items():
        assert last_f["state_dict"][key].shape == value.shape
        torch.testing.assert_close(last_f["state_dict"][key], value, atol=TOLERANCE, rtol=0)
    for state_a, state_f in zip(last_a["optimizer_states"][0]["state"].values(),
                                last_f["optimizer_states"][0]["state"].values(), strict=True):
        for key, value in state_a.items():
            torch.testing.assert_close(state_f[key], value, atol=TOLERANCE, rtol=0)
    assert last_f["hyper_parameters"] == last_a["hyper_parameters"]
    preds_a, preds_f = (np.load(d / "test_predictions.npz") for d in (a_dir, f_dir))
    np.testing.assert_allclose(preds_f["probs"], preds_a["probs"], atol=1e-5)
    np.testing.assert_array_equal(preds_f["labels"], preds_a["labels"])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_member_of_a_pack_trains_as_its_unfused_twin(tmp_path, data_dir, architecture):
    overrides = ARCHITECTURES[architecture]
    alone = [run(cfg, ctx) for cfg, ctx in jobs(tmp_path, data_dir, overrides, "alone")]
    fused = run_pack(jobs(tmp_path, data_dir, overrides, "fused"))
    if "callbacks.early_stopping.enabled=true" in overrides:  # members stop at their own epochs, frozen in the pack
        assert min(r["steps"] for r in alone) < max(r["steps"] for r in alone) <= 100
        for record in fused:  # each tests its best epoch by val/loss
            losses = [float(row["val/loss"]) for row in history(Path(record["run_dir"]))]
            assert (record["test_weights"], record["test_epoch"]) == ("best", 1 + losses.index(min(losses)))
    else:
        assert [r["steps"] for r in alone] == [100] * 4
    for record_alone, record_fused in zip(alone, fused, strict=True):
        assert record_fused["fused"]["pack"] == [r["run_dir"] for r in fused]
        assert_twins(record_alone, record_fused)
    # the members really differ (four inits and batch orders), so matching twins is not matching one model
    assert len({round(r["final"]["train/loss"], 6) for r in fused}) == 4


def test_a_member_that_diverges_stops_alone_and_the_others_train_as_their_twins(tmp_path, data_dir):
    """N(0, 1) weights in a 4-layer ReLU net of width 256 blow its logits up (one member); He-initialised members
    train."""
    overrides = ["architecture.depth=4", "optimizer=sgd", "optimizer.lr=0.1", "trainer.max_epochs=4"]
    members = [(0, "he"), (0, "normal"), (1, "he"), (2, "he")]
    alone = [run(cfg, ctx) for cfg, ctx in jobs(tmp_path, data_dir, overrides, "alone", members)]
    fused = run_pack(jobs(tmp_path, data_dir, overrides, "fused", members))
    assert [r["status"] for r in alone] == ["completed", "diverged", "completed", "completed"]
    assert [r["status"] for r in fused] == ["completed", "diverged", "completed", "completed"]
    assert fused[1]["diverged_at_step"] == alone[1]["diverged_at_step"]
    assert fused[1]["diverged_reason"] == alone[1]["diverged_reason"]
    assert fused[1]["steps"] == alone[1]["steps"] < fused[0]["steps"] == 40
    for k in (0, 2, 3):
        assert_twins(alone[k], fused[k])


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_pack_cut_short_resumes_each_member_from_its_own_last_checkpoint(tmp_path, data_dir, monkeypatch,
                                                                           dropout):
    """Cut when early stopping has frozen some members and not others; with dropout the
    masks come from the pack's stream, whose state the checkpoints keep: either way the resumed pack ends where
    the uninterrupted one does, each member at its own epoch."""
    from tricklab.fuse.members import PackRecorder

    common = [o for o in COMMON if not o.startswith(("dropout.p", "trainer.max_epochs"))]
    common += [f"dropout.p={dropout}", "trainer.max_epochs=30"]
    overrides = ARCHITECTURES["mlp"]  # early stopping (patience 1): members stop at different epochs

    def pack_jobs(folder: str) -> list[tuple]:
        return jobs(tmp_path, data_dir, overrides, folder, common=common)

    straight = run_pack(pack_jobs("straight"))
    again = run_pack(pack_jobs("again"))  # the same pack again: the same results, dropout or not
    for first, second in zip(straight, again, strict=True):
        assert first["final"] == second["final"] and first["test"] == second["test"]
    epochs = [r["epochs"] for r in straight]
    cut_after = min(epochs) + 1  # one member has stopped by then, another trains on
    assert cut_after < max(epochs), epochs
    original = PackRecorder.on_train_epoch_end

    def cut_short(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch + 1 == cut_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(PackRecorder, "on_train_epoch_end", cut_short)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run_pack(pack_jobs("cut"))
    cut = [json.loads((ctx.run_dir / "metrics.json").read_text()) for _, ctx in pack_jobs("cut")]
    assert [r["status"] for r in cut] == ["interrupted"] * 4
    assert [r["epochs"] for r in cut] == [min(e, cut_after) for e in epochs]
    monkeypatch.setattr(PackRecorder, "on_train_epoch_end", original)
    resumed = run_pack(pack_jobs("cut"))
    for record_straight, record_resumed in zip(straight, resumed, strict=True):
        assert record_resumed["resumed_from"].endswith("last.ckpt")
        assert record_resumed["epochs"] == record_straight["epochs"]
        assert record_resumed["steps"] == record_straight["steps"]
        assert record_resumed["test_weights"] == record_straight["test_weights"] == "best"
        for section in ("final", "test", "best"):
            for key, value in record_straight[section].items():
                assert record_resumed[section][key] == pytest.approx(value, abs=TOLERANCE), (section, key)
        epochs = [int(row["epoch"]) for row in history(Path(record_resumed["run_dir"]))]
        assert epochs == list(range(1, record_straight["epochs"] + 1))
    assert not list((tmp_path / "cut").rglob("pack-resume.ckpt"))


def sweep_args(root: Path, tmp_path: Path, data_dir: Path, *overrides: str) -> list[str]:
    return ["-m", "hydra/launcher=local", f"hydra.sweep.dir={root}", f"paths.data_dir={data_dir}",
            f"paths.output_dir={tmp_path}", "callbacks.progress_bar=none", "data.subset=400", *overrides]


@pytest.mark.slow
def test_a_fused_sweep_gives_every_job_its_own_folder_files_and_wandb_run(tmp_path, data_dir):
    from helpers import run_cli
    from wandb_file import find_run_files, read_finished_run

    from tricklab.analysis.report import make_report
    from tricklab.folders import sweep_group

    root = tmp_path / "sweep"
    args = sweep_args(root, tmp_path, data_dir, "hydra.launcher.fuse=4", "init=glorot,he", "seed=0,1",
                      "trainer.max_epochs=2")
    done = run_cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train together, fused in one pack" in done.stdout + done.stderr
    job_dirs = sorted(p.parent for p in root.glob("*/metrics.json"))
    records = [json.loads((d / "metrics.json").read_text()) for d in job_dirs]
    assert [r["status"] for r in records] == ["completed"] * 4
    assert {(r["seed"], r["choices"]["init"]) for r in records} == {(0, "glorot"), (1, "glorot"), (0, "he"),
                                                                     (1, "he")}
    assert all(sorted(r["fused"]["pack"]) == [str(d) for d in job_dirs] for r in records)
    runs = []
    for job_dir, record in zip(job_dirs, records, strict=True):
        assert (job_dir / ".hydra" / "config.yaml").is_file() and (job_dir / "checkpoints" / "last.ckpt").is_file()
        (run_file,) = find_run_files(job_dir)  # its own W&B run, in its own folder
        wandb_run = read_finished_run(run_file)
        runs.append(wandb_run)
        assert wandb_run.group == sweep_group(root) and wandb_run.group.startswith("init-")
        assert wandb_run.config["seed"] == record["seed"] and wandb_run.config["optimizer"] == "adam"
        assert wandb_run.config["init"] == record["choices"]["init"]
        assert [row["epoch"] for row in wandb_run.history if "val/acc" in row] == [1, 2]  # 1-based
        assert wandb_run.summary["test/acc"] == record["test"]["test/acc"]
    assert len({r.run_id for r in runs}) == 4
    manifest = json.loads((root / "sweep.json").read_text())
    assert sorted(job["status"] for job in manifest["jobs"].values()) == ["completed"] * 4
    report = make_report(root)
    assert sorted(len(row.config.runs) for row in report.configs) == [2, 2]  # glorot and he, two seeds each
    written = [(d / "metrics.json").stat().st_mtime_ns for d in job_dirs]
    again = run_cli(args)  # the same command resumes the sweep: nothing is left to train
    assert again.returncode == 0 and "0 jobs to run" in again.stdout + again.stderr
    assert [(d / "metrics.json").stat().st_mtime_ns for d in job_dirs] == written


def test_jobs_that_cannot_fuse_train_alone_and_the_log_says_why(tmp_path, data_dir):
    from helpers import run_cli

    root = tmp_path / "sweep"
    done = run_cli(sweep_args(root, tmp_path, data_dir, "hydra.launcher.fuse=2", "seed=0,1", "scheduler=plateau",
                              "trainer.max_epochs=1", "logger=none"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trains alone, not fused: scheduler=plateau") + \
        done.stderr.count("trains alone, not fused: scheduler=plateau") == 2
    records = [json.loads(p.read_text()) for p in root.glob("*/metrics.json")]
    assert [r["status"] for r in records] == ["completed"] * 2 and not any("fused" in r for r in records)


@pytest.mark.parametrize("value", ["0", "-2", "x", "true"])
def test_a_bad_fuse_value_is_refused_before_anything_runs(tmp_path, data_dir, value):
    from helpers import run_cli

    root = tmp_path / "sweep"
    done = run_cli(sweep_args(root, tmp_path, data_dir, f"hydra.launcher.fuse={value}", "seed=0,1"))
    assert done.returncode == 2
    assert f"hydra.launcher.fuse={value}" in done.stderr and "positive integer" in done.stderr
    assert "Traceback" not in done.stderr and not root.exists()


def test_an_unreadable_checkpoint_in_a_pack_is_refused_as_for_one_run(tmp_path, data_dir):
    """A member cut short whose last.ckpt is truncated: the DataError of an unfused run, metrics.json kept."""
    from tricklab.errors import DataError

    pack = jobs(tmp_path, data_dir, ARCHITECTURES["mlp-swa"], "cut", MEMBERS[:2])
    cut_dir = pack[1][1].run_dir
    (cut_dir / "checkpoints").mkdir(parents=True)
    (cut_dir / "checkpoints" / "last.ckpt").write_bytes(b"truncated")
    (cut_dir / "metrics.json").write_text(json.dumps({"status": "interrupted", "epochs": 3}))
    with pytest.raises(DataError, match="cannot be read") as refused:
        run_pack(pack)
    assert "cut short after 3 epochs" in str(refused.value) and "overwrite=true" in str(refused.value)
    assert json.loads((cut_dir / "metrics.json").read_text()) == {"status": "interrupted", "epochs": 3}
