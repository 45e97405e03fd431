"""Injected faults: signals to a sweep launcher and to a single run, a corrupt metrics.json, a finished run
given again. Each asserts, by file hashes, that no finished result changed, none was lost or run twice, and
that what was cut short resumes."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, run_cli

from tricklab.launch.manifest import MANIFEST_FILE

# Small, quiet runs; data.subset=256 is two minibatches an epoch.
QUIET = ["logger=none", "threads=1", "callbacks.progress_bar=none"]
TINY = [*QUIET, "data.subset=256", "trainer.max_epochs=1"]


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative path -> digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def status(job_dir: Path) -> str | None:
    path = job_dir / "metrics.json"
    try:
        return json.loads(path.read_text())["status"]
    except (OSError, ValueError):
        return None


def start(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited, only its exit status is left
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


# --- a single run ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_single_run_as_a_shell_expects_and_the_same_command_resumes_it(tmp_path, data_dir, sig,
                                                                                        code):
    run_dir = tmp_path / "run"
    args = [*QUIET, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", "trainer.max_epochs=400",
            "callbacks.checkpoint.every_seconds=0"]
    proc = start(args)
    wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and f"interrupted ({signal.Signals(sig).name})" in err
    cut = json.loads((run_dir / "metrics.json").read_text())
    assert cut["status"] == "interrupted" and 0 < cut["epochs"] < 400

    resumed = run_cli([*args, "trainer.max_epochs=400"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = json.loads((run_dir / "metrics.json").read_text())
    assert done["status"] == "completed" and done["resumed_from"].endswith("last.ckpt") and done["epochs"] == 400
    epochs = [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(1, 401))  # no epoch lost or trained twice
    assert done["wall_time_total_s"] > done["wall_time_s"]  # the attempt's, and with the earlier epochs'
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    totals = [float(r["total_time_s"]) for r in rows]
    assert totals == sorted(totals) and totals[-1] > float(rows[-1]["time_s"])  # time_s restarts, total does not


def test_a_finished_single_run_is_not_overwritten_unless_asked(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    args = [*TINY, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    assert run_cli(args).returncode == 0
    before = hashes(run_dir)
    again = run_cli(args)
    assert again.returncode == 2 and "holds a completed run" in again.stderr and "overwrite=true" in again.stderr
    assert hashes(run_dir) == before  # not even .hydra/ was rewritten
    forced = run_cli([*args, "overwrite=true"])
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert hashes(run_dir)["metrics.json"] != before["metrics.json"]


def cut_short(run_dir: Path) -> None:
    """Make the finished run in ``run_dir`` look cut short after its epochs, as a kill leaves it."""
    record = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))


def test_a_run_cut_short_is_not_continued_with_another_config_and_nothing_is_touched(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    args = [*QUIET, "data.subset=256", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    assert run_cli([*args, "trainer.max_epochs=1"]).returncode == 0
    cut_short(run_dir)
    before = hashes(run_dir)
    changed = run_cli([*args, "trainer.max_epochs=1", "optimizer.lr=0.01", "norm=batch", "threads=2"])
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert "optimizer.lr 0.001 → 0.01" in changed.stderr and "norm.name none → batch" in changed.stderr
    assert "threads" not in changed.stderr  # plumbing: how a run is run, not what it trains
    assert len(changed.stderr.strip().split("\n\n")) == 1 and "overwrite=true" in changed.stderr
    assert hashes(run_dir) == before  # not even .hydra/config.yaml was rewritten
    longer = run_cli([*args, "trainer.max_epochs=2", "logger=csv"])  # training on for longer is what resuming is for
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "resumes with trainer.max_epochs 1 → 2" in longer.stderr
    assert "tricklab: resuming from epoch 2 of 2 (1 done;" in longer.stdout
    done = json.loads((run_dir / "metrics.json").read_text())
    assert done["status"] == "completed" and done["epochs"] == 2 and done["resumed_from"].endswith("last.ckpt")


def test_config_changes_leave_out_the_plumbing():
    from tricklab.run.resume import config_changes

    saved = {"optimizer": {"lr": 0.1, "name": "sgd"}, "paths": {"output_dir": "a"}, "threads": 1, "seed": 0,
             "callbacks": {"progress_bar": "rich", "grad_norm": False}, "logger": {"name": "wandb"}}
    new = {"optimizer": {"lr": 0.1, "name": "adam"}, "paths": {"output_dir": "b"}, "threads": 2, "seed": 0,
           "callbacks": {"progress_bar": "none", "grad_norm": True}, "logger": {"name": "none"}, "arm": "x"}
    assert config_changes(saved, new) == {"arm": ("(not set)", "x"), "callbacks.grad_norm": (False, True),
                                          "optimizer.name": ("sgd", "adam")}


# --- a sweep -----------------------------------------------------------------------------------------------

def sweep_args(tmp_path: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/launcher=local", "hydra.launcher.workers=2", "hydra.launcher.gpus=[]",
            f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *QUIET, "seed=0,1,2,3", *extra]


def only_sweep(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "multirun").iterdir()
    return found


def stop_mid_sweep(tmp_path: Path, data_dir: Path, sig: int) -> tuple[subprocess.Popen, Path, list[int]]:
    """Start a 4-job sweep on 2 workers, send ``sig`` to the launcher alone once two jobs completed and another
    runs; the launcher, the sweep folder and the worker pids."""
    proc = start(sweep_args(tmp_path, data_dir, "trainer.max_epochs=150", "callbacks.checkpoint.every_seconds=0"))

    def two_done_one_running() -> bool:  # the second pair of jobs is under way, with a checkpoint
        jobs = [d for d in tmp_path.glob("multirun/*/*") if d.is_dir()]
        statuses = [status(d) for d in jobs]
        return statuses.count("completed") >= 2 and any(
            status(d) == "running" and (d / "checkpoints" / "last.ckpt").is_file() for d in jobs)

    wait_for(two_done_one_running)
    sweep = only_sweep(tmp_path)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split()]
    proc.send_signal(sig)
    return proc, sweep, workers


def completed_hashes(sweep: Path) -> dict[str, dict[str, str]]:
    """The file hashes of each completed job (taken once the sweep has stopped: a job still prints its closing
    table after it recorded itself)."""
    done = {d.name: hashes(d) for d in sweep.iterdir() if d.is_dir() and status(d) == "completed"}
    assert 2 <= len(done) < 4, done.keys()
    return done


def resume_and_check(tmp_path: Path, data_dir: Path, sweep: Path, done: dict) -> None:
    """Resuming runs every job to completion and leaves the jobs completed earlier untouched and unrun."""
    resumed = run_cli([*sweep_args(tmp_path, data_dir, "trainer.max_epochs=150",
                                   "callbacks.checkpoint.every_seconds=0"), f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    jobs = [d for d in sweep.iterdir() if d.is_dir()]
    assert len(jobs) == 4 and all(status(d) == "completed" for d in jobs)
    for name, before in done.items():
        assert hashes(sweep / name) == before, name  # not rerun, not touched
    manifest = json.loads((sweep / MANIFEST_FILE).read_text())
    assert {j["dir"] for j in manifest["jobs"].values() if j.get("skipped")} == set(done)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_a_sweep_launcher_interrupts_its_jobs_prints_the_summary_and_resumes(tmp_path, data_dir, sig,
                                                                                          code):
    proc, sweep, workers = stop_mid_sweep(tmp_path, data_dir, sig)  # to the launcher alone, not its group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "interrupted" in out and "Manifest:" in out, out  # the summary, with the job it stopped
    assert f" resume={sweep}\n" in out.split("Resume it with: python ")[1], out  # and how to resume it
    statuses = [status(d) for d in sweep.iterdir() if d.is_dir()]
    assert "interrupted" in statuses
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30)  # no orphan trains on
    resume_and_check(tmp_path, data_dir, sweep, completed_hashes(sweep))


@pytest.mark.slow
def test_sigkill_to_a_sweep_launcher_takes_its_workers_down_and_the_sweep_resumes(tmp_path, data_dir):
    proc, sweep, workers = stop_mid_sweep(tmp_path, data_dir, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert workers and proc.returncode == -signal.SIGKILL
    # PR_SET_PDEATHSIG: within seconds, mid-job (a worker that only noticed between jobs would train on ~10 s)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=8)
    assert any(status(d) in ("running", "interrupted") for d in sweep.iterdir() if d.is_dir())  # one was cut
    resume_and_check(tmp_path, data_dir, sweep, completed_hashes(sweep))


@pytest.mark.slow
def test_a_killed_fused_sweep_resumes_the_cut_pack_from_its_members_checkpoints(tmp_path, data_dir):
    """Two packs of two seeds on one worker; SIGKILL once the first pack completed and the second has
    checkpoints: resuming leaves the first pack's jobs untouched and continues each member of the second."""
    args = ["-m", "hydra/launcher=local", "hydra.launcher.workers=1", "hydra.launcher.fuse=2",
            "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *QUIET,
            "seed=0,1,2,3", "trainer.max_epochs=150", "callbacks.checkpoint.every_seconds=0"]
    proc = start(args)

    def first_pack_done_second_cut_later() -> bool:
        jobs = [d for d in tmp_path.glob("multirun/*/*") if d.is_dir()]
        running = [d for d in jobs if status(d) == "running" and (d / "checkpoints" / "last.ckpt").is_file()]
        return [status(d) for d in jobs].count("completed") == 2 and len(running) == 2

    wait_for(first_pack_done_second_cut_later)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    sweep = only_sweep(tmp_path)
    done = completed_hashes(sweep)
    resumed = run_cli([*args, f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = {d.name: json.loads((d / "metrics.json").read_text()) for d in sweep.iterdir() if d.is_dir()}
    assert all(r["status"] == "completed" and r["epochs"] == 150 for r in records.values())
    for name, before in done.items():
        assert hashes(sweep / name) == before, name  # not rerun, not touched
    cut = [r for name, r in records.items() if name not in done]
    assert len(cut) == 2 and all(r["resumed_from"].endswith("last.ckpt") and len(r["fused"]["pack"]) == 2
                                 for r in cut)


# --- a corrupt metrics.json --------------------------------------------------------------------------------

def test_a_corrupt_metrics_json_is_kept_aside_rerun_on_resume_and_reported(tmp_path, data_dir):
    args = ["-m", "hydra/launcher=local", "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}", *TINY, "seed=0,1"]
    assert run_cli(args).returncode == 0
    sweep = only_sweep(tmp_path)
    good, bad = sorted(d for d in sweep.iterdir() if d.is_dir())
    (bad / "metrics.json").write_text('{"status": "completed", "test": {"test/acc": 0.9')  # cut mid-write
    corrupt = (bad / "metrics.json").read_bytes()
    good_before = hashes(good)

    report = subprocess.run([sys.executable, "-m", "tricklab.cli", "report", str(sweep)], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Traceback" not in report.stderr and f"{bad / 'metrics.json'} cannot be read" in report.stderr
    text = (sweep / "report.md").read_text()
    assert "Runs that did not complete" in text and f"| {bad.name} | unreadable |" in text

    resumed = run_cli([*args, f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert status(bad) == "completed"
    (kept,) = bad.glob("metrics.json.unreadable-*")
    assert kept.read_bytes() == corrupt  # moved aside, never deleted
    assert hashes(good) == good_before  # the readable job was skipped, not started (its .hydra/ untouched too)


# --- a corrupt checkpoint ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_truncated_last_checkpoint_is_reported_the_record_kept_and_overwrite_starts_over(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    args = [*QUIET, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", "data.subset=256",
            "trainer.max_epochs=3", "callbacks.checkpoint.every_seconds=0"]
    assert run_cli(args).returncode == 0
    record = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))  # as if killed
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # cut mid-write
    before = {k: v for k, v in hashes(run_dir).items() if not k.startswith(".hydra")}

    again = run_cli([*args, "trainer.max_epochs=5"])
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"{last} cannot be read" in again.stderr and "cut short after 3 epochs" in again.stderr
    assert "overwrite=true" in again.stderr and "mv " in again.stderr  # how to start over
    assert {k: v for k, v in hashes(run_dir).items() if not k.startswith(".hydra")} == before  # record kept

    fresh = run_cli([*args, "trainer.max_epochs=5", "overwrite=true"])
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    redone = json.loads((run_dir / "metrics.json").read_text())
    assert redone["status"] == "completed" and redone["epochs"] == 5 and redone["resumed_from"] is None


# --- the manifest ------------------------------------------------------------------------------------------

def test_resuming_with_another_command_keeps_every_job_the_folder_ran_with_its_launch(tmp_path, data_dir):
    base = ["-m", "hydra/launcher=local", "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}", *TINY]
    assert run_cli([*base, "seed=0,1"]).returncode == 0
    sweep = only_sweep(tmp_path)
    first = hashes(sweep / "data.subset=256,seed=0,trainer.max_epochs=1")
    resumed = run_cli([*base, "seed=1,2", f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((sweep / MANIFEST_FILE).read_text())
    jobs = {next(o for o in job["overrides"] if o.startswith("seed=")): job for job in manifest["jobs"].values()}
    assert set(jobs) == {"seed=0", "seed=1", "seed=2"}  # seed=0 is not in the second command, and not lost
    assert (jobs["seed=0"]["launch"], jobs["seed=1"]["launch"], jobs["seed=2"]["launch"]) == (0, 0, 1)
    assert jobs["seed=1"].get("skipped") and not jobs["seed=2"].get("skipped")
    assert len(manifest["launches"]) == 2 and manifest["counts"]["completed"] == 3
    assert hashes(sweep / "data.subset=256,seed=0,trainer.max_epochs=1") == first


# --- two launchers on one sweep ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_launcher_resuming_a_live_sweep_does_not_run_a_running_job(tmp_path, data_dir):
    args = ["-m", "hydra/launcher=local", "hydra.launcher.workers=1", "hydra.launcher.gpus=[]",
            f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *QUIET, "seed=0,1",
            "trainer.max_epochs=150", "callbacks.checkpoint.every_seconds=0"]
    first = start(args)
    wait_for(lambda: any((d / ".lease.json").is_file() and (d / "checkpoints" / "last.ckpt").is_file()
                         for d in tmp_path.glob("multirun/*/*")))
    sweep = only_sweep(tmp_path)
    running, other = (sweep / f"callbacks.checkpoint.every_seconds=0,seed={s},trainer.max_epochs=150"
                      for s in (0, 1))
    second = run_cli([*args, f"resume={sweep}"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "running elsewhere" in second.stdout  # seed=0 was left to the first launcher
    assert status(other) == "completed"  # the second launcher ran the job nobody ran
    after_second = hashes(other)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    for job in (running, other):
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "completed" and record["resumed_from"] is None and record["epochs"] == 150
        epochs = [int(line.split(",")[0]) for line in (job / "history.csv").read_text().splitlines()[1:]]
        assert epochs == list(range(1, 151))  # trained once, by one process
    assert hashes(other) == after_second  # the first launcher found it completed and left it alone
    assert not list(sweep.glob("*/.lease.json"))  # every lease released


# --- what a resume runs again ------------------------------------------------------------------------------

def test_resume_skips_diverged_jobs_unless_rerun_asks(tmp_path, data_dir):
    args = ["-m", "hydra/launcher=local", "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}", *TINY, "optimizer=sgd", "optimizer.lr=0.01,1e12"]
    assert run_cli(args).returncode == 0
    sweep = only_sweep(tmp_path)
    jobs = {status(d): d for d in sweep.iterdir() if d.is_dir()}
    assert set(jobs) == {"completed", "diverged"}
    before = {s: hashes(d) for s, d in jobs.items()}
    again = run_cli([*args, f"resume={sweep}"])
    assert again.returncode == 0 and "2 jobs, 1 completed (2 skipped: finished earlier), 1 diverged" in again.stdout
    assert {s: hashes(d) for s, d in jobs.items()} == before  # a divergence is a result: not repeated
    widened = run_cli([*args, f"resume={sweep}", "rerun=[diverged]"])
    assert widened.returncode == 0, widened.stderr[-3000:]
    assert hashes(jobs["completed"]) == before["completed"]
    assert hashes(jobs["diverged"])["metrics.json"] != before["diverged"]["metrics.json"]  # run again, asked to
    assert status(jobs["diverged"]) == "diverged"


def test_overwrite_true_trains_every_job_of_a_resumed_sweep_again_from_the_start(tmp_path, data_dir):
    """As for a single run: overwrite=true replaces the results in the folders it is given, finished or cut short
    (whose last.ckpt is not continued); without it a resume skips the finished jobs, untouched."""
    args = ["-m", "hydra/launcher=local", "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}", *TINY, "seed=0,1"]
    assert run_cli(args).returncode == 0
    sweep = only_sweep(tmp_path)
    done, cut = sorted(d for d in sweep.iterdir() if d.is_dir())
    cut_short(cut)
    before = {d.name: hashes(d) for d in (done, cut)}
    plain = run_cli([*args, f"resume={sweep}"])
    assert plain.returncode == 0 and hashes(done) == before[done.name]  # skipped, untouched
    again = run_cli([*args, f"resume={sweep}", "overwrite=true"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "overwrite=true: 2 finished job(s)" in again.stdout + again.stderr
    for job in (done, cut):
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "completed" and record["resumed_from"] is None
        assert hashes(job)["metrics.json"] != before[job.name]["metrics.json"]
        epochs = [int(line.split(",")[0]) for line in (job / "history.csv").read_text().splitlines()[1:]]
        assert epochs == [1]  # trained once, from the start
    manifest = json.loads((sweep / MANIFEST_FILE).read_text())
    assert not any(job.get("skipped") for job in manifest["jobs"].values())


def test_runs_again_is_rerun_or_every_finished_status_with_overwrite():
    from omegaconf import OmegaConf

    from tricklab.run.status import runs_again

    assert runs_again(OmegaConf.create({"rerun": ["diverged"], "overwrite": False})) == ["diverged"]
    assert runs_again(OmegaConf.create({"rerun": [], "overwrite": True})) == ["completed", "diverged"]
    assert runs_again(OmegaConf.create({})) == []


@pytest.mark.parametrize("content", ['{"jobs": {"a": ', "[1, 2]", '{"jobs": {"a": {"status": "completed"}}}', ""])
def test_an_unreadable_sweep_json_is_set_aside_and_the_sweep_goes_on(tmp_path, capsys, content):
    from tricklab.launch.manifest import SweepManifest

    (tmp_path / MANIFEST_FILE).write_text(content)
    manifest = SweepManifest(tmp_path, ["seed=0"])  # no traceback
    kept = list(tmp_path.glob(f"{MANIFEST_FILE}.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == content  # the old record kept byte for byte
    err = capsys.readouterr().err
    assert "tricklab: warning:" in err and "could not be read" in err and "Traceback" not in err
    manifest.add(0, ["seed=0"], tmp_path / "seed=0")
    manifest.write()
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["jobs"]["seed=0"]["status"] == "pending"


def test_a_run_set_aside_keeps_its_history_and_checkpoints_with_its_metrics(tmp_path):
    from tricklab.results import set_aside_unreadable

    (tmp_path / "metrics.json").write_text('{"status": "compl')  # cut short mid-write
    (tmp_path / "history.csv").write_text("epoch,train/loss\n0,1.0\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    before = hashes(tmp_path)
    moved = set_aside_unreadable(tmp_path)
    suffix = moved.name.removeprefix("metrics.json")
    assert sorted(hashes(tmp_path).values()) == sorted(before.values())  # nothing lost, byte for byte
    assert {p.name for p in tmp_path.iterdir()} == {f"metrics.json{suffix}", f"history.csv{suffix}",
                                                    f"checkpoints{suffix}"}  # nothing left to be overwritten


# --- reports of damaged run folders (issue 22, class 4), in-process ---------------------------------------
GOOD = {"status": "completed", "overrides": ["seed=0"], "test": {"test/acc": 0.9, "test/loss": 0.3},
        "final": {"val/acc": 0.8}}


def report_in_process(folder: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from tricklab.cli import main

    code = main(["report", str(folder)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(("content", "why"), [
    ("[1, 2]", "holds a JSON list, not an object"), ("{}", "it has no status"),
    (json.dumps({**GOOD, "test": {"test/acc": "high"}}), "test metric test/acc is 'high', not a number")])
def test_a_metrics_json_that_is_no_record_is_reported_as_unreadable(tmp_path, capsys, content, why):
    for name, text in (("good", json.dumps(GOOD)), ("bad", content)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(text)
    before = hashes(tmp_path)
    code, err = report_in_process(tmp_path, capsys)
    assert code == 0 and f"{tmp_path / 'bad' / 'metrics.json'} cannot be read" in err and why in err, err
    assert "| bad | unreadable |" in (tmp_path / "report.md").read_text()
    assert all(hashes(tmp_path)[k] == v for k, v in before.items())  # the runs' files untouched


@pytest.mark.parametrize(("content", "says"), [
    (b"epoch,val/acc\n0,\xff\xfe\n", "UnicodeDecodeError"),
    (b"epoch,val/acc,lr\n0,0.5,0.1\n1,0.6\n", "cut short or malformed at line 3")])
def test_a_damaged_history_csv_is_one_paragraph(tmp_path, capsys, content, says):
    (tmp_path / "metrics.json").write_text(json.dumps(GOOD))
    (tmp_path / "history.csv").write_bytes(content)
    before = hashes(tmp_path)
    code, err = report_in_process(tmp_path, capsys)
    assert code == 2 and err.startswith("tricklab: error: ") and says in err and "history.csv" in err, err
    assert hashes(tmp_path) == before  # no report, no plot written


def test_a_run_folder_the_report_cannot_write_in_is_one_paragraph(tmp_path, capsys, monkeypatch):
    import tricklab.run.preflight

    (tmp_path / "metrics.json").write_text(json.dumps(GOOD))
    before = hashes(tmp_path)
    monkeypatch.setattr(tricklab.run.preflight, "unwritable", lambda path: "it is read-only (Permission denied)")
    code, err = report_in_process(tmp_path, capsys)
    assert code == 2 and f"{tmp_path} cannot hold the report: it is read-only" in err and "cp -r" in err, err
    assert hashes(tmp_path) == before


# --- a full disk (ENOSPC) ----------------------------------------------------------------------------------

def no_space(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", None if path is None else str(path))


def test_a_full_disk_while_writing_metrics_json_keeps_the_one_before_and_leaves_no_temp_file(tmp_path,
                                                                                             monkeypatch):
    from tricklab.results import write_json_atomic

    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"status": "completed", "epochs": 3})
    before = path.read_bytes()
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):  # the disk fills up halfway through the file
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise no_space(self)

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(OSError) as raised:
        write_json_atomic(path, {"status": "interrupted", "epochs": 4})
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_full_disk_mid_row_cuts_the_half_row_off_history_csv(tmp_path, monkeypatch):
    from tricklab.callbacks import history as history_module
    from tricklab.callbacks.history import HistoryWriter

    writer = HistoryWriter(tmp_path / "history.csv")
    writer._write()  # the header, as a run starts
    for epoch in (1, 2):
        writer.append(epoch, 2 * epoch, {"train/loss": 1.0 / epoch, "val/acc": 0.1 * epoch})
    before = (tmp_path / "history.csv").read_bytes()
    real = history_module.csv.DictWriter

    class HalfRow(real):
        def writerow(self, row):  # half the row reaches the file, then the disk is full
            line = ",".join(str(row.get(c, "")) for c in self.fieldnames)
            self.writer_file.write(line[: len(line) // 2])
            self.writer_file.flush()
            raise no_space(tmp_path / "history.csv")

        def __init__(self, f, *args, **kwargs):
            super().__init__(f, *args, **kwargs)
            self.writer_file = f

    monkeypatch.setattr(history_module.csv, "DictWriter", HalfRow)
    with pytest.raises(OSError):
        writer.append(3, 6, {"train/loss": 0.3, "val/acc": 0.3})
    monkeypatch.undo()
    assert (tmp_path / "history.csv").read_bytes() == before  # only whole rows: the two epochs written before
    assert [r["epoch"] for r in writer._read()] == [1, 2]
    assert [r["epoch"] for r in writer.rows] == [1, 2]  # the record counts the rows on disk
    assert writer.best("val/acc", "max") == (pytest.approx(0.2), 2)


# Run train.py with its checkpoint writes patched: the second write of last.ckpt gets half a file onto the disk,
# then ENOSPC. python -c "<this>" <overrides>: sys.argv is ["-c", <overrides>].
FULL_AT_SECOND_LAST_CKPT = """
import errno, sys
from pathlib import Path
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
real, seen = TorchCheckpointIO.save_checkpoint, []
def save(self, checkpoint, path, storage_options=None):
    if str(path).endswith("last.ckpt.tmp"):
        seen.append(path)
        if len(seen) == 2:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return real(self, checkpoint, path, storage_options)
TorchCheckpointIO.save_checkpoint = save
from tricklab.train import cli
sys.argv[0] = "train.py"
cli()
"""


def test_a_run_hit_by_a_full_disk_is_marked_interrupted_says_so_in_one_paragraph_and_resumes(tmp_path,
                                                                                           data_dir):
    import torch

    run_dir = tmp_path / "run"
    args = [*QUIET, "data.subset=256", "trainer.max_epochs=3", "callbacks.checkpoint.every_seconds=0",
            f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    full = run_cli(args, script=["-c", FULL_AT_SECOND_LAST_CKPT])
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr + full.stdout
    said = [line for line in full.stderr.splitlines() if line.startswith("tricklab: error:")]
    assert len(said) == 1, full.stderr[-3000:]
    assert f"the run in {run_dir} stopped: the disk is full (No space left on device) while writing " \
           f"{run_dir / 'checkpoints' / 'last.ckpt.tmp'}" in said[0]
    assert "run the same command again: it continues from last.ckpt" in said[0]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted" and "No space left on device" in record["error"]
    assert record["epochs"] == 1  # the epoch whose checkpoint was written
    assert not list(run_dir.rglob("*.tmp"))  # the half checkpoint is gone
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)  # the epoch before's, whole
    assert last["epoch"] == 0 and last["global_step"] == 2
    epochs = [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [1]

    resumed = run_cli(args)  # the same command, with room on the disk
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = json.loads((run_dir / "metrics.json").read_text())
    assert done["status"] == "completed" and done["resumed_from"].endswith("last.ckpt") and done["epochs"] == 3
    epochs = [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [1, 2, 3]  # no epoch lost or trained twice


def test_a_full_disk_in_a_sweeps_own_writes_is_one_paragraph_exit_1(tmp_path, capsys, monkeypatch):
    from tricklab.launch.faults import disk_faults_told

    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "seed=0,1"])
    with pytest.raises(SystemExit) as exit_, disk_faults_told(tmp_path, "search"):
        raise no_space(tmp_path / "sweep.json")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("tricklab: error:") == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"the search in {tmp_path} stopped: the disk is full (No space left on device) while writing " \
           f"{tmp_path / 'sweep.json'}" in err
    assert f"resume={tmp_path}" in err and "seed=0,1" in err
    with pytest.raises(PermissionError), disk_faults_told(tmp_path):  # not the disk's fault: not hidden
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "sweep.json"))


def full_at_third_last_ckpt() -> list[str]:
    """FULL_AT_SECOND_LAST_CKPT with its count moved one on: a one-epoch job writes last.ckpt twice, so the third
    write is the second job's first."""
    return ["-c", FULL_AT_SECOND_LAST_CKPT.replace("len(seen) == 2", "len(seen) == 3")]


@pytest.mark.slow
@pytest.mark.parametrize("what, swept, first, second", [
    ("sweep", ["seed=0,1,2"], "seed=0", "seed=1"),
    ("search", ["hparams_search=optuna", "hydra.sweeper.n_trials=3"], "trial_0", "trial_1"),
])
def test_a_full_disk_in_a_job_of_a_basic_launcher_sweep_names_its_resume_command_and_keeps_what_finished(
        tmp_path, data_dir, what, swept, first, second):
    if what == "search":
        pytest.importorskip("optuna")
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=basic", *swept, *QUIET, "data.subset=256", "trainer.max_epochs=1",
            "callbacks.checkpoint.every_seconds=0", f"paths.data_dir={data_dir}"]
    full = run_cli([*args, f"hydra.sweep.dir={sweep_dir}"], script=full_at_third_last_ckpt())
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr + full.stdout
    said = [line for line in full.stderr.splitlines() if line.startswith("tricklab: error:")]
    assert len(said) == 1, full.stderr[-3000:]
    assert said[0].startswith(f"tricklab: error: the {what} in {sweep_dir} stopped: the disk is full")
    assert said[0].endswith(f"resume it: python train.py {' '.join(args)} resume={sweep_dir}")  # not a new sweep
    done, = (job for job in sweep_dir.iterdir() if first in job.name)
    cut, = (job for job in sweep_dir.iterdir() if second in job.name)
    assert f"(job {cut.name})" in said[0]
    assert status(done) == "completed" and status(cut) == "interrupted"
    kept = {name: digest for name, digest in hashes(done).items() if not name.startswith(".hydra")}

    resumed = run_cli([*args, f"resume={sweep_dir}"])  # the command it named, with room on the disk
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {name: hashes(done)[name] for name in kept} == kept  # the finished job was not trained again
    # a search tries the cut trial's parameters again as a new trial: n_trials counts the cut one, failed
    assert sum(status(job) == "completed" for job in sweep_dir.iterdir() if job.is_dir()) == 3
