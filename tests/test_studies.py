"""The shipped studies (conf/experiment/*.yaml with a study block): each composes, its claims hold together with
its arms, and it expands to the job count its block implies; a smoke run of every study completes (slow); a bad
claim or an unknown study is refused before anything runs."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tricklab.config import CONF_DIR, validate
from tricklab.data.files import DEBIAN_FASHION_MNIST
from tricklab.grid import arm_overrides, expand
from tricklab.studies import study_files
from tricklab.study import Study

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
    seeds = len(str(cfg.hydra.sweeper.params.seed).split(","))
    assert len(jobs) == study_files()[name].jobs() == len(arms) * seeds
    assert seeds >= 3  # a t-interval over fewer seeds is too wide to decide anything
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


def test_too_few_seeds_warn_and_the_study_still_runs(tmp_path, capfd, monkeypatch):
    import subprocess

    from tricklab import studies, study_page

    monkeypatch.setattr(study_page, "commit", lambda: "abc1234")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: calls.append(command) or
                        subprocess.CompletedProcess(command, 2))
    with pytest.raises(SystemExit):
        studies.run_study("norms", ["seed=0"], tmp_path)
    assert "1 seed(s) give no confidence interval" in capfd.readouterr().err
    assert calls and "experiment=norms" in calls[0] and "seed=0" in calls[0]
    assert any(arg.startswith(f"hydra.sweep.dir={tmp_path}/studies/norms/") for arg in calls[0])


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
    from tricklab.studies import run_study

    overrides = ["seed=0,1", "trainer.max_epochs=1", "trainer.limit_train_batches=2", f"paths.data_dir={data_dir}",
                 "logger=none", "hydra.launcher.gpus=[]"]
    first = run_study("norms", overrides, tmp_path)
    hashes = {p: p.read_bytes() for p in first.rglob("metrics.json")}
    assert len(hashes) == 10  # 5 arms x 2 seeds
    second = run_study("norms", overrides, tmp_path)
    assert second == first  # the same command finds the same folder
    manifest = json.loads((first / "sweep.json").read_text())
    assert all(job.get("skipped") for job in manifest["jobs"].values())
    assert {p: p.read_bytes() for p in first.rglob("metrics.json")} == hashes  # nothing ran again
    assert "## Findings" in (first / "report.md").read_text()
