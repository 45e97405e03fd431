"""W&B runs for real, offline, and we read back what it wrote into its binary .wandb files."""

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import run_cli
from wandb_file import find_run_files, read_finished_run

from tricklab.folders import GROUP_FILE
from tricklab.loggers import WANDB_ID_FILE, wandb_mode

TINY = ["threads=1", "trainer.max_epochs=1", "data.subset=256", "callbacks.progress_bar=none"]
TESTS_DIR = Path(__file__).parent


def test_a_sweep_gives_one_grouped_wandb_run_per_job(tmp_path):
    out = run_cli(["-m", "init=lecun,he", "dropout.p=0.1", *TINY, f"paths.output_dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_dirs = list((tmp_path / "multirun").iterdir())
    assert len(sweep_dirs) == 1
    hex6 = sweep_dirs[0].name.rsplit("_", 1)[1]
    assert (sweep_dirs[0] / GROUP_FILE).read_text().strip() == f"init-{hex6}"  # swept keys + the folder's hex
    job_dirs = sorted(p.parent for p in sweep_dirs[0].rglob("metrics.json"))
    assert len(job_dirs) == 2
    runs = []
    for job_dir in job_dirs:
        metrics = json.loads((job_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        files = find_run_files(job_dir)
        assert len(files) == 1, "one W&B run per job, inside the job's own run dir"
        run = read_finished_run(files[0])
        runs.append(run)
        init = metrics["choices"]["init"]
        assert run.group == f"init-{hex6}" and run.job_type == "train"
        assert run.run_id == (job_dir / WANDB_ID_FILE).read_text().strip()
        assert f"init:{init}" in run.tags and "optimizer:adam" in run.tags
        # flat choice columns: Lightning's hyper-parameter logging no longer overwrites them with dicts
        assert run.config["init"] == init and run.config["norm"] == "none" and run.config["seed"] == 0
        assert {k: run.config[k] for k in ("optimizer", "scheduler", "clip", "regularization")} == {
            "optimizer": "adam", "scheduler": "none", "clip": "none", "regularization": "none"}
        # every overridden key its own flat column, typed as the run used it; plumbing left out
        assert run.config["dropout.p"] == 0.1 and run.config["data.subset"] == 256
        assert run.config["trainer.max_epochs"] == 1 and "paths.output_dir" not in run.config
        assert run.config["cfg"]["optimizer"]["lr"] == 0.001 and run.config["cfg"]["dropout"]["p"] == 0.1
        assert f"init={init}" in run.config["overrides"]
        epochs = [row for row in run.history if "val/acc" in row]
        assert len(epochs) == 1 and epochs[0]["epoch"] == 1  # 1-based, as history.csv
        assert run.summary["test/acc"] == metrics["test"]["test/acc"]
        assert run.summary["status"] == "completed"
    assert {r.config["init"] for r in runs} == {"lecun", "he"}
    assert runs[0].run_id != runs[1].run_id  # wandb.finish() after each job: no run reuse


def test_a_resumed_run_continues_its_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, f"paths.output_dir={tmp_path}", f"hydra.run.dir={run_dir}"]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "status": "interrupted"}))  # as if killed
    again = run_cli(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["resumed_from"]
    files = find_run_files(run_dir)
    assert len(files) == 2, "one offline run folder per attempt"
    runs = [read_finished_run(f) for f in files]
    assert runs[0].run_id == runs[1].run_id == (run_dir / WANDB_ID_FILE).read_text().strip()
    assert runs[0].group == "" and runs[0].job_type == "train"  # a single run: no group
    started_over = run_cli([*args, "overwrite=true"])  # a run started over is a new W&B run
    assert started_over.returncode == 0, started_over.stderr[-3000:]
    assert (run_dir / WANDB_ID_FILE).read_text().strip() != runs[0].run_id


def test_a_studys_jobs_log_to_wandb_as_study_jobs_in_its_group(tmp_path):
    sweep = tmp_path / "studies" / "dropout" / "1a2b3c4d"  # where tricklab study puts it
    out = run_cli(["-m", "experiment=dropout", "hydra.sweeper.only=[p0_nall]", "seed=0", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "threads=1", "callbacks.progress_bar=none",
                   f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 0, out.stderr[-3000:]
    (file,) = find_run_files(sweep)
    run = read_finished_run(file)
    assert run.group == "dropout-1a2b3c4d" and run.job_type == "study"
    assert run.config["experiment"] == "dropout" and run.config["arm"] == "p0_nall"
    assert run.config["dropout.p"] == 0.0 and run.config["cfg"]["architecture"]["width"] == 512
    assert list(sweep.rglob("history.csv")), "tricklab's own history, with or without the csv logger"


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="needs the [optuna] extra")
def test_a_searchs_trials_and_its_report_reach_wandb(tmp_path):
    out = run_cli([f"hydra.searchpath=[file://{TESTS_DIR / 'conf'}]", "hparams_search=tiny",
                   "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=none", "hydra.sweeper.sampler=random",
                   "optimizer.lr=tag(log, interval(1e-4, 1e-2))", *TINY, f"paths.output_dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    group = f"optimizer.lr-{sweep.name.rsplit('_', 1)[1]}"
    trials = [read_finished_run(f) for f in find_run_files(sweep)]
    assert len(trials) == 2
    assert {(r.group, r.job_type) for r in trials} == {(group, "search")}
    assert all(isinstance(r.config["optimizer.lr"], float) for r in trials)
    report = run_cli(["report", str(sweep), "--wandb"], script=["-m", "tricklab.cli"])
    assert report.returncode == 0, report.stderr[-3000:]
    (file,) = [f for f in find_run_files(sweep) if not f.is_relative_to(sweep / "trial_0")
               and not f.is_relative_to(sweep / "trial_1")]
    run = read_finished_run(file)
    assert run.group == group and run.job_type == "report"
    assert any(key.startswith("report/configs") for row in run.history for key in row)


def test_disabled_mode_writes_no_wandb_files(run_training, tmp_path):
    metrics = run_training(["logger=wandb", "logger.mode=disabled", "trainer.max_epochs=1", "data.subset=200"])
    assert metrics["status"] == "completed" and not find_run_files(tmp_path)


def test_auto_mode_is_online_only_with_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("offline") == "offline" and wandb_mode("disabled") == "disabled"
    monkeypatch.delenv("WANDB_API_KEY")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode("auto") == "online"
