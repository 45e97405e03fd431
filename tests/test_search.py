"""hparams_search=optuna: the search space, samplers and pruners, errors, and real searches on 2 CPU workers
(pruning a certainly bad trial, seeds per trial, group choices on a grid, the report, a killed search resumed)."""

from __future__ import annotations

import json
import os
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
        self.clock, self.running, self.started = 0, {}, {}

    def free_workers(self) -> int:
        return 2 - len(self.running)

    def start_job(self, num: int, overrides: list[str]) -> None:
        self.running[num], self.started[num] = self.clock + self.durations[num], self.clock

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
    best_line = next(line for line in report.splitlines() if line.startswith("python train.py"))
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
