"""Sweeps: device and core assignment, folder naming, the worker pool, and real multiruns in subprocesses
(parallel CPU sweep with W&B groups; failing and diverging jobs; a sweep killed part-way then resumed)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pytest
from helpers import REPO, run_cli
from hydra import compose, initialize_config_dir
from hydra.types import HydraContext
from omegaconf import OmegaConf
from wandb_file import find_run_files, read_run

from tricklab.config import CONF_DIR
from tricklab.errors import ConfigError
from tricklab.folders import create_sweep_dir, job_dirname, sweep_dir, sweep_group
from tricklab.internals import hydra_callbacks
from tricklab.launch.devices import Slot, plan_slots, split_cores, visible_gpus
from tricklab.launch.manifest import MANIFEST_FILE, SweepManifest
from tricklab.launch.messages import JobOrder, Setup
from tricklab.launch.pool import STOP_GRACE_S, WorkerPool

TESTS_DIR = Path(__file__).parent
# Small, fast jobs: 300 MNIST-1D samples, 2 epochs, no progress bar.
TINY = ["data.subset=300", "callbacks.progress_bar=none"]


def sweep_args(tmp_path: Path, data_dir: Path, *overrides: str, launcher: str = "local", epochs: int = 2) -> list[str]:
    return ["-m", f"hydra/launcher={launcher}", f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *TINY,
            f"trainer.max_epochs={epochs}", *overrides]


def only_sweep_dir(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "multirun").iterdir()
    return found


def read_manifest(sweep: Path) -> dict:
    return json.loads((sweep / MANIFEST_FILE).read_text())


def metrics_of(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


# --- which worker owns which device (fake device lists: no GPU needed) ---------------------------------------

@pytest.mark.parametrize(("workers", "gpus", "expected"), [(None, ["0", "1", "2", "3"], 4), (2, ["4", "7"], 2),
                                                          (1, ["0", "1"], 1)])
def test_each_worker_owns_a_different_gpu(workers, gpus, expected):
    slots = plan_slots(workers, gpus, list(range(16)))
    assert len(slots) == expected
    owned = [slot.gpus for slot in slots]
    assert all(len(g) == 1 for g in owned) and len(set(owned)) == expected
    assert {s.env()["CUDA_VISIBLE_DEVICES"] for s in slots} == {g for (g,) in owned}
    cores = [c for slot in slots for c in slot.cores]
    assert len(cores) == len(set(cores))  # disjoint core shares


def test_more_workers_than_gpus_is_refused():
    with pytest.raises(ConfigError, match="at most 2"):
        plan_slots(3, ["0", "1"], [0, 1, 2, 3])


def test_cpu_workers_split_the_cores_and_hide_gpus():
    slots = plan_slots(3, [], list(range(8)))
    assert [len(s.cores) for s in slots] == [3, 3, 2]
    assert sorted(c for s in slots for c in s.cores) == list(range(8))
    for slot in slots:
        env = slot.env()
        assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_WAIT_POLICY"] == "PASSIVE"
        assert env["OMP_NUM_THREADS"] == str(len(slot.cores))  # never more threads than cores
    assert plan_slots(None, [], [0, 1]) == [Slot(gpus=(), cores=(0,)), Slot(gpus=(), cores=(1,))]  # one per core


@pytest.mark.parametrize(("workers", "gpus", "jobs_per_gpu", "expected"), [
    (None, ["0", "1"], 2, 4), (3, ["0", "1"], 2, 3), (2, ["4", "7"], 3, 2), (None, ["0", "1", "2"], 4, 12),
    (5, ["0", "1", "2"], 2, 5),
])
def test_jobs_per_gpu_workers_share_a_gpu_but_never_more_than_k(workers, gpus, jobs_per_gpu, expected):
    slots = plan_slots(workers, gpus, list(range(16)), jobs_per_gpu=jobs_per_gpu)
    assert len(slots) == expected
    per_gpu = Counter(g for slot in slots for g in slot.gpus)
    assert all(len(slot.gpus) == 1 for slot in slots) and max(per_gpu.values()) <= jobs_per_gpu
    assert len(per_gpu) == min(expected, len(gpus))  # fewer workers than places still spread over the GPUs
    cores = [c for slot in slots for c in slot.cores]
    assert len(cores) == len(set(cores)) and {len(s.cores) for s in slots} <= {16 // expected, -(-16 // expected)}


@pytest.mark.parametrize("bad", [0, -1, "x", True, 1.5])
def test_bad_jobs_per_gpu_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match=rf"hydra.launcher.jobs_per_gpu={bad} is not allowed.*positive integer"):
        plan_slots(None, ["0"], [0, 1], jobs_per_gpu=bad)


def test_workers_beyond_gpus_times_jobs_per_gpu_are_refused():
    assert len(plan_slots(4, ["0", "1"], [0, 1, 2, 3], jobs_per_gpu=2)) == 4
    with pytest.raises(ConfigError, match="workers=5 .*jobs_per_gpu=2.* at most 4"):
        plan_slots(5, ["0", "1"], [0, 1, 2, 3], jobs_per_gpu=2)


def test_jobs_per_gpu_without_gpus_is_refused_not_ignored():
    assert len(plan_slots(2, [], [0, 1], jobs_per_gpu=1)) == 2
    with pytest.raises(ConfigError, match="jobs_per_gpu=2 is not allowed without GPUs.*hydra.launcher.workers"):
        plan_slots(2, [], [0, 1], jobs_per_gpu=2)


def test_more_cpu_workers_than_cores_get_one_core_each():
    assert split_cores([5, 6], 3) == [(5,), (6,), (5,)]


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus("auto") == ["2", "5"]
    assert visible_gpus([5, 2]) == ["5", "2"]
    assert visible_gpus([]) == []
    with pytest.raises(ConfigError, match="this machine has no GPU 0, 3"):  # ids it was not given
        visible_gpus([0, 3])


# --- folder names ------------------------------------------------------------------------------------------

def test_job_folders_are_named_from_overrides_stably_and_safely():
    assert job_dirname("init=he,norm=batch,seed=0") == "init=he,norm=batch,seed=0"
    assert "/" not in job_dirname("data.root=/data/x,seed=1")
    assert job_dirname("data.root=/data/x") != job_dirname("data.root=_data_x")
    long_a, long_b = "x=" + "a" * 300, "x=" + "a" * 299 + "b"
    assert len(job_dirname(long_a)) <= 120 and job_dirname(long_a) != job_dirname(long_b)
    assert job_dirname(long_a) == job_dirname(long_a)


def test_sweeps_started_in_the_same_second_get_different_folders(tmp_path):
    made = {create_sweep_dir(tmp_path) for _ in range(20)}
    assert len(made) == 20 and all(Path(p).is_dir() for p in made)
    assert sweep_dir(None, str(tmp_path / "b")) == sweep_dir(None, str(tmp_path / "b"))  # stable in a process


def test_resuming_a_missing_folder_is_a_config_error(tmp_path):
    (tmp_path / "sweep.json").write_text("{}")  # an earlier sweep's folder
    assert sweep_dir(str(tmp_path), "ignored") == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="resume="):
        sweep_dir(str(tmp_path / "nope"), "ignored")


@pytest.mark.parametrize(("overrides", "says"), [
    (["resume=/no/such/sweep"], "resume=/no/such/sweep is not an existing folder"),
    (["hydra/launcher=local", "hydra.launcher.gpus=[0,1]", "hydra.launcher.workers=3"], "at most 2"),
    (["hydra/launcher=local", "logger=none,csv"], "would share the folder"),
    (["hydra/launcher=ray", "hydra.launcher.num_gpus=-1"], "hydra.launcher.num_gpus=-1 is not allowed"),
])
def test_bad_sweep_settings_are_one_paragraph_errors(tmp_path, overrides, says, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two GPU ids the launcher may be given (none is used)
    result = run_cli(["-m", f"paths.output_dir={tmp_path}", "seed=0", *overrides])
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("multirun/*/*/metrics.json"))  # no job ran


# --- the worker pool ---------------------------------------------------------------------------------------

def test_pool_replaces_a_crashed_worker_and_never_shares_a_gpu(tmp_path, monkeypatch):
    from sweep_tasks import CRASHING_SEED

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), str(REPO / "src")]))
    seeds = [0, 1, CRASHING_SEED, 2, 3, 4]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        configs = [compose("config", [f"seed={s}", f"hydra.sweep.dir={tmp_path}", f"hydra.sweep.subdir=job{i}"],
                           return_hydra_config=True) for i, s in enumerate(seeds)]
    orders = [JobOrder(i, [f"seed={s}"], configs[i], tmp_path / f"job{i}") for i, s in enumerate(seeds)]
    context = HydraContext(config_loader=None, callbacks=hydra_callbacks())
    slots = plan_slots(None, ["0", "1"], [0, 1])  # two fake GPUs: two workers
    started, outcomes = {}, {}
    pool = WorkerPool(slots, Setup("sweep_tasks", "report_gpu", "test", context))
    try:
        pool.run(orders[:-1], on_start=lambda order, slot: started.__setitem__(order.num, slot.device),
                 on_done=lambda order, outcome: outcomes.__setitem__(order.num, outcome))
        live = {w.process.pid for w in pool.workers}
        pool.run(orders[-1:], on_start=lambda order, slot: started.__setitem__(order.num, slot.device),
                 on_done=lambda order, outcome: outcomes.__setitem__(order.num, outcome))  # a second batch
        assert outcomes[len(seeds) - 1].pid in live  # ran on a worker kept from the first batch
    finally:
        pool.close()
    assert sorted(outcomes) == list(range(len(seeds)))
    crashed = outcomes[seeds.index(CRASHING_SEED)]
    assert not crashed.ok and "died" in crashed.error
    ok = [o for o in outcomes.values() if o is not crashed]
    assert all(o.ok for o in ok)
    assert all(f"cuda:{o.value}" == started[o.num] == o.device for o in ok)  # the job saw its worker's GPU
    assert len({o.pid for o in ok}) >= 3  # the crashed worker was replaced by a new process
    for a, b in combinations(outcomes.values(), 2):
        if a.started < b.ended and b.started < a.ended:  # ran at the same time
            assert a.device != b.device


def test_warm_workers_preload_before_their_first_job_and_an_idle_one_stops_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), str(REPO / "src")]))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", ["seed=0", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=job0"],
                         return_hydra_config=True)
    setup = Setup("sweep_tasks", "was_preloaded", "test", HydraContext(config_loader=None, callbacks=hydra_callbacks()))
    slots = plan_slots(2, [], [0, 1])
    pool = WorkerPool(slots, setup)
    try:
        pool.warm(5)  # at most one worker per slot
        assert len(pool.workers) == 2 and all(w.alive for w in pool.workers)
        outcomes = []
        pool.run([JobOrder(0, ["seed=0"], config, tmp_path / "job0")], lambda *_: None,
                 lambda order, outcome: outcomes.append(outcome))
        assert len(pool.workers) == 2  # the warm workers ran the job: none was added
        assert outcomes[0].ok and outcomes[0].value is True  # its worker had preloaded before the job came
    finally:
        pool.close()
    monkeypatch.setenv("SWEEP_TASKS_PRELOAD_S", "600")  # a worker still in its start-up imports
    pool = WorkerPool(slots, setup)
    pool.warm(1)
    (worker,) = pool.workers
    began = time.monotonic()
    pool.close()  # as a sweep its checks refuse does: it holds no job, so it is not waited for
    assert worker.process.returncode is not None
    assert time.monotonic() - began < STOP_GRACE_S


def test_a_job_that_failed_before_it_started_is_recorded_in_a_folder_made_for_it(tmp_path):
    from hydra.core.utils import JobStatus

    from tricklab.launch.jobs import SweepJobs
    from tricklab.launch.manifest import SweepManifest
    from tricklab.launch.messages import JobOutcome

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", ["seed=0", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=job0"],
                         return_hydra_config=True)
    order = JobOrder(0, ["seed=0"], config, tmp_path / "job0")
    jobs = SweepJobs(config, HydraContext(config_loader=None, callbacks=hydra_callbacks()))
    jobs.manifest, jobs.orders = SweepManifest(tmp_path, ["seed=0"]), [order]  # as begin() leaves them
    jobs.manifest.add(0, order.overrides, order.job_dir)
    # As a Ray task whose arguments would not unpickle on its node: it never ran, so it made no folder.
    jobs.finished(order, JobOutcome(0, False, None, "the job could not start", None, "unknown", 0.0, 1.0))
    assert metrics_of(tmp_path / "job0")["status"] == "failed"
    assert metrics_of(tmp_path / "job0")["error"] == "the job could not start"
    assert read_manifest(tmp_path)["jobs"]["job0"]["status"] == "failed"  # keyed by job folder
    (returned,) = jobs.end()
    assert returned.status == JobStatus.FAILED


def test_a_job_entered_with_its_composed_config_is_not_composed_again(tmp_path):
    from tricklab.launch.jobs import SweepJobs

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", ["seed=0", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=job0"],
                         return_hydra_config=True)

    class CountingLoader:
        calls = 0

        def load_sweep_config(self, master_config, overrides):
            CountingLoader.calls += 1
            return config.copy()

    jobs = SweepJobs(config, HydraContext(config_loader=CountingLoader(), callbacks=hydra_callbacks()))
    given = config.copy()
    order = jobs.enter(3, ["seed=0"], given)  # as the Optuna sweeper starts a trial whose config it checked
    assert CountingLoader.calls == 0 and order.config is given and order.config.hydra.job.num == 3
    assert order.job_dir == tmp_path / "job0"
    jobs.enter(4, ["seed=0"])  # without one, the launcher composes it
    assert CountingLoader.calls == 1


# --- real multiruns ----------------------------------------------------------------------------------------

def test_parallel_cpu_sweep_gives_each_job_its_folder_status_and_wandb_run(tmp_path, data_dir):
    result = run_cli(sweep_args(tmp_path, data_dir, "hydra.launcher.workers=2", "hydra.launcher.gpus=[]",
                                "init=glorot,he", "seed=0,1", "logger=wandb", "logger.mode=offline"))
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    job_dirs = {d.name: d for d in sweep.iterdir() if d.is_dir()}
    assert set(job_dirs) == {f"data.subset=300,init={i},seed={s},trainer.max_epochs=2"
                             for i in ("glorot", "he") for s in (0, 1)}
    assert all(metrics_of(d)["status"] == "completed" for d in job_dirs.values())
    manifest = read_manifest(sweep)
    assert manifest["counts"]["completed"] == 4 and len(manifest["jobs"]) == 4
    assert "4 completed, 0 diverged, 0 failed" in result.stdout
    assert result.stdout.count(" completed in ") == 4 and "[4/4] #" in result.stdout  # a line per finished job
    assert "\x1b[" not in result.stdout  # piped: no live redraw
    assert "sweep results, best first by best/val/acc" in result.stdout  # and the results table at the end
    workers = {job["pid"]: tuple(job["cores"]) for job in manifest["jobs"].values()}
    assert len(workers) == 2  # two workers, each ran two jobs
    assert len(set(workers.values())) == 2 and all(job["device"] == "cpu" for job in manifest["jobs"].values())
    for job_dir in job_dirs.values():  # the job's own record of where and when it trained
        record = metrics_of(job_dir)
        assert record["device"] == {"torch": "cpu", "name": "cpu", "cuda_visible_devices": ""}
        assert datetime.fromisoformat(record["started_at"]) < datetime.fromisoformat(record["ended_at"])
    runs = {}
    for job_dir in job_dirs.values():
        (run_file,) = find_run_files(job_dir)
        run = read_run(run_file)
        runs[run.run_id] = run
        assert run.group == sweep_group(sweep) == f"init-{sweep.name[-6:]}"  # one group: swept keys + folder hex
        assert run.config["overrides"] == metrics_of(job_dir)["overrides"]  # no W&B run leaked between jobs
    assert len(runs) == 4


def test_failed_and_diverged_jobs_are_recorded_and_the_sweep_goes_on(tmp_path, data_dir):
    # Lightning refuses gradient_clip_val inside the run (tricklab optimizes manually; a bad value such as
    # precision=bogus is refused before the sweep starts), lr=1e12 makes the loss non-finite; two fake GPUs.
    result = run_cli(sweep_args(tmp_path, data_dir, "hydra.launcher.gpus=[0,1]", "logger=none",
                                "+trainer.gradient_clip_val=null,0.5", "optimizer.lr=0.01,1e12"),
                     env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert result.returncode == 1
    assert "1 completed, 1 diverged, 2 failed" in result.stdout
    sweep = only_sweep_dir(tmp_path)
    status = {d.name: metrics_of(d)["status"] for d in sweep.iterdir() if d.is_dir()}
    job = "+trainer.gradient_clip_val={1},data.subset=300,optimizer.lr={0},trainer.max_epochs=2".format
    assert status == {job("0.01", "null"): "completed", job("1000000000000.0", "null"): "diverged",
                      job("0.01", "0.5"): "failed", job("1000000000000.0", "0.5"): "failed"}
    for name, job in read_manifest(sweep)["jobs"].items():  # each job saw its worker's (fake) GPU, trained on the CPU
        if status[name] != "failed":
            assert metrics_of(sweep / name)["device"]["torch"] == "cpu"
            assert f"cuda:{metrics_of(sweep / name)['device']['cuda_visible_devices']}" == job["device"]
    for name in (n for n, s in status.items() if s == "failed"):
        assert "gradient clipping is not supported" in metrics_of(sweep / name)["error"]
        assert "Traceback" in (sweep / name / "output.log").read_text()
        assert str(sweep / name / "output.log") in result.stdout  # the summary says where the log is
    manifest = read_manifest(sweep)
    assert manifest["counts"] == {"pending": 0, "running": 0, "completed": 1, "diverged": 1, "failed": 2,
                                  "interrupted": 0, "pruned": 0}
    jobs = manifest["jobs"].values()
    assert {job["device"] for job in jobs} == {"cuda:0", "cuda:1"}


@pytest.mark.slow
def test_a_sweep_killed_part_way_resumes_without_rerunning_or_losing_jobs(tmp_path, data_dir):
    jobs = ("logger=none", "seed=0,1,2,3")
    # 30 epochs: a few seconds a job, time enough to kill the sweep in the middle of one.
    args = sweep_args(tmp_path, data_dir, "hydra.launcher.workers=2", "hydra.launcher.gpus=[]", *jobs, epochs=30)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once two jobs completed and another one is running
        statuses = [json.loads(p.read_text())["status"] for p in tmp_path.glob("multirun/*/*/metrics.json")]
        if statuses.count("completed") >= 2 and "running" in statuses or statuses.count("completed") == 4:
            break
        time.sleep(0.1)
    os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and its workers, mid-job
    launcher.wait()
    sweep = only_sweep_dir(tmp_path)
    before = {d.name: (d / "metrics.json").read_text() for d in sweep.iterdir() if (d / "metrics.json").is_file()}
    done_before = {name for name, text in before.items() if json.loads(text)["status"] == "completed"}
    assert 2 <= len(done_before) < 4

    resumed = run_cli([*args, f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_sweep_dir(tmp_path) == sweep
    job_dirs = [d for d in sweep.iterdir() if d.is_dir()]
    assert len(job_dirs) == 4 and all(metrics_of(d)["status"] == "completed" for d in job_dirs)
    assert all((sweep / name / "metrics.json").read_text() == before[name] for name in done_before)  # not re-run
    manifest = read_manifest(sweep)
    assert {j["dir"] for j in manifest["jobs"].values() if j.get("skipped")} == done_before
    assert len(manifest["launches"]) == 2

    # Every launcher skips completed jobs: the basic one (in-process) now skips all four.
    basic = run_cli([*sweep_args(tmp_path, data_dir, *jobs, launcher="basic", epochs=30), f"resume={sweep}"])
    assert basic.returncode == 0, basic.stderr[-3000:]
    assert basic.stdout.count("already completed; skipped") == 4


def test_an_interrupted_run_continues_from_its_last_checkpoint(run_training, tmp_path):
    first = run_training(["trainer.max_epochs=2", "data.subset=300"])
    assert first["status"] == "completed" and first["resumed_from"] is None
    metrics_file = tmp_path / "run" / "metrics.json"
    metrics_file.write_text(json.dumps({**first, "status": "interrupted"}))  # as if killed after epoch 2
    second = run_training(["trainer.max_epochs=4", "data.subset=300"])
    assert second["resumed_from"] == str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert second["status"] == "completed" and second["epochs"] == 4
    assert [int(line.split(",")[0]) for line in (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]] \
        == [1, 2, 3, 4]


# --- other launchers and sweepers (optional extras) --------------------------------------------------------

@pytest.mark.slow
def test_slurm_launcher_runs_a_two_job_array_on_a_local_slurm(tmp_path, data_dir):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    from slurm_cluster import local_slurm, unavailable_reason

    if reason := unavailable_reason():
        pytest.skip(reason)
    with local_slurm(tmp_path / "slurm") as env:
        result = run_cli(sweep_args(tmp_path, data_dir, "seed=0,1", "logger=none", "hydra.launcher.timeout_min=5",
                                    "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
                                    "hydra.launcher.mem_gb=null", launcher="slurm"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    job_dirs = sorted(d.name for d in sweep.iterdir() if d.is_dir() and d.name != ".submitit")
    assert job_dirs == [f"data.subset=300,seed={s},trainer.max_epochs=2" for s in (0, 1)]
    assert all(metrics_of(sweep / d)["status"] == "completed" for d in job_dirs)
    arrays = list((sweep / ".submitit").glob("*_[01]"))  # one SLURM array, tasks <id>_0 and <id>_1
    assert len(arrays) == 2 and len({a.name.split("_")[0] for a in arrays}) == 1


@pytest.mark.slow
def test_ray_launcher_runs_jobs_as_ray_tasks_isolates_a_dead_one_and_resumes(tmp_path, data_dir):
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    from sweep_tasks import ATTEMPTS, CRASHING_SEED

    # A local Ray instance with 2 CPUs, 1 CPU a job: 4 jobs, two at a time; the job with CRASHING_SEED kills its
    # own process. Job processes import sweep_tasks (the task function) from the tests folder. Ray's memory monitor
    # is off: it kills tasks when the machine's memory is 95% used, which on a shared test machine is others' doing.
    args = sweep_args(tmp_path, data_dir, f"seed=0,1,2,{CRASHING_SEED}", "logger=wandb", "logger.mode=offline",
                      "hydra.launcher.init.num_cpus=2", "hydra.launcher.init.include_dashboard=false",
                      launcher="ray", epochs=1)
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(REPO / "src")]),
           "RAY_memory_monitor_refresh_ms": "0"}
    script = ["-c", "import sweep_tasks; sweep_tasks.main()"]
    result = run_cli(args, env=env, script=script)
    assert result.returncode == 1, result.stderr[-3000:]  # a job failed: the sweep says so, after running all
    assert "4 jobs, 3 completed, 0 diverged, 1 failed" in result.stdout
    sweep = only_sweep_dir(tmp_path)
    job = "data.subset=300,seed={},trainer.max_epochs=1".format
    dead, done = job(CRASHING_SEED), {job(s) for s in (0, 1, 2)}
    assert {d.name for d in sweep.iterdir() if d.is_dir()} == {dead, *done}
    assert {name: metrics_of(sweep / name)["status"] for name in done} == dict.fromkeys(done, "completed")
    assert metrics_of(sweep / dead)["status"] == "failed" and "died" in metrics_of(sweep / dead)["error"]
    assert len((sweep / dead / ATTEMPTS).read_text().splitlines()) == 1  # Ray did not run it again
    jobs = {j["dir"]: j for j in read_manifest(sweep)["jobs"].values()}
    assert jobs[dead]["status"] == "failed" and jobs[dead]["retries"] == 0
    assert all(jobs[name]["device"] == "cpu" and jobs[name]["retries"] == 0 for name in done)
    pids = [jobs[name]["pid"] for name in done] + [int((sweep / dead / ATTEMPTS).read_text())]
    assert len(set(pids)) == 4  # every job in a fresh process
    runs = [read_run(f) for name in done for f in find_run_files(sweep / name)]
    assert len({run.run_id for run in runs}) == 3 and {run.group for run in runs} == {sweep_group(sweep)}
    assert sorted(run.config["overrides"] for run in runs) == sorted(metrics_of(sweep / n)["overrides"] for n in done)

    # Resumed, asking for one retry: the completed jobs are skipped (their records untouched); the dead job is
    # run again, dies, is retried once, dies again, and both deaths are in the manifest.
    before = {name: (sweep / name / "metrics.json").read_text() for name in done}
    resumed = run_cli([*args, f"resume={sweep}", "hydra.launcher.max_retries=1"], env=env, script=script)
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert "4 jobs, 3 completed (3 skipped: finished earlier), 0 diverged, 1 failed" in resumed.stdout
    assert {name: (sweep / name / "metrics.json").read_text() for name in done} == before
    manifest = read_manifest(sweep)
    jobs = {j["dir"]: j for j in manifest["jobs"].values()}
    assert {name for name, j in jobs.items() if j.get("skipped")} == done and len(manifest["launches"]) == 2
    assert jobs[dead]["retries"] == 1 and "died" in jobs[dead]["retry_errors"][0]
    assert len((sweep / dead / ATTEMPTS).read_text().splitlines()) == 3


def test_ray_settings_are_checked_and_jobs_get_a_gpu_where_there_is_one():
    from tricklab.launch.ray_tasks import RaySettings, TaskResources

    settings = RaySettings.checked(address=None, num_cpus=2, num_gpus=None, max_retries=0, init={})
    assert TaskResources.on({"CPU": 8, "GPU": 4}, settings).num_gpus == 1
    assert TaskResources.on({"CPU": 8}, settings).num_gpus == 0
    cpu_job = TaskResources.on({"CPU": 8}, settings).env()
    assert cpu_job["CUDA_VISIBLE_DEVICES"] == "" and cpu_job["OMP_NUM_THREADS"] == "2"  # threads = CPU share
    shared = RaySettings.checked(address="auto", num_cpus=0.5, num_gpus=0.25, max_retries=1, init={})
    resources = TaskResources.on({"CPU": 1, "GPU": 1}, shared)
    assert resources.num_gpus == 0.25 and "CUDA_VISIBLE_DEVICES" not in resources.env()  # Ray sets it
    assert resources.env()["OMP_NUM_THREADS"] == "1"
    with pytest.raises(ConfigError, match=r"hydra.launcher.num_gpus=0.5 is more than the local Ray instance has \(0\)"):
        TaskResources.on({"CPU": 8}, RaySettings.checked(None, 1, 0.5, 0, {}))  # would wait forever for a GPU
    for key, value in [("num_gpus", -1), ("num_gpus", 1.5), ("num_cpus", 0), ("max_retries", -1),
                       ("address", "")]:
        with pytest.raises(ConfigError, match=f"hydra.launcher.{key}={value} is not allowed"):
            RaySettings.checked(**{**vars(settings), key: value})


@pytest.mark.parametrize("address", ["bogus", "127.0.0.1:1"])  # not an address; nothing listens there
def test_an_address_ray_cannot_use_is_a_one_paragraph_error(tmp_path, address):
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    result = run_cli(["-m", f"paths.output_dir={tmp_path}", "seed=0", "hydra/launcher=ray",
                      f"hydra.launcher.address={address}"], timeout=60)
    assert result.returncode == 2
    assert f"hydra.launcher.address={address}" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("multirun/*/*/metrics.json"))  # no job ran


def composed_hydra(*overrides: str) -> dict:
    """The ``hydra`` node composed for ``overrides``, unresolved (resolving the sweep folder would create it)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", list(overrides), return_hydra_config=True).hydra)


