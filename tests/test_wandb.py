"""W&B runs for real, offline, and we read back what it wrote into its binary .wandb files."""

import json

from helpers import run_cli
from wandb_file import find_run_files, read_run

from tricklab.loggers import wandb_mode


def test_a_sweep_gives_one_grouped_wandb_run_per_job(tmp_path):
    out = run_cli(["-m", "init=lecun,he", "trainer.max_epochs=2", "data.subset=400", f"paths.output_dir={tmp_path}",
                   "callbacks.progress_bar=none"])
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_dirs = list((tmp_path / "multirun").iterdir())
    assert len(sweep_dirs) == 1
    job_dirs = sorted(p.parent for p in sweep_dirs[0].rglob("metrics.json"))
    assert len(job_dirs) == 2
    runs = []
    for job_dir in job_dirs:
        metrics = json.loads((job_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        files = find_run_files(job_dir)
        assert len(files) == 1, "one W&B run per job, inside the job's own run dir"
        run = read_run(files[0])
        runs.append(run)
        init = metrics["choices"]["init"]
        assert run.group == sweep_dirs[0].name
        assert f"init:{init}" in run.tags and "optimizer:adam" in run.tags
        assert run.config["init"] == init and run.config["norm"] == "none" and run.config["seed"] == 0
        assert run.config["config"]["optimizer"]["lr"] == 0.001  # the full resolved config too
        assert f"init={init}" in run.config["overrides"]
        epochs = [row for row in run.history if "val/acc" in row]
        assert len(epochs) == 2 and [row["epoch"] for row in epochs] == [0, 1]
        assert run.summary["test/acc"] == metrics["test"]["test/acc"]
        assert run.summary["status"] == "completed"
    assert {r.config["init"] for r in runs} == {"lecun", "he"}
    assert runs[0].run_id != runs[1].run_id  # wandb.finish() after each job: no run reuse


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
