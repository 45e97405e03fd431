"""The shipped studies (tricklab/conf/experiment/*.yaml with a study block): each composes, its claims hold together
with its arms, and it expands to the job count its block implies; a smoke run of every study completes (slow); a bad
claim or an unknown study is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tricklab.analysis.studies import study_files
from tricklab.analysis.study import Study
from tricklab.config import CONF_DIR, validate
from tricklab.data.files import DEBIAN_FASHION_MNIST
from tricklab.grid import arm_overrides, expand

STUDIES = sorted(study_files())
NEEDS_FASHION = {"dropout_cnn"}


def composed(name: str, overrides: list[str] = ()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", [f"experiment={name}", *overrides], return_hydra_config=True)


def test_the_studies_are_there():
    assert {"averaging", "batchnorm", "clipping", "dropout", "dropout_cnn", "init_depth", "init_stats", "input_scaling",
            "lr_decay", "norms", "optimizers", "overfitting", "residual"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_composes_and_expands_to_its_job_count(name, make_config):
    cfg = composed(name)
    arms = OmegaConf.to_container(cfg.hydra.sweeper.arms)
    study = Study.from_config(name, OmegaConf.to_container(cfg.study), arms)  # claims name arms that exist
    assert study.claims and all(claim.source for claim in study.claims)
    parser = OverridesParser.create()
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    jobs = expand(parser.parse_overrides(params), arm_overrides(arms, parser.parse_overrides))
    seeds = [int(s) for s in str(cfg.hydra.sweeper.params.seed).split(",")]
    assert len(jobs) == study_files()[name].jobs() * len(seeds) == len(arms) * len(seeds)
    plan = study_files()[name].plan()
    assert seeds == list(range(plan.pilot))  # a plain multirun of the study is its pilot
    assert plan.pilot >= 4 and all(claim.delta > 0 for claim in study.claims)
    for arm, overrides in arms.items():  # every arm is a valid run
        validate(make_config([f"experiment={name}", *overrides, f"arm={arm}"]))


def test_a_claim_naming_an_unknown_arm_is_refused_before_the_sweep_folder_exists(tmp_path):
    result = run_cli(["-m", "experiment=norms", "study.claims.0.arms=[batchnorm]", f"paths.output_dir={tmp_path}",
                      "hydra/launcher=local"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "names arm 'batchnorm', which hydra.sweeper.arms does not define" in result.stderr
    assert not (tmp_path / "multirun").exists() or not any((tmp_path / "multirun").iterdir())


def test_an_unknown_study_lists_the_known_ones():
    from tricklab.cli import main

    assert main(["study", "batch_norm"]) == 2


def test_a_study_chooses_its_seeds_and_refuses_a_seed_override(tmp_path, capfd):
    from tricklab.cli import main

    assert main(["study", "norms", "seed=0,1"]) == 2
    err = capfd.readouterr().err
    assert "seed=0,1 is not allowed in tricklab study" in err and "study.seeds.cap" in err and "Traceback" not in err
    assert main(["study", "norms", "study.seeds.pilot=1"]) == 2
    assert "study.seeds.pilot=1 is not allowed" in capfd.readouterr().err


def test_the_first_round_is_the_pilot_in_fused_packs(tmp_path, monkeypatch):
    import subprocess

    from tricklab.analysis import studies, study_page

    monkeypatch.setattr(study_page, "commit", lambda: "abc1234")
    calls = []

    class Refused:  # the sweep refuses its jobs: exit 2, nothing created
        def __init__(self, command, **kw):
            calls.append(command)

        def wait(self, timeout=None):
            return 2

    monkeypatch.setattr(subprocess, "Popen", Refused)
    with pytest.raises(SystemExit):
        studies.run_study("norms", ["study.seeds.cap=8"], tmp_path)
    assert calls and "experiment=norms" in calls[0] and "study.seeds.cap=8" in calls[0]
    assert "seed=0,1,2,3" in calls[0] and "hydra.launcher.fuse=8" in calls[0]
    assert any(arg.startswith(f"hydra.sweep.dir={tmp_path}/studies/norms/") for arg in calls[0])


@pytest.mark.slow
def test_a_study_adds_seeds_only_to_undecided_comparisons_and_prints_its_answers(tmp_path, data_dir, capfd):
    from tricklab.analysis.studies import run_study

    overrides = ["study.seeds.pilot=2", "study.seeds.batch=1", "study.seeds.cap=3", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=2", f"paths.data_dir={data_dir}", "logger=none",
                 "hydra.launcher.gpus=[]"]
    out = run_study("norms", overrides, tmp_path, page=tmp_path / "pages")
    record = json.loads((out / "study.json").read_text())
    assert record["rounds"][0]["seeds"] == 2 and record["rounds"][0]["arms"] == "all"
    later = record["rounds"][1:]
    assert all(r["seeds"] == 3 and r["arms"] != "all" for r in later)  # only the undecided comparisons' arms
    seeds = [json.loads(p.read_text())["seed"] for p in out.rglob("metrics.json")]
    assert seeds.count(0) == seeds.count(1) == 5 and seeds.count(2) == (len(later[0]["arms"]) if later else 0)
    printed = capfd.readouterr().out
    assert "Study norms:" in printed and " — " in printed
    assert "## Answers" in (tmp_path / "pages" / "norms.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_a_smoke_run_of_every_study_completes(name, tmp_path, data_dir):
    if name in NEEDS_FASHION and not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("needs apt-get install dataset-fashion-mnist")
    result = run_cli(["-m", f"experiment={name}", "seed=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                      f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", "hydra/launcher=local",
                      "hydra.launcher.workers=2", "hydra.launcher.gpus=[]", "logger=none"], timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "multirun").rglob("metrics.json")]
    arms = OmegaConf.to_container(composed(name).hydra.sweeper.arms)
    assert sorted(r["arm"] for r in records) == sorted(arms)  # one job per arm
    assert all(r["status"] in ("completed", "diverged") for r in records)


@pytest.mark.slow
def test_a_study_run_twice_resumes_without_rerunning(tmp_path, data_dir, capfd):
    from tricklab.analysis.studies import run_study

    overrides = ["study.seeds.pilot=2", "study.seeds.cap=2", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                 f"paths.data_dir={data_dir}", "logger=none", "hydra.launcher.gpus=[]"]
    first = run_study("norms", overrides, tmp_path)
    hashes = {p: p.read_bytes() for p in first.rglob("metrics.json")}
    assert len(hashes) == 10  # 5 arms x 2 seeds
    second = run_study("norms", overrides, tmp_path)
    assert second == first  # the same command finds the same folder
    manifest = json.loads((first / "sweep.json").read_text())
    assert all(job.get("skipped") for job in manifest["jobs"].values())
    assert {p: p.read_bytes() for p in first.rglob("metrics.json")} == hashes  # nothing ran again
    assert "## Findings" in (first / "report.md").read_text()


@pytest.mark.parametrize("override, says", [
    ("optimizer.lr=-1", "the arms "),  # a key the arms set: the arms' value would win, silently
    ("experiment=dropout", "runs experiment=norms"),
    ("hydra.sweep.dir=/tmp/elsewhere", "the study chooses its folder"),
    ("hydra.sweeper.only=[none]", "the study chooses its folder"),
    ("resume=outputs/multirun/x", "the study chooses its folder"),
    ("hparams_search=optuna", "the study chooses its folder"),  # a group that chooses another sweeper
    ("--cfg", "is an option, not an override"),
    ("hydra.sweeper.params.seed=0,1", "a study chooses its seeds itself"),
])
def test_an_override_a_study_cannot_take_is_refused_before_anything_exists(override, says, tmp_path, capfd):
    from tricklab.analysis.studies import find
    from tricklab.cli import main

    arm_key = next(line.partition("=")[0] for lines in find("norms").arms.values() for line in lines)
    override = override.replace("optimizer.lr", arm_key)
    assert main(["study", "norms", override, f"paths.output_dir={tmp_path}"]) == 2
    err = capfd.readouterr().err
    assert says in err and override.partition("=")[0] in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_of_the_same_study_folder_is_refused_while_the_first_runs(tmp_path):
    from tricklab.analysis.studies import _only_run_of
    from tricklab.errors import ConfigError

    with _only_run_of(tmp_path / "s", "norms"), pytest.raises(ConfigError, match="study norms is already running"), \
            _only_run_of(tmp_path / "s", "norms"):
        pass
    with _only_run_of(tmp_path / "s", "norms"):  # free again once the first is done
        pass


def test_sigterm_stops_the_rounds_sweep_records_the_round_and_exits_143(tmp_path, monkeypatch, capfd):
    import signal
    import subprocess

    from tricklab import signals
    from tricklab.analysis import studies, study_page

    monkeypatch.setattr(study_page, "commit", lambda: "abc1234")
    sent = []

    class Training:  # the sweep is training when SIGTERM arrives
        def __init__(self, command, **kw):
            Path(next(a for a in command if a.startswith("hydra.sweep.dir=")).partition("=")[2]).mkdir(parents=True)

        def wait(self, timeout=None):
            if not sent:
                signals._Stopped.signum = signal.SIGTERM
                raise KeyboardInterrupt
            return -signal.SIGTERM

        def send_signal(self, signum):
            sent.append(signum)

    monkeypatch.setattr(subprocess, "Popen", Training)
    with pytest.raises(SystemExit) as exit_:
        studies.run_study("norms", [], tmp_path)
    monkeypatch.setattr(signals._Stopped, "signum", None)
    assert exit_.value.code == 143 and sent == [signal.SIGTERM]
    (record,) = [json.loads(p.read_text()) for p in tmp_path.rglob("study.json")]
    assert record["rounds"][-1]["exit_code"] == 143 and record["rounds"][-1]["finished_jobs"] == 0
    assert "the same command resumes it: tricklab study norms" in capfd.readouterr().err


def test_page_may_follow_the_study_name():
    from tricklab.cli import _page_option

    assert _page_option(None, ["--page", "docs/studies", "a=1"]) == (Path("docs/studies"), ["a=1"])
    assert _page_option(None, ["a=1", "--page=p"]) == (Path("p"), ["a=1"])