def test_local_launcher_config_composes():
    launcher = composed_hydra("hydra/launcher=local", "hydra.launcher.workers=3")["launcher"]
    assert launcher == {"_target_": "hydra_plugins.tricklab_launcher.local_launcher.WorkerPoolLauncher",
                        "workers": 3, "gpus": "auto", "fuse": 1, "jobs_per_gpu": 1}


def test_sweeps_use_the_local_launcher_unless_another_is_chosen():
    assert composed_hydra()["launcher"]["_target_"].endswith("local_launcher.WorkerPoolLauncher")
    assert composed_hydra()["launcher"]["workers"] is None  # one per GPU, else one per core (plan_slots)
    assert composed_hydra("hydra/launcher=basic")["launcher"]["_target_"] == \
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize(("overrides", "slots", "says"), [
    (["hydra.launcher.gpus=[0,1]", "hydra.launcher.jobs_per_gpu=2"], 4, None),
    (["hydra.launcher.gpus=[0,1]", "hydra.launcher.jobs_per_gpu=2", "hydra.launcher.workers=5"], 0, "at most 4"),
    (["hydra.launcher.gpus=[]", "hydra.launcher.jobs_per_gpu=2"], 0, "jobs_per_gpu=2 is not allowed without GPUs"),
    (["hydra.launcher.gpus=[]", "hydra.launcher.jobs_per_gpu=x"], 0, "jobs_per_gpu=x is not allowed"),
])
def test_local_launcher_checks_jobs_per_gpu_as_composed(overrides, slots, says, monkeypatch):
    """The launcher Hydra builds from the composed config: the grid sweeper asks its ``problems()`` before
    creating the sweep folder (``test_bad_inputs`` runs the same through the command line)."""
    from hydra.utils import instantiate

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the fake GPUs' ids
    launcher = instantiate(composed_hydra("hydra/launcher=local", *overrides)["launcher"])
    problems = launcher.problems()
    if says is None:
        assert problems == [] and len(launcher._slots()) == slots
    else:
        assert len(problems) == 1 and says in problems[0]


