"""hparams_search=optuna: the search space, samplers and pruners, errors, and real searches on 2 CPU workers
(pruning a certainly bad trial, seeds per trial, group choices on a grid, the report, a killed search resumed)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import REPO, run_cli
from optuna.trial import TrialState
from test_sweeps import composed_hydra, metrics_of, only_sweep_dir, read_manifest

from tricklab.errors import ConfigError
from tricklab.search.runner import reusable
from tricklab.search.space import parse_space
from tricklab.search.study import (
    JOURNAL_FILE,
    PRUNED_AT,
    RETRY_OF,
    SAMPLERS,
    SearchSettings,
    build_pruner,
    build_sampler,
    open_study,
)
from tricklab.search.trial import TrialLink, value_key

TESTS_DIR = Path(__file__).parent
GOOD, ALSO_GOOD, BAD = 0.005, 0.004, 1e-9  # learning rates; 1e-9 leaves the network at chance
LR_SPACE = "optimizer.lr=tag(log, interval(1e-9, 1e-2))"


def search_args(tmp_path: Path, data_dir: Path, *overrides: str, epochs: int = 3) -> list[str]:
    """A search with tests/conf/hparams_search/tiny.yaml on two CPU workers, tiny data."""
    return [f"hydra.searchpath=[file://{TESTS_DIR / 'conf'}]", "hparams_search=tiny", "hydra/launcher=local",
            "hydra.launcher.workers=2", "hydra.launcher.gpus=[]", f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}", "data.subset=512", "callbacks.progress_bar=none", "logger=none",
            f"trainer.max_epochs={epochs}", *overrides]


def load_study(sweep: Path) -> optuna.Study:
    return open_study(SearchSettings(), sweep)


# --- the search space and the settings (no training) -------------------------------------------------------

def test_every_form_of_the_search_space_becomes_its_distribution():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = parse_space({"optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "optimizer.momentum": "interval(0.8, 0.99)",
                         "architecture.width": "int(interval(32, 256))", "architecture.depth": "range(1, 5)",
                         "init": "choice(glorot, he)"}, ["seed=3", "norm=none,batch"])
    d = space.distributions
    assert d["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["optimizer.momentum"] == FloatDistribution(0.8, 0.99)
    assert d["architecture.width"] == IntDistribution(32, 256)
    assert d["architecture.depth"] == IntDistribution(1, 4)
    assert d["init"] == CategoricalDistribution(["glorot", "he"])
    assert d["norm"] == CategoricalDistribution(["none", "batch"])  # a sweep on the command line is searched
    assert space.fixed == ["seed=3"]
    assert space.overrides({"optimizer.lr": 0.01, "optimizer.momentum": 0.9, "architecture.width": 64,
                            "architecture.depth": 2, "init": "he", "norm": "batch"}) == [
        "seed=3", "optimizer.lr=0.01", "optimizer.momentum=0.9", "architecture.width=64", "architecture.depth=2",
        "init=he", "norm=batch"]
    grid = parse_space({"architecture.depth": "range(1, 7, 2)", "init": "choice(glorot, he)"}, []).grid()
    assert grid == {"architecture.depth": [1, 3, 5], "init": ["glorot", "he"]}
    with pytest.raises(ConfigError, match="grid sampler needs every parameter as choice"):
        space.grid()


@pytest.mark.parametrize(("spec", "says"), [
    ("tag(log, interval(0, 1))", "a log scale needs a low end > 0"),
    ("interval(0.1, 0.01)", "is not below its high end"),
    ("range(5, 1)", "needs lo < hi"),
])
def test_a_range_that_cannot_be_searched_names_key_value_and_forms(spec, says):
    with pytest.raises(ConfigError, match=says) as err:
        parse_space({"optimizer.lr": spec}, [])
    assert f"hydra.sweeper.params.optimizer.lr={spec}" in str(err.value) and "choice(a, b, ...)" in str(err.value)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_and_pruner_is_built(sampler):
    settings = SearchSettings(sampler=sampler)
    settings.check()
    built = build_sampler(settings, {"init": ["glorot", "he"]})
    kinds = {"tpe": "TPESampler", "gp": "GPSampler", "cmaes": "CmaEsSampler", "random": "RandomSampler",
             "qmc": "QMCSampler", "grid": "GridSampler"}
    assert isinstance(built, getattr(optuna.samplers, kinds[sampler]))
    for pruner, name in (("median", "MedianPruner"), ("successive_halving", "SuccessiveHalvingPruner"),
                         ("hyperband", "HyperbandPruner"), ("none", "NopPruner")):
        assert type(build_pruner(SearchSettings(pruner=pruner))).__name__ == name


def test_optuna_search_space_composes():
    hydra_cfg = composed_hydra("hparams_search=optuna")
    sweeper = hydra_cfg["sweeper"]
    assert sweeper["_target_"] == "hydra_plugins.tricklab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert (sweeper["sampler"], sweeper["pruner"], sweeper["storage"]) == ("tpe", "median", None)
    assert set(sweeper["params"]) == {"optimizer.lr", "optimizer.weight_decay", "init", "norm"}


@pytest.mark.parametrize(("overrides", "says"), [
    (["hydra.sweeper.sampler=bogus"], "hydra.sweeper.sampler=bogus is not allowed; sampler must be one of tpe, gp"),
    (["hydra.sweeper.pruner=often"], "hydra.sweeper.pruner=often is not allowed; pruner must be one of median"),
    (["optimizer.lr=interval(0.1, 0.01)"], "optimizer.lr=interval(0.1, 0.01) cannot be searched"),
    (["optimizer=momentum", "optimizer.momentum=interval(0.5, 1.5)"],
     "reaches optimizer.momentum=1.5, which is not allowed"),
])
def test_bad_search_settings_are_one_paragraph_errors_before_any_trial(tmp_path, overrides, says):
    result = run_cli([f"paths.output_dir={tmp_path}", "logger=none", "hparams_search=optuna", *overrides])
    assert result.returncode == 2, result.stderr[-2000:]
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("multirun/*/trial_*"))  # no trial ran


# --- a job's link to its trial, with two seeds (no training) -----------------------------------------------

def test_a_trials_seeds_report_their_mean_each_epoch_and_stop_together(tmp_path):
    settings = SearchSettings(seeds_per_trial=2, pruner="median", n_startup_trials=1, warmup_epochs=0)
    study = open_study(settings, tmp_path)
    good = study.ask()
    good.report(0.8, 1)
    good.report(0.9, 2)
    study.tell(good, 0.9)
    number = study.ask().number
    seed0, seed1 = (TrialLink(settings, tmp_path, number, i) for i in (0, 1))
    assert seed0.report(1, 0.9) is False  # its sibling has not reached epoch 1: nothing to report yet
    assert seed1.report(1, 0.7) is False  # mean 0.8 at epoch 1: not below the median
    assert study.trials[number].intermediate_values == {1: pytest.approx(0.8)}
    assert seed0.report(2, 0.8) is False
    assert seed1.report(2, 0.9) is True  # mean 0.85 at epoch 2, the best so far, below the median 0.9: pruned
    trial = study.trials[number]
    assert trial.intermediate_values[2] == pytest.approx(0.85) and trial.user_attrs[PRUNED_AT] == 2
    assert trial.user_attrs[value_key(2, 0)] == 0.8
    assert seed0.report(3, 0.9) is True  # the sibling still training stops at its next epoch


def test_a_completed_folder_is_reused_only_with_the_same_overrides(tmp_path):
    job = tmp_path / "trial_0"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps({"status": "completed", "overrides": ["optimizer.lr=0.01"],
                                                  "best": {"val/acc": 0.5}}))
    assert reusable(job, ["optimizer.lr=0.01"]) == ("completed", 0.5)
    assert reusable(job, ["optimizer.lr=0.02"]) is None  # other parameters: never the old value
    assert not job.exists() and len(list(tmp_path.glob("trial_0.replaced-*"))) == 1
    assert reusable(tmp_path / "trial_1", ["optimizer.lr=0.02"]) is None
    pruned = tmp_path / "trial_2"
    pruned.mkdir()
    (pruned / "metrics.json").write_text(json.dumps({"status": "pruned", "overrides": ["optimizer.lr=0.01"],
                                                     "best": {"val/acc": 0.1}}))
    assert reusable(pruned, ["optimizer.lr=0.01"]) is None  # a pruned run is never taken for a completed one


class FakeJobs:
    """Two workers on a clock: job ``num`` takes ``durations[num]`` ticks; records when each job starts."""

    def __init__(self, tmp_path: Path, durations: dict[int, int]) -> None:
        self.tmp_path, self.durations = tmp_path, durations
        self.clock, self.running, self.started, self.configs = 0, {}, {}, {}

    def free_workers(self) -> int:
        return 2 - len(self.running)

    def start_job(self, num: int, overrides: list[str], config=None) -> None:
        self.running[num], self.started[num] = self.clock + self.durations[num], self.clock
        self.configs[num] = config

    def wait_jobs(self) -> list:
        from hydra.core.utils import JobReturn, JobStatus

        self.clock = min(self.running.values())
        ended = [num for num, end in self.running.items() if end == self.clock]
        returns = []
        for num in ended:
            del self.running[num]
            ret = JobReturn(working_dir=str(self.tmp_path / f"job{num}"), status=JobStatus.COMPLETED)
            ret.return_value = 0.5
            returns.append((num, ret))
        return returns


def test_a_new_trial_is_asked_as_soon_as_a_worker_is_free(tmp_path):
    from tricklab.search.runner import Search

    settings = SearchSettings(n_trials=4, sampler="random")
    study = optuna.create_study(direction="maximize", sampler=build_sampler(settings))
    jobs = FakeJobs(tmp_path, {0: 10, 1: 1, 2: 1, 3: 1})  # trial 0 is slow
    told = Search(settings, parse_space({"optimizer.lr": "interval(0.001, 0.01)"}, []), study, jobs, tmp_path,
                  check=lambda overrides: None, base_seed=0, n_trials=4).run()
    assert told == {"completed": 4, "pruned": 0, "failed": 0}
    assert jobs.started == {0: 0, 1: 0, 2: 1, 3: 2}  # not batch by batch: trials 2 and 3 ran beside slow trial 0
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4


class FailingJobs(FakeJobs):
    """FakeJobs whose jobs in ``failing`` fail: with the metrics.json a run hit by a full disk leaves, or (no
    record) with the exception the launcher holds."""

    def __init__(self, tmp_path: Path, durations: dict[int, int], failing: dict[int, str | None]) -> None:
        super().__init__(tmp_path, durations)
        self.failing = failing

    def wait_jobs(self) -> list:
        from hydra.core.utils import JobStatus

        returns = super().wait_jobs()
        for num, ret in returns:
            if num in self.failing:
                if error := self.failing[num]:
                    job = Path(ret.working_dir)
                    job.mkdir(parents=True)
                    (job / "metrics.json").write_text(json.dumps({"status": "interrupted", "error": error}))
                ret.status, ret.return_value = JobStatus.FAILED, RuntimeError("the job's process died")
        return returns


def test_a_failed_trials_cause_is_kept_in_the_study_and_printed_in_the_closing_lines(tmp_path):
    from hydra_plugins.tricklab_optuna_sweeper.optuna_sweeper import _summary
    from tricklab.search.runner import Search

    settings = SearchSettings(n_trials=3, sampler="random")
    study = optuna.create_study(direction="maximize", sampler=build_sampler(settings))
    full = "OSError: [Errno 28] No space left on device: '/x/trial_1/checkpoints/last.ckpt.tmp'"
    jobs = FailingJobs(tmp_path, {0: 1, 1: 1, 2: 1}, {1: full, 2: None})
    told = Search(settings, parse_space({"optimizer.lr": "interval(0.001, 0.01)"}, []), study, jobs, tmp_path,
                  check=lambda overrides: None, base_seed=0, n_trials=3).run()
    assert told == {"completed": 1, "pruned": 0, "failed": 2}
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert "error" not in study.trials[0].user_attrs
    assert study.trials[1].user_attrs["error"] == full  # the run's own record says why
    assert study.trials[2].user_attrs["error"] == "the job's process died"  # no record: the launcher's error
    lines = _summary(study, tmp_path).splitlines()
    assert lines[0].startswith(f"Search {tmp_path}: 3 trials, 1 completed, 0 pruned, 2 failed")
    assert lines[1:] == [f"  trial 1 failed: {full}", "  trial 2 failed: the job's process died"]


@pytest.mark.parametrize("seeds", [1, 2])
def test_each_trial_is_composed_once_and_its_first_job_started_with_that_config(tmp_path, seeds):
    from tricklab.search.runner import Search

    composed = []

    def check(overrides):  # the sweeper's check composes and validates: count how often, hand back a config
        composed.append(overrides)
        return f"config {len(composed) - 1}"

    settings = SearchSettings(n_trials=3, sampler="random", seeds_per_trial=seeds)
    study = optuna.create_study(direction="maximize", sampler=build_sampler(settings))
    jobs = FakeJobs(tmp_path, dict.fromkeys(range(3 * seeds), 1))
    Search(settings, parse_space({"optimizer.lr": "interval(0.001, 0.01)"}, []), study, jobs, tmp_path,
           check=check, base_seed=0, n_trials=3).run()
    assert len(composed) == 3  # once a trial (it was twice: the check, then the launcher's own composition)
    assert all(any(o.startswith("hydra.sweep.subdir=trial_") for o in overrides) for overrides in composed)
    # The first job of trial n starts with the config its check composed; a further seed's job is composed by
    # the launcher (other overrides: its seed and folder).
    assert jobs.configs == {n * seeds + i: f"config {n}" if i == 0 else None for n in range(3) for i in range(seeds)}


# --- real searches -----------------------------------------------------------------------------------------

def test_a_search_prunes_a_certainly_bad_trial_and_reports_it(tmp_path, data_dir):
    # Two good trials first (one finishes before the bad one starts: the median pruner's one startup trial).
    enqueue = f"hydra.sweeper.enqueue=[{{optimizer.lr:{GOOD}}},{{optimizer.lr:{ALSO_GOOD}}},{{optimizer.lr:{BAD}}}]"
    result = run_cli(search_args(tmp_path, data_dir, LR_SPACE, enqueue))
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    assert (sweep / JOURNAL_FILE).is_file()
    study = load_study(sweep)
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    bad = trials[2]
    assert bad.params == {"optimizer.lr": BAD} and bad.state == TrialState.PRUNED
    record = metrics_of(sweep / "trial_2")
    assert record["status"] == "pruned" and record["pruned_at_epoch"] == bad.user_attrs[PRUNED_AT]
    assert record["epochs"] == record["pruned_at_epoch"] < 3 and "test" not in record  # stopped early, not tested
    manifest = read_manifest(sweep)
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    assert manifest["counts"]["pruned"] == pruned and manifest["counts"]["failed"] == 0
    assert manifest["counts"]["completed"] == 6 - pruned
    assert len({job["pid"] for job in manifest["jobs"].values()}) == 2  # two workers, kept between trials
    assert f"6 trials, {6 - pruned} completed, {pruned} pruned, 0 failed" in result.stdout

    from tricklab.cli import main

    assert main(["report", str(sweep)]) == 0
    pngs = sorted(p.name for p in sweep.glob("search_*.png"))
    assert pngs == ["search_intermediate_values.png", "search_optimization_history.png",
                    "search_parallel_coordinate.png", "search_param_importances.png"]
    assert all((sweep / p).stat().st_size > 1000 for p in pngs)
    report = (sweep / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in rows] == ["completed"] * (6 - pruned) + ["pruned"] * pruned
    assert rows[0].startswith(f"| {study.best_trial.number} |")  # best first
    launch = json.loads((sweep / "search.json").read_text())["launch"]
    assert launch == ["python", str(REPO / "train.py")]  # as run_cli started it
    best_line = next(line for line in report.splitlines() if line.startswith(shlex.join(launch)))
    assert f"optimizer.lr={study.best_params['optimizer.lr']!r}" in best_line and "hparams_search" not in best_line


def test_seeds_per_trial_gives_each_trial_its_seeds_and_their_mean(tmp_path, data_dir):
    result = run_cli(search_args(tmp_path, data_dir, LR_SPACE, "hydra.sweeper.seeds_per_trial=2",
                                 "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=none", "seed=5", epochs=2))
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    trials = load_study(sweep).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # n_trials counts configs, not runs
    for trial in trials:
        records = [metrics_of(sweep / f"trial_{trial.number}" / f"seed_{i}") for i in (0, 1)]
        assert [r["seed"] for r in records] == [5, 6]
        assert all(f"optimizer.lr={trial.params['optimizer.lr']!r}" in r["overrides"] for r in records)
        values = [r["best"]["val/acc"] for r in records]
        assert trial.value == pytest.approx(sum(values) / 2) and trial.user_attrs["seed_values"] == values
        assert trial.user_attrs["value_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
        for epoch in (1, 2):  # what the trial reported each epoch: the mean of its seeds' val/acc then
            per_seed = [float(_history(sweep / f"trial_{trial.number}" / f"seed_{i}")[epoch - 1]["val/acc"])
                        for i in (0, 1)]
            assert trial.intermediate_values[epoch] == pytest.approx(sum(per_seed) / 2)


def test_group_choices_compose_on_a_grid(tmp_path, data_dir):
    result = run_cli(search_args(tmp_path, data_dir, "hydra.sweeper.sampler=grid", "hydra.sweeper.pruner=none",
                                 "init=choice(glorot, he)", "norm=choice(none, batch)", epochs=1))
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    trials = load_study(sweep).get_trials()
    assert len(trials) == 4  # n_trials=6 is cut to the grid's 4 points
    assert {(t.params["init"], t.params["norm"]) for t in trials} == {
        (i, n) for i in ("glorot", "he") for n in ("none", "batch")}
    for trial in trials:  # each trial's run composed the config groups it was given
        choices = metrics_of(sweep / f"trial_{trial.number}")["choices"]
        assert {"init": choices["init"], "norm": choices["norm"]} == trial.params


@pytest.mark.slow
def test_a_search_killed_part_way_resumes_keeps_its_trials_and_retries_the_stale_one_once(tmp_path, data_dir):
    # 30 epochs: a few seconds a trial, time enough to kill the search in the middle of one.
    args = search_args(tmp_path, data_dir, LR_SPACE, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none",
                       epochs=30)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once the study holds a completed trial and another one is training
        journals = list(tmp_path.glob(f"multirun/*/{JOURNAL_FILE}"))
        states = [t.state for t in load_study(journals[0].parent).get_trials()] if journals else []
        statuses = [json.loads(p.read_text())["status"] for p in tmp_path.glob("multirun/*/trial_*/metrics.json")]
        if TrialState.COMPLETE in states and "running" in statuses:
            break
        time.sleep(0.2)
    os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and its workers, mid-trial
    launcher.wait()
    sweep = only_sweep_dir(tmp_path)
    before = {t.number: t for t in load_study(sweep).get_trials()}
    done = {n for n, t in before.items() if t.state == TrialState.COMPLETE}
    stale = {n for n, t in before.items() if t.state == TrialState.RUNNING}
    assert done and stale and len(done) < 4
    done_records = {n: (sweep / f"trial_{n}" / "metrics.json").read_text() for n in done}

    resumed = run_cli([*args, f"resume={sweep}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_sweep_dir(tmp_path) == sweep
    trials = load_study(sweep).get_trials()
    by_number = {t.number: t for t in trials}
    assert all(by_number[n].value == before[n].value for n in done)  # kept, not run again
    assert all((sweep / f"trial_{n}" / "metrics.json").read_text() == done_records[n] for n in done)
    assert all(by_number[n].state == TrialState.FAIL for n in stale)
    retries = [t for t in trials if RETRY_OF in t.user_attrs]
    assert sorted(t.user_attrs[RETRY_OF] for t in retries) == sorted(stale)  # each stale trial retried once
    assert all(t.params == before[t.user_attrs[RETRY_OF]].params and t.state == TrialState.COMPLETE for t in retries)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4  # n_trials reached, the stale ones not counted
    assert len(trials) == 4 + len(stale)


def _history(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with (run_dir / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# --- bad inputs and damaged records of a search (issue 22): one paragraph, exit 2, nothing created or touched -

def hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


SPACE = {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}
FIXED = ["trainer.max_epochs=1", "data.subset=256"]


def fake_search(folder: Path, settings: SearchSettings | None = None, fixed: list[str] = FIXED) -> Path:
    """A search folder as a finished search leaves it (a journal with two completed trials, search.json), made
    without training."""
    from tricklab.search.guard import remember_search
    from tricklab.search.study import write_search_file

    settings = settings or SearchSettings()
    folder.mkdir(parents=True, exist_ok=True)
    space = parse_space(SPACE, fixed)
    study = open_study(settings, folder)
    remember_search(study, settings, space)
    for value in (0.5, 0.6):
        study.tell(study.ask(space.distributions), value)
    write_search_file(folder, settings, space.fixed, space.specs)
    return folder


@pytest.mark.parametrize(("settings", "says"), [
    ({"seed": -1}, "hydra.sweeper.seed=-1 is not allowed; the sampler's seed must be null or an integer in [0, 2**32)"),
    ({"seed": 2**32}, "hydra.sweeper.seed=4294967296 is not allowed"),
    ({"seed": True}, "hydra.sweeper.seed=True is not allowed"),
    ({"study_name": ""}, "hydra.sweeper.study_name='' is not allowed; it must be a non-empty string"),
    ({"retry_running": "yes"}, "hydra.sweeper.retry_running='yes' is not allowed; it must be true or false"),
    ({"storage": "foo://x"}, "foo:// is not a storage scheme Optuna can use"),
    ({"storage": "postgresqll://h/db"}, "postgresqll:// is not a storage scheme"),
    ({"storage": "not a url"}, "hydra.sweeper.storage=not a url is not a storage URL"),
    ({"storage": "sqlite:////no/such/folder/x.db"}, "the folder /no/such/folder of its database does not exist"),
    ({"storage": "sqlite://"}, "a database in memory, which the trials' processes cannot see"),
    ({"storage": "sqlite:///:memory:"}, "a database in memory"),
])
def test_search_settings_that_cannot_work_are_one_paragraph(settings, says):
    with pytest.raises(ConfigError) as err:
        SearchSettings(**settings).check()
    assert says in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_sqlite_storage_in_an_existing_folder_and_a_null_seed_pass(tmp_path):
    SearchSettings(storage=f"sqlite:///{tmp_path}/study.db", seed=None).check()
    SearchSettings(seed=2**32 - 1).check()
    assert not (tmp_path / "study.db").exists()  # checking the URL creates nothing


def test_glob_over_a_group_choice_is_the_choice_of_the_options_it_matches():
    from optuna.distributions import CategoricalDistribution

    options = {"init": ["he", "glorot", "default", "glorot_uniform"]}.get
    space = parse_space({}, ["init=glob(glorot*)"], lambda group: options(group) or [])
    assert space.distributions["init"] == CategoricalDistribution(["glorot", "glorot_uniform"])
    space = parse_space({"init": "glob(*,exclude=default)"}, [], lambda group: options(group) or [])
    assert space.distributions["init"] == CategoricalDistribution(["glorot", "glorot_uniform", "he"])
    with pytest.raises(ConfigError, match=r"optimizer.lr=glob\(\*\) cannot be searched: glob\(\) picks choices of a "
                                          r"config group, and optimizer.lr is not a config group"):
        parse_space({}, ["optimizer.lr=glob(*)"], lambda group: options(group) or [])
    with pytest.raises(ConfigError, match=r"init=glob\(zz\*\) cannot be searched: it matches none of the choices of "
                                          r"the config group init \(default, glorot"):
        parse_space({}, ["init=glob(zz*)"], lambda group: options(group) or [])
    with pytest.raises(ConfigError, match="glob\\(\\) picks choices of a config group"):  # no loader to list them
        parse_space({}, ["init=glob(*)"])


def refuse_momentum(overrides: list[str]) -> None:
    if "optimizer.momentum=0.5" in overrides:
        raise ConfigError("optimizer.momentum=0.5 is not allowed: a test's rule; optimizer.momentum must be ≥ 0.6.")


@pytest.mark.parametrize(("enqueue", "says"), [
    ([{"optimizer.lrr": 0.001}], "hydra.sweeper.enqueue[0]={optimizer.lrr: 0.001} is not allowed: optimizer.lrr is "
                                 "not searched by this search, and Optuna would drop it silently"),
    ([{"optimizer.lr": 0.01, "seed": 3}], "seed is not searched by this search"),
    ([{"optimizer.lr": 5.0}], "optimizer.lr=5.0 (the range is tag(log, interval(1e-4, 1e-1))) is outside its "
                              "parameter's range"),
    ([{"optimizer.lr": "fast"}], "optimizer.lr=fast (the range is"),
    ([{"optimizer.lr": True}], "optimizer.lr=true (the range is"),
    ([{"init": "hee"}], "init=hee (the range is choice(glorot, he)) is outside"),
    ([{"optimizer.lr": 0.01}, {"optimizer.momentum": 0.5}], "hydra.sweeper.enqueue[1]={optimizer.momentum: 0.5} is "
                                                            "not allowed: its config fails tricklab's checks"),
    ([0.001], "hydra.sweeper.enqueue[0]=0.001 is not allowed: it is not a mapping"),
    ({"optimizer.lr": 0.01}, "it must be a list"),
])
def test_an_enqueued_config_that_would_not_run_as_given_is_refused_up_front(enqueue, says):
    from tricklab.search.guard import enqueue_problems

    space = parse_space({**SPACE, "init": "choice(glorot, he)", "optimizer.momentum": "choice(0.5, 0.9)"}, [])
    found = enqueue_problems(enqueue, space, refuse_momentum)
    assert len(found) == 1 and says in found[0] and "\n" not in found[0], found
    assert "each entry of hydra.sweeper.enqueue must map searched parameters" in found[0] or "tricklab" in found[0]


def test_enqueued_configs_within_the_space_pass():
    from tricklab.search.guard import enqueue_problems

    space = parse_space({**SPACE, "init": "choice(glorot, he)", "architecture.depth": "range(1, 5)"}, [])
    assert enqueue_problems([{"optimizer.lr": 0.001, "init": "he"}, {"architecture.depth": 4}], space,
                            refuse_momentum) == []


@pytest.mark.parametrize(("damage", "says"), [
    ("truncate", "its last line is cut short"),
    ("garbage", "line 1 is not a JSON record"),
    ("not_optuna", "line 1 is not a record of an Optuna journal"),
    ("empty", "it is empty"),
    ("directory", "it is a folder, not a file"),
    ("missing", "it does not exist"),
])
def test_a_damaged_journal_is_one_paragraph_in_the_report_and_nothing_is_touched(tmp_path, capsys, damage, says):
    from tricklab.cli import main

    sweep = fake_search(tmp_path / "sweep")
    journal = sweep / JOURNAL_FILE
    data = journal.read_bytes()
    if damage in ("directory", "missing"):
        journal.unlink()
        if damage == "directory":
            journal.mkdir()
    else:
        journal.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not json\n" + data,
                             "not_optuna": b"[1, 2]\n" + data, "empty": b""}[damage])
    before, listing = hashes(sweep), sorted(sweep.rglob("*"))
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert f"{journal} cannot be used as the search's study: {says}" in err and "Nothing was changed" in err, err
    assert err.count("tricklab: error:") == 1 and "Traceback" not in err
    assert hashes(sweep) == before and sorted(sweep.rglob("*")) == listing  # no lock file, no journal created


@pytest.mark.parametrize("content", ['{"study_name": ', "[1, 2]", '{"study_name": "tricklab"}', "",
                                     '{"study_name": "t", "storage": null, "params": [], "fixed": []}'])
def test_an_unreadable_search_json_is_one_paragraph_in_the_report(tmp_path, capsys, content):
    from tricklab.cli import main

    sweep = fake_search(tmp_path / "sweep")
    (sweep / "search.json").write_text(content)
    before = hashes(sweep)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert f"{sweep / 'search.json'} cannot be read (" in err and "Nothing was changed" in err, err
    assert hashes(sweep) == before


def test_a_search_json_naming_a_study_its_storage_lacks_is_one_paragraph(tmp_path, capsys):
    from tricklab.cli import main

    sweep = fake_search(tmp_path / "sweep")
    info = json.loads((sweep / "search.json").read_text())
    (sweep / "search.json").write_text(json.dumps({**info, "study_name": "other"}))
    assert main(["report", str(sweep)]) == 2
    assert "holds no study named other" in capsys.readouterr().err


def test_a_readable_search_folder_is_reported(tmp_path, capsys):
    from tricklab.cli import main

    sweep = fake_search(tmp_path / "sweep")
    assert main(["report", str(sweep)]) == 0
    assert "2 trials: 2 completed" in (sweep / "report.md").read_text()


def study_mismatch(storage_dir: Path, settings: SearchSettings, space_spec: dict, fixed: list[str],
                   info: dict | None = None) -> list[str]:
    from tricklab.search.guard import open_storage, study_problems

    return study_problems(open_storage(settings, storage_dir), settings, parse_space(space_spec, fixed), info,
                          "the storage")


def test_a_foreign_study_in_the_storage_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    optuna.create_study(study_name="tricklab", storage=url, direction="minimize")
    other = optuna.create_study(study_name="other", storage=url, direction="maximize")
    other.tell(other.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 1.0)
    both = optuna.create_study(study_name="two", storage=url, directions=["maximize", "minimize"])
    assert both
    (found,) = study_mismatch(tmp_path, SearchSettings(storage=url), SPACE, FIXED)
    assert "the storage already holds a study named tricklab, which minimizes its objective" in found
    assert "would invert the search" in found and "Nothing was changed" in found
    (found,) = study_mismatch(tmp_path, SearchSettings(storage=url, study_name="other"), SPACE, FIXED)
    assert "sampled from another search space: x=interval(0.0, 1.0) is not searched now; optimizer.lr=tag(log, " \
           "interval(0.0001, 0.1)) was not searched then" in found
    (found,) = study_mismatch(tmp_path, SearchSettings(storage=url, study_name="two"), SPACE, FIXED)
    assert "optimizes maximize, minimize" in found
    assert study_mismatch(tmp_path, SearchSettings(storage=url, study_name="new"), SPACE, FIXED) == []


def test_a_study_started_by_another_search_is_refused_and_the_same_search_continues(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    fake_search(tmp_path / "first", SearchSettings(storage=url))
    settings = SearchSettings(storage=url)
    assert study_mismatch(tmp_path, settings, SPACE, FIXED) == []  # the same search: a second launcher may join
    assert study_mismatch(tmp_path, settings, SPACE, [*FIXED, "paths.output_dir=/elsewhere", "logger=wandb"]) == []
    (found,) = study_mismatch(tmp_path, settings, {"optimizer.lr": "interval(1e-4, 1e-1)"}, FIXED)
    assert "optimizer.lr was tag(log, interval(0.0001, 0.1)), now interval(0.0001, 0.1)" in found
    (found,) = study_mismatch(tmp_path, settings, SPACE, [*FIXED, "data.subset=512", "norm=batch"])
    assert "other fixed overrides (data.subset 256 → 512, norm (not set) → batch)" in found
    (found,) = study_mismatch(tmp_path, SearchSettings(storage=url, seeds_per_trial=3), SPACE, FIXED)
    assert "ran hydra.sweeper.seeds_per_trial=1 seeds, and this search gives 3" in found


# Each runs the search command to its checks (a few seconds: no trial starts): (extra overrides, what the message
# says). "{grid}", "{search}", "{damaged}" are folders the test makes.
SWEEPER_REFUSES = [
    (["resume={grid}"], "is the folder of a grid sweep (it holds multirun.yaml"),
    (["resume={search}", "overwrite=true"], "overwrite=true cannot retrain the search in"),
    (["resume={damaged}"], "optuna.journal cannot be used as the search's study: its last line is cut short"),
    (["resume={search}", "hydra.sweeper.study_name=other"], "and this search names another: "
                                                            "hydra.sweeper.study_name=other"),
    (["resume={search}", "optimizer.lr=tag(log, interval(1e-6, 1e-1))"], "sampled from another search space"),
    (["hydra.sweeper.storage=sqlite:///{tmp}/foreign.db"], "which minimizes its objective"),
    (["hydra.sweeper.enqueue=[{optimizer.lr:5.0}]"], "optimizer.lr=5.0 (the range is tag(log, interval(1e-4, 1e-1)))"),
    (["hydra.sweeper.enqueue=[{optimizer.lrr:0.001}]"], "optimizer.lrr is not searched by this search"),
    (["hydra.sweeper.seed=-1"], "hydra.sweeper.seed=-1 is not allowed"),
    (["hydra.sweeper.storage=foo://x"], "foo:// is not a storage scheme"),
    (["init=glob(zz*)"], "matches none of the choices of the config group init"),
    (["hydra/launcher=local", "hydra.launcher.jobs_per_gpu=2"], "hydra.launcher.jobs_per_gpu=2 is not allowed "
                                                                "without GPUs, and no GPU is given"),
]


@pytest.mark.parametrize(("extra", "says"), SWEEPER_REFUSES, ids=[" ".join(c[0])[:50] for c in SWEEPER_REFUSES])
def test_the_search_refuses_before_it_creates_or_touches_anything(tmp_path, extra, says):
    fake_search(tmp_path / "search", fixed=[])
    damaged = fake_search(tmp_path / "damaged", fixed=[])
    journal = (damaged / JOURNAL_FILE).read_bytes()
    (damaged / JOURNAL_FILE).write_bytes(journal[:-5])
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "multirun.yaml").write_text("{}\n")
    (tmp_path / "grid" / "sweep.json").write_text('{"jobs": {}}\n')
    optuna.create_study(study_name="tricklab", storage=f"sqlite:///{tmp_path}/foreign.db", direction="minimize")
    before = hashes(tmp_path)
    out = tmp_path / "out"
    args = [a.replace("{grid}", str(tmp_path / "grid")).replace("{search}", str(tmp_path / "search"))
            .replace("{damaged}", str(damaged)).replace("{tmp}", str(tmp_path)) for a in extra]
    gpus = "hydra.launcher.gpus=auto" if "hydra/launcher=local" in extra else "seed=0"  # auto: finds none here
    result = run_cli([f"hydra.searchpath=[file://{TESTS_DIR / 'conf'}]", "hparams_search=tiny",
                      f"paths.output_dir={out}", "logger=none", gpus, "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
                      *args], timeout=120, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.stderr[-3000:]
    assert says in result.stderr and "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.stderr.count("tricklab: error:") == 1
    assert not out.exists() and hashes(tmp_path) == before  # no folder, no journal, search.json or lock written


def test_a_grid_sweep_refuses_a_searchs_folder(tmp_path):
    search = fake_search(tmp_path / "search")
    before = hashes(tmp_path)
    result = run_cli(["-m", f"paths.output_dir={tmp_path / 'out'}", "logger=none", "seed=0,1", f"resume={search}"],
                     timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{search} is the folder of a search (it holds search.json, optuna.journal), and this is a grid sweep" \
           in result.stderr and "Traceback" not in result.stderr
    assert hashes(tmp_path) == before and not (search / "multirun.yaml").exists()


def test_the_best_trial_is_given_as_the_search_was_started(tmp_path):
    """An installed tricklab has no train.py: the best command starts with the search's own launch words, and a
    search.json from before they were recorded gets the checkout's."""
    from tricklab.search.report import best_command

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"optimizer.lr": 0.01}, value=0.9,
                                              distributions={"optimizer.lr": optuna.distributions.FloatDistribution(
                                                  1e-3, 1e-1, log=True)}))
    info = {"fixed": ["hparams_search=tiny", "init=he"], "seeds_per_trial": 2, "launch": ["tricklab", "train"]}
    assert best_command(info, study) == "tricklab train -m init=he optimizer.lr=0.01 seed=0,1"
    del info["launch"]
    assert best_command(info, study).startswith("python train.py -m init=he ")
