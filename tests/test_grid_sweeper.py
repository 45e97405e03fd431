"""tricklab's grid sweeper: Hydra's grid exactly (jobs, order), named arms, every job checked before the sweep
folder exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli
from hydra.core.override_parser.overrides_parser import OverridesParser

from tricklab.errors import ConfigError
from tricklab.grid import arm_overrides, batches, expand
from tricklab.internals import hydra_basic_sweeper

PARSER = OverridesParser.create()
ARMS = {"sgd": ["optimizer=sgd", "optimizer.lr=0.1"], "adam": ["optimizer=adam", "optimizer.lr=0.001"]}
TINY = ["trainer.max_epochs=1", "data.subset=256", "logger=none", "threads=1", "callbacks.progress_bar=none"]


def jobs_of(*lines: str, arms=None) -> list[tuple[str, ...]]:
    parsed_arms = arm_overrides(arms, PARSER.parse_overrides) if arms else None
    return [job.overrides for job in expand(PARSER.parse_overrides(list(lines)), parsed_arms)]


@pytest.mark.parametrize("lines", [
    ["seed=0,1", "init=glorot,he"],
    ["init=he", "seed=range(0,3)", "optimizer.lr=0.1,0.01", "norm=choice(none,batch)"],
    ["seed=0,1", "optimizer.lr=0.1", "seed=5,6,7"],  # a key given twice keeps its first place, its last values
    ["+optimizer.foreach=true", "data.subset=10,20"],
    [],
])
def test_the_grid_is_hydras_basic_sweeper_grid_in_the_same_order(lines):
    (expected,) = hydra_basic_sweeper().split_arguments(PARSER.parse_overrides(lines), None)
    assert [list(job) for job in jobs_of(*lines)] == expected


def test_arms_are_zipped_and_crossed_with_the_other_keys():
    jobs = jobs_of("seed=0,1,2", "data.subset=100", arms=ARMS)
    assert len(jobs) == 6  # 2 arms × 3 seeds, not 2 optimizers × 2 rates × 3 seeds
    assert jobs[0] == ("optimizer=sgd", "optimizer.lr=0.1", "seed=0", "data.subset=100", "arm=sgd")
    assert {job[-1] for job in jobs} == {"arm=sgd", "arm=adam"}
    assert not any("optimizer=sgd" in job and "optimizer.lr=0.001" in job for job in jobs)


def test_an_arm_setting_a_key_given_once_wins_over_it():
    jobs = jobs_of("optimizer.lr=0.5", "seed=0", arms=ARMS)
    assert [job for job in jobs if "optimizer.lr=0.5" in job] == []


@pytest.mark.parametrize(("lines", "arms", "says"), [
    (["optimizer.lr=0.1,0.2"], ARMS, "set by hydra.sweeper.arms and also swept"),
    (["seed=0"], {"a": ["optimizer.lr=0.1,0.2"]}, "an arm is one setting"),
    (["seed=0"], {"a": []}, "non-empty list of overrides"),
    (["seed=0"], {"a": ["arm=b"]}, "reserved key arm"),
    (["optimizer.lr=interval(0.1,1)"], None, "cannot expand"),
])
def test_bad_arms_and_sweeps_are_refused(lines, arms, says):
    with pytest.raises(ConfigError, match=says):
        jobs_of(*lines, arms=arms)


def test_batches_cut_the_jobs_in_order():
    jobs = expand(PARSER.parse_overrides(["seed=0,1,2,3,4"]))
    assert [len(b) for b in batches(jobs, 2)] == [2, 2, 1] and batches(jobs, None) == [jobs]


def test_a_bad_value_in_any_job_stops_the_sweep_before_its_folder_exists(tmp_path):
    result = run_cli(["-m", f"paths.output_dir={tmp_path}", "seed=0,1", "optimizer.lr=0.1,-1", "dropout.p=0,2"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "optimizer.lr=-1 is not allowed" in result.stderr and "dropout.p=2 is not allowed" in result.stderr
    assert result.stderr.count("optimizer.lr=-1 is not allowed") == 1  # told once, not once per job
    assert list(tmp_path.iterdir()) == []  # no sweep folder, no job folder


def test_an_arms_sweep_runs_each_arm_over_the_seeds_and_records_the_arm(tmp_path, data_dir):
    arms = '{sgd:["optimizer=sgd","optimizer.lr=0.1"],adam:["optimizer=adam","optimizer.lr=0.001"]}'
    result = run_cli(["-m", f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *TINY, "seed=0,1",
                      f"hydra.sweeper.arms={arms}"])
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    records = [json.loads(p.read_text()) for p in Path(sweep).glob("*/metrics.json")]
    assert sorted((r["arm"], r["seed"]) for r in records) == [("adam", 0), ("adam", 1), ("sgd", 0), ("sgd", 1)]
    assert all(r["status"] == "completed" for r in records)
    assert {r["arm"]: r["choices"]["optimizer"] for r in records} == {"sgd": "sgd", "adam": "adam"}


def test_only_runs_the_named_arms_and_refuses_a_name_that_is_no_arm(tmp_path):
    from hydra_plugins.tricklab_sweeper.grid_sweeper import GridSweeper

    assert GridSweeper(arms=ARMS, only=["adam"])._selected_arms() == {"adam": ARMS["adam"]}
    assert GridSweeper(arms=ARMS)._selected_arms() == ARMS
    arms = '{sgd:["optimizer=sgd","optimizer.lr=0.1"],adam:["optimizer=adam","optimizer.lr=0.001"]}'
    result = run_cli(["-m", f"paths.output_dir={tmp_path}", "seed=0,1", f"hydra.sweeper.arms={arms}",
                      "hydra.sweeper.only=[adma]"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hydra.sweeper.only=['adma'] is not allowed: it must list arms of hydra.sweeper.arms (sgd, adam)" \
        in result.stderr
    assert list(tmp_path.iterdir()) == []