def test_slurm_config_gives_each_task_a_gpu_and_requeues():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    launcher = composed_hydra("hydra/launcher=slurm")["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["gpus_per_node"], launcher["tasks_per_node"], launcher["max_num_timeout"]) == (1, 1, 3)
    assert launcher["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


def test_ray_config_composes_with_ray_off_by_default():
    launcher = composed_hydra("hydra/launcher=ray")["launcher"]
    assert launcher == {"_target_": "hydra_plugins.tricklab_ray_launcher.ray_launcher.RayLauncher", "address": None,
                        "num_cpus": 1, "num_gpus": None, "max_retries": 0,
                        "init": {"num_cpus": None, "num_gpus": None, "include_dashboard": None}}


def test_two_launchers_on_one_sweep_merge_their_manifest_entries(tmp_path):
    """A SLURM array or two machines on a shared disk: each launcher's sweep.json writes keep the other's jobs."""
    first, second = SweepManifest(tmp_path, ["seed=0"]), SweepManifest(tmp_path, ["seed=1"])
    first.add(0, ["seed=0"], tmp_path / "seed=0")
    first.write()
    second.add(0, ["seed=1"], tmp_path / "seed=1")
    second.write()
    first.update(0, status="completed")
    manifest = read_manifest(tmp_path)
    assert set(manifest["jobs"]) == {"seed=0", "seed=1"}
    assert manifest["jobs"]["seed=0"]["status"] == "completed" and manifest["jobs"]["seed=1"]["status"] == "pending"
    assert len(manifest["launches"]) == 2
    assert {manifest["launches"][job["launch"]]["overrides"][0] for job in manifest["jobs"].values()} == \
        {"seed=0", "seed=1"}  # each job points at the launch that ran it


# --- what a sweep shows while it runs and when it ends -----------------------------------------------------

def test_sweep_progress_counts_jobs_and_estimates_from_finished_ones(monkeypatch):
    from tricklab.launch import progress as shown_progress

    now = [100.0]
    monkeypatch.setattr(shown_progress.time, "monotonic", lambda: now[0])
    progress = shown_progress.SweepProgress(total=6, earlier=1, workers=2)  # one job finished by an earlier launch
    assert progress.line() == "sweep 1/6 done · 0 running · 0 failed · 5 pending · ETA —"
    progress.started(1)
    progress.started(2)
    now[0] = 110.0
    assert progress.finished(1, "seed=1", "completed", 0.8125) == \
        "[2/6] #1 completed in 10.0 s · best val/acc 0.8125 · seed=1 · ETA 15 s"
    # 3 pending at 10 s each + job 2, 10 s into its 10 s, over 2 workers
    assert progress.eta_s() == 15.0
    progress.started(3)
    now[0] = 114.0
    progress.finished(2, "seed=2", "failed", None)
    # mean 12 s: 2 pending jobs + 8 s left of job 3, over 2 workers
    assert progress.line() == ("sweep 3/6 done · 1 running · 1 failed · 2 pending · ETA 16 s · "
                               "last: seed=2 best val/acc —")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_sweep_line_is_drawn_on_a_terminal_only():
    from tricklab.launch.progress import SweepProgress, shown

    progress = SweepProgress(total=4, earlier=0, workers=2)
    piped = io.StringIO()
    with shown(progress, piped):
        progress.started(0)
    assert piped.getvalue() == ""  # piped: no redrawn line, the finished jobs' log lines are the record
    terminal = _Terminal()
    with shown(progress, terminal):
        time.sleep(0.6)  # rich redraws twice a second
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # rich colours the numbers
    assert "sweep 0/4 done · 1 running · 0 failed · 3 pending · ETA —" in drawn


def test_an_interrupted_sweep_prints_the_command_that_resumes_it(tmp_path, monkeypatch, capsys):
    from tricklab.launch.jobs import SweepJobs

    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "seed=0,1", "resume=elsewhere", "init=he"])
    jobs = SweepJobs(None, None)
    jobs.manifest = SweepManifest(tmp_path, ["seed=0,1"])
    jobs.interrupted()
    assert f"Resume it with: python train.py -m seed=0,1 init=he resume={tmp_path}\n" in capsys.readouterr().out


def test_a_sweep_ends_with_its_configs_best_first_by_the_jobs_return_value(tmp_path, capsys):
    from tricklab.launch.jobs import print_results

    for name, seed, best, test in [("a0", 0, 0.5, 0.9), ("b0", 0, 0.7, 0.6), ("b1", 1, 0.9, 0.6)]:
        (tmp_path / name).mkdir()
        record = {"status": "completed", "seed": seed, "overrides": [f"init={name[0]}", f"seed={seed}"],
                  "best": {"val/acc": best}, "test": {"test/acc": test}, "epochs": 1}
        (tmp_path / name / "metrics.json").write_text(json.dumps(record))
    print_results(tmp_path)
    out = capsys.readouterr().out
    assert "best first by best/val/acc" in out
    assert out.index("init=b") < out.index("init=a")  # mean best val/acc 0.8 > 0.5, though test/acc is lower
    assert "0.8000 ± 0.1414" in out


def test_a_resumed_sweep_refuses_a_job_cut_short_whose_config_changed(tmp_path, capsys):
    from tricklab.checks import resumed_job_problems

    def job_config(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", [f"resume={tmp_path}", "hydra.sweep.subdir=job0", *overrides],
                           return_hydra_config=True)

    (tmp_path / "multirun.yaml").write_text("{}\n")  # resume= takes an earlier sweep's folder
    job = tmp_path / "job0"
    (job / ".hydra").mkdir(parents=True)
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    started = job_config("seed=0", "trainer.max_epochs=2")
    OmegaConf.save(OmegaConf.masked_copy(started, [k for k in started if k != "hydra"]), job / ".hydra/config.yaml")
    (job / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    assert resumed_job_problems(job_config("seed=0", "trainer.max_epochs=2", "logger=none")) == []
    assert resumed_job_problems(job_config("seed=0", "trainer.max_epochs=4")) == []  # trains on for longer
    assert "resumes with trainer.max_epochs 2 → 4" in capsys.readouterr().err
    (problem,) = resumed_job_problems(job_config("seed=1", "trainer.max_epochs=2"))
    assert f"{job} holds a run cut short" in problem and "seed 0 → 1" in problem
    (job / "metrics.json").write_text(json.dumps({"status": "failed"}))  # a failed job starts over: any config
    assert resumed_job_problems(job_config("seed=1")) == []
