"""Bad input, as a new user types it: every case is a real command in a subprocess, reaching a different check
(every group's values, the trainer, unknown keys and the + rule, output paths, the sweeper and its arms, the
launchers, resume, the data, library pass-through, the report). Each must exit non-zero with no traceback and
one message naming the key and what is allowed, and must create no run or sweep folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_cli

ARM_CLASH = 'hydra.sweeper.arms={a:["optimizer.lr=0.1"],b:["optimizer.lr=0.2"]}'
ARM_SWEEP = 'hydra.sweeper.arms={a:["optimizer.lr=0.1,0.2"]}'

# (command line, what the message must name, what it must say is allowed). "{tmp}" is the test's folder.
CHEAP = [
    # values of every group, checked before anything heavy is imported
    ("optimizer.lr=-1", "optimizer.lr=-1", "a number > 0"),
    ("dropout.p=1.5", "dropout.p=1.5", "[0, 1)"),
    ("data.batch_size=0", "data.batch_size=0", "a positive integer"),
    ("data.scale=zscore", "data.scale='zscore'", "raw, unit, symmetric, standardize"),
    ("data.val_fraction=1.2", "data.val_fraction=1.2", "a fraction of the training set"),
    ("architecture.activation=swish", "architecture.activation='swish'", "relu, tanh"),
    ("architecture=resnet architecture.depth=9", "architecture.depth=9", "6n+2"),
    ("architecture=cnn architecture.kernel_size=4", "architecture.kernel_size=4", "an odd positive integer"),
    ("init=normal init.std=-1", "init.std=-1", "a number > 0"),
    ("norm=group norm.groups=0", "norm.groups=0", "a positive integer"),
    ("scheduler=exponential scheduler.gamma=1.5", "scheduler.gamma=1.5", "(0, 1]"),
    ("scheduler=plateau scheduler.mode=up", "scheduler.mode='up'", "one of min, max"),
    ("clip=norm clip.max_norm=0", "clip.max_norm=0", "a number > 0"),
    ("regularization=l1 regularization.l1=-1", "regularization.l1=-1", "a number ≥ 0"),
    ("averaging=ema averaging.decay=1.5", "averaging.decay=1.5", "an EMA decay in (0, 1)"),
    ("diagnostics=on diagnostics.every_n_steps=0", "diagnostics.every_n_steps=0", "a positive integer"),
    ("callbacks.early_stopping.monitor=val/accuracy", "callbacks.early_stopping.monitor", "val/acc"),
    ("callbacks.progress_bar=fancy", "callbacks.progress_bar='fancy'", "rich, tqdm, none"),
    ("logger.mode=loud", "logger.mode='loud'", "auto, online, offline, disabled"),
    ("seed=-1", "seed=-1", "an integer ≥ 0"),
    ("threads=0", "threads=0", "a positive integer"),
    ("overwrite=maybe", "overwrite='maybe'", "true or false"),
    ("data.val_fraction=0", "callbacks.checkpoint.monitor=val/acc", "set data.val_fraction > 0"),
    # every trainer setting, from copies of Lightning's own lists
    ("trainer.precision=bogus", "trainer.precision='bogus'", "16-mixed"),
    ("trainer.accelerator=gpuu", "trainer.accelerator='gpuu'", "auto, gpu, cpu, cuda"),
    ("trainer.strategy=dp", "trainer.strategy='dp'", "ddp_spawn"),
    ("trainer.devices=0", "trainer.devices=0", "-1 (every device)"),
    ("trainer.deterministic=maybe", "trainer.deterministic='maybe'", "true, false or warn"),
    ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5", "(0, 1] or a count"),
    ("trainer.limit_val_batches=-2", "trainer.limit_val_batches=-2", "[0, 1] or a count ≥ 0"),
    # unknown keys and the + rule
    ("+foo=1", "foo is not a key of the top level", "its keys are: data, architecture"),
    ("+data.batchsize=64", "data.batchsize is not a key of data (mnist1d)", "Did you mean data.batch_size?"),
    ("optimizer.learning_rate=0.1", "optimizer.learning_rate is not a key of optimizer (adam)", "lr, betas"),
    ("optimizer=sgd optimizer.betas=[0.9,0.99]", "optimizer.betas is not a key of optimizer (sgd)", "lr"),
    ("foo.bar=1", "foo is not a key of the top level", "its keys are"),
    ("architecture.widht=64", "architecture.widht is not a key", "Did you mean architecture.width?"),
    # output paths that cannot be written, before Hydra creates anything
    ("hydra.run.dir=/proc/tricklab", "hydra.run.dir=/proc/tricklab", "a folder tricklab can create and write"),
    ("paths.output_dir={tmp}/a_file", "paths.output_dir={tmp}/a_file", "is a file, not a folder"),
    ("-m seed=0,1 paths.output_dir={tmp}/a_file/below", "paths.output_dir", "no folder can be made below it"),
    ("-m seed=0,1 hydra.sweep.dir=/proc/tricklab", "hydra.sweep.dir=/proc/tricklab", "create and write in"),
    # a finished run is not overwritten
    ("hydra.run.dir={tmp}/finished", "hydra.run.dir={tmp}/finished holds a completed run", "overwrite=true"),
    # the sweeper: every job checked, all problems at once, before the sweep folder exists
    ("-m seed=0,1 optimizer.lr=0.1,-1", "optimizer.lr=-1", "a number > 0"),
    ("-m optimizer=adam,sgd optimizer.betas=[0.9,0.99]", "optimizer.betas is not a key of optimizer (sgd)", "lr"),
    ("-m +data.batchsize=32,64", "data.batchsize", "Did you mean data.batch_size?"),
    ("-m optimizer.lr=interval(0.1,1)", "optimizer.lr=interval(0.1,1)", "a grid takes lists"),
    (f"-m seed=0 optimizer.lr=0.1,0.3 {ARM_CLASH}", "optimizer.lr is set by hydra.sweeper.arms", "either swept"),
    (f"-m seed=0 {ARM_SWEEP}", "hydra.sweeper.arms.a", "an arm is one setting"),
    # launchers and resume
    ("-m seed=0 hydra/launcher=local hydra.launcher.gpus=[0,1] hydra.launcher.workers=3",
     "hydra.launcher.workers=3", "at most 2"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.workers=0", "hydra.launcher.workers=0", "a positive integer"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.jobs_per_gpu=0", "hydra.launcher.jobs_per_gpu=0",
     "a positive integer"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.gpus=[] hydra.launcher.jobs_per_gpu=2",
     "hydra.launcher.jobs_per_gpu=2", "without GPUs it must be 1"),
    ("-m seed=0 hydra/launcher=local logger=none,csv", "would share the folder", "sweep only over values"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.gpus=5", "hydra.launcher.gpus=5", "a list like [0,1]"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.gpus=abc", "hydra.launcher.gpus='abc'", "a string like '0,1'"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.gpus=[7]", "this machine has no GPU 7", "the GPU ids it has"),
    ("-m seed=0 resume={tmp}/no_such_sweep", "resume={tmp}/no_such_sweep", "the folder of an earlier sweep"),
]


def prepare(tmp: Path) -> None:
    """What some cases need on disk: a regular file, and a run folder holding a completed run."""
    (tmp / "a_file").write_text("not a folder\n")
    (tmp / "finished").mkdir()
    (tmp / "finished" / "metrics.json").write_text(json.dumps({"status": "completed"}))


def check(result: subprocess.CompletedProcess, names: str, allowed: str) -> None:
    assert result.returncode != 0, result.stdout[-2000:]
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "tricklab: error:" in result.stderr, out[-3000:]
    assert names in result.stderr and allowed in result.stderr, result.stderr


@pytest.mark.parametrize(("line", "names", "allowed"), CHEAP, ids=[c[0][:60] for c in CHEAP])
def test_bad_input_is_one_clear_error_and_creates_nothing(tmp_path, line, names, allowed):
    prepare(tmp_path)
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in line.split()]
    if "paths.output_dir" not in line:  # after -m: Hydra reads its flags before the overrides
        args.insert(int(args[0] == "-m"), f"paths.output_dir={out}")
    # two GPUs as far as hydra.launcher.gpus is checked, so that the GPU cases read alike on any machine
    result = run_cli(args, timeout=120, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    check(result, names.replace("{tmp}", str(tmp_path)), allowed)
    created = [p for p in out.rglob("*") if p.name != ".hydra" and ".hydra" not in p.parts] if out.exists() else []
    assert not [p for p in created if p.is_file()], created  # no run, sweep or job left any file
    assert not list(out.glob("multirun/*/*")), "a sweep folder with jobs was created"


def test_all_problems_of_a_command_are_reported_together(tmp_path):
    result = run_cli([f"paths.output_dir={tmp_path}", "optimizer.lr=-1", "dropout.p=2", "trainer.precision=x"])
    check(result, "optimizer.lr=-1", "a number > 0")
    assert "dropout.p=2" in result.stderr and "trainer.precision='x'" in result.stderr


# These reach checks that need the data or the libraries: a few seconds each.
HEAVY = [
    ("data.subset=99999", "data.subset=99999", "must be at most 3600"),
    ("+trainer.no_such_setting=1", "trainer.no_such_setting", "+trainer.<name> takes one of"),
    ("+optimizer.no_such_arg=1", "no_such_arg", "lr"),
]


@pytest.mark.parametrize(("line", "names", "allowed"), HEAVY, ids=[c[0] for c in HEAVY])
def test_bad_input_found_at_start_up_is_one_clear_error(tmp_path, data_dir, line, names, allowed):
    result = run_cli([f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", "logger=none", "threads=1",
                      "callbacks.progress_bar=none", *line.split()], timeout=300)
    check(result, names, allowed)


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tricklab.cli", "report", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_a_report_of_a_missing_or_empty_folder_is_one_clear_error(tmp_path):
    check(report(str(tmp_path / "nope")), "nope is not a folder", "give a run folder or a sweep folder")
    check(report(str(tmp_path)), "holds no metrics.json", "give a run folder")


# A group choice that is no file of its group: (command line, group, value, nearest choice). Checked by the
# pre-flight (tricklab.run.preflight) from Hydra's listing of the group, before Hydra composes: in-process.
WRONG_CHOICES = [
    ("optimizer=adma", "optimizer", "adma", "adam"),
    ("init=He", "init", "He", "he"),
    ("-m optimizer=adam,adma", "optimizer", "adma", "adam"),
    ("-m seed=0,1 data=mnist2", "data", "mnist2", "mnist"),
    ("experiment=optimisers", "experiment", "optimisers", "optimizers"),
    ("hydra/launcher=locl", "hydra/launcher", "locl", "local"),
]


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the pre-flight checks of ``python train.py argv`` in-process; the message they exit 2 with."""
    from tricklab.run.preflight import preflight

    with pytest.raises(SystemExit) as exit_info:
        preflight(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("tricklab: error: "), err
    return err


@pytest.mark.parametrize(("line", "group", "value", "nearest"), WRONG_CHOICES, ids=[c[0] for c in WRONG_CHOICES])
def test_a_wrong_group_choice_is_one_paragraph_with_the_nearest(tmp_path, capsys, line, group, value, nearest):
    out = tmp_path / "out"
    args = line.split()
    args.insert(int(args[0] == "-m"), f"paths.output_dir={out}")
    err = refused(args, capsys)
    assert f"{value} is not a choice of the config group {group}; its choices are: " in err
    assert f"Did you mean {group}={nearest}?" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_every_wrong_choice_is_told_at_once(tmp_path, capsys):
    err = refused([f"paths.output_dir={tmp_path / 'out'}", "optimizer=adma", "init=glorott"], capsys)
    assert "optimizer=adma: adma is not a choice" in err and "init=glorott: glorott is not a choice" in err
    assert "Did you mean init=glorot?" in err


def test_a_group_that_does_not_exist_is_named(tmp_path, capsys):
    err = refused([f"paths.output_dir={tmp_path / 'out'}", "hydra/launchr=local"], capsys)
    assert "hydra/launchr is not a config group" in err


def test_a_wrong_choice_from_the_sweepers_arms_is_refused_before_the_sweep_folder(tmp_path):
    """The grid sweeper checks what its arms (and params) choose as the command line's choices are checked."""
    out = tmp_path / "out"
    result = run_cli(["-m", f"paths.output_dir={out}", 'hydra.sweeper.arms={a:["optimizer=adma"],b:["optimizer=sgd"]}'],
                     timeout=120)
    assert result.returncode == 2, result.stderr
    check(result, "adma is not a choice of the config group optimizer", "Did you mean optimizer=adam?")
    assert not out.exists()


def test_a_wrong_choice_on_the_command_line_exits_2_without_hydras_message(tmp_path):
    out = tmp_path / "out"
    result = run_cli([f"paths.output_dir={out}", "optimizer=adma"], timeout=120)
    assert result.returncode == 2
    check(result, "optimizer=adma: adma is not a choice", "its choices are: adagrad, adam, adamw")
    assert "Could not find" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    assert not out.exists()


# A dataset that is not there and will not be downloaded: refused before Hydra creates the run folder.
MISSING_DATA = [
    ("data=mnist data.download=false paths.data_dir={empty}", "MNIST not found: none of {empty}/MNIST/raw"),
    ("data=fashion_mnist data.root={empty}", "FashionMNIST not found: none of {empty}, {empty}/FashionMNIST/raw"),
    ("data=cifar10 data.download=false paths.data_dir={empty}", "CIFAR-10 not found"),
    ("-m seed=0,1 data=mnist data.download=false paths.data_dir={empty}", "MNIST not found"),
]


@pytest.mark.parametrize(("line", "names"), MISSING_DATA, ids=[c[0] for c in MISSING_DATA])
def test_a_missing_dataset_is_refused_before_any_folder_exists(tmp_path, capsys, line, names):
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    args = line.replace("{empty}", str(empty)).split()
    args.insert(int(args[0] == "-m"), f"paths.output_dir={out}")
    if args[0] != "-m":
        err = refused(args, capsys)
    else:  # a sweep's jobs are the grid sweeper's to check
        result = run_cli(args, timeout=120)
        assert result.returncode == 2
        check(result, names, "")
        err = result.stderr
    assert names.replace("{empty}", str(empty)) in err and ("data.download=true" in err or "data.root" in err)
    assert not out.exists()


def test_a_run_refused_as_it_starts_leaves_no_empty_folder(tmp_path):
    """What only the run itself can find (here: a GPU this machine lacks, found once torch is imported): its
    new folder, holding nothing but Hydra's own files, is removed again."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    out = tmp_path / "out"
    result = run_cli([f"paths.output_dir={out}", "trainer.accelerator=gpu", "logger=none", "threads=1"], timeout=300)
    assert result.returncode == 2
    check(result, "trainer.accelerator=gpu", "use trainer.accelerator=cpu")
    assert not out.exists(), list(out.rglob("*"))


def test_only_a_new_folder_holding_hydras_files_alone_is_discarded(tmp_path):
    from tricklab.folders import discard_if_unused, sweep_dir

    def new_run(base: Path, *files: str) -> Path:
        run_dir = Path(sweep_dir(None, str(base)))
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (run_dir / "train.log").touch()
        for name in files:
            (run_dir / name).write_text("{}")
        return run_dir

    fresh = new_run(tmp_path / "a" / "runs")
    assert discard_if_unused(fresh) and not (tmp_path / "a").exists()  # its parents too: this run made them
    kept = new_run(tmp_path / "b" / "runs", "metrics.json")
    assert not discard_if_unused(kept) and kept.is_dir()
    given = tmp_path / "given"  # a folder the command line named (hydra.run.dir): never removed
    (given / ".hydra").mkdir(parents=True)
    assert not discard_if_unused(given) and given.is_dir()


def test_a_study_with_a_wrong_group_choice_is_refused_before_its_folder(tmp_path):
    from tricklab.analysis.studies import folder

    overrides = ["init=He"]  # a group the study's arms leave alone (a key they set is refused before: test_studies)
    result = subprocess.run([sys.executable, "-m", "tricklab.cli", "study", "norms", *overrides],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    check(result, "init=He: He is not a choice of the config group init", "Did you mean init=he?")
    assert not folder("norms", overrides, REPO / "outputs").exists()


# Values each passing its own rule that cannot work (issue 22, class 5), refused in-process by the pre-flight
# before any folder exists: (command line, what the message names, what it says is allowed).
LONG_NAME = "x" * 300
CANNOT_WORK = [
    ("data.val_fraction=0.9999", "data.val_fraction=0.9999", "must leave at least one"),
    ("data.val_fraction=0.0001", "data.val_fraction=0.0001 holds out 0 samples", "set data.val_fraction > 0"),
    ("data.subset=4000", "data.subset=4000", "at most 3600"),
    ("trainer.limit_val_batches=0", "trainer.limit_val_batches=0", "set trainer.limit_val_batches > 0"),
    ("callbacks.early_stopping.enabled=true trainer.check_val_every_n_epoch=5 trainer.max_epochs=2",
     "callbacks.early_stopping.monitor=val/acc", "trainer.check_val_every_n_epoch ≤ trainer.max_epochs"),
    ("seed=4294967296", "seed=4294967296", "< 2**32"),
    ("data.data_seed=4294967296", "data.data_seed=4294967296", "< 2**32"),
    ("name=[a,b]", "name=['a', 'b']", "a string, or null"),
    ("paths.data_dir=[a,b]", "paths.data_dir=['a', 'b']", "a folder path (one string)"),
    ("logger=wandb logger.tags=[1,2]", "logger.tags=[1, 2]", "a list of strings"),
    ("optimizer.betas=[0.9,true]", "optimizer.betas=[0.9, True]", "a list of two numbers in [0, 1)"),
    ("optimizer.betas=0.9", "optimizer.betas=0.9", "a list of two numbers in [0, 1)"),
    ("trainer.devices='-5'", "trainer.devices='-5'", "-1 (every device)"),
    ("~data", "~data: data may not be deleted", "data=<choice>"),
    ("~optimizer.lr", "~optimizer.lr: optimizer.lr may not be deleted", "optimizer.lr=<value>"),
    ("++foo=1", "foo is not a key of the top level", "A leading + adds a key only under"),
    ("++optimizer.lr=-1", "optimizer.lr=-1", "a number > 0"),
    ("++optimizer.momentum=0.9", "optimizer=adam has no option momentum", "its options are lr, betas"),
    ("optimizer=nesterov +optimizer.nesterov=false", "optimizer=nesterov has no option nesterov", "dampening"),
    ("-m seed=0,1 ~data", "~data: data may not be deleted", "data=<choice>"),
    (f"paths.output_dir={{tmp}}/{LONG_NAME}", f"paths.output_dir={{tmp}}/{LONG_NAME}", "over the file system's"),
    ("paths.data_dir={tmp}/a_file", "paths.data_dir={tmp}/a_file", "is a file, not a folder"),
    ("paths.data_dir=/proc/tricklab", "paths.data_dir=/proc/tricklab", "a folder tricklab can create and write"),
]


@pytest.mark.parametrize(("line", "names", "allowed"), CANNOT_WORK, ids=[c[0][:50] for c in CANNOT_WORK])
def test_a_value_that_passes_its_rule_but_cannot_work_is_refused_first(tmp_path, capsys, line, names, allowed):
    prepare(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in line.split()]
    if "paths.output_dir" not in line:
        args.insert(int(args[0] == "-m"), f"paths.output_dir={tmp_path / 'out'}")
    err = refused(args, capsys)
    assert names.replace("{tmp}", str(tmp_path)) in err and allowed in err, err
    assert err.count("tricklab: error:") == 1, err  # one message: a paragraph per problem
    assert sorted(tmp_path.rglob("*")) == before  # nothing created


@pytest.mark.parametrize("line", ["data.val_fraction=0.5", "trainer.devices='0,1'", "++optimizer.lr=0.1",
                                  "seed=4294967295", "trainer.check_val_every_n_epoch=2 trainer.max_epochs=2"])
def test_values_at_the_edge_of_what_works_pass_the_preflight(tmp_path, line):
    from tricklab.run.preflight import preflight

    preflight([f"paths.output_dir={tmp_path / 'out'}", *line.split()])  # no SystemExit


# resume= must name an earlier sweep's folder (issue 22, class 3): refused where Hydra resolves the sweep folder
# (the tricklab_sweep_dir resolver), before it creates anything; a single run refuses resume= at pre-flight.
def sweep_folder_refused(resume: str, tmp: Path, capsys: pytest.CaptureFixture) -> str:
    from omegaconf import OmegaConf

    from tricklab.config import register_resolvers

    register_resolvers()
    cfg = OmegaConf.create({"resume": resume, "dir": f"${{tricklab_sweep_dir:${{resume}},{tmp}/base}}"})
    with pytest.raises(SystemExit) as exit_info:
        _ = cfg.dir
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tricklab: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("resume", "says"), [
    ("", "resume='' is empty"), (".", "holds no sweep"), ("{tmp}/run", "the folder of a single run (it holds "
     "metrics.json)"), ("{tmp}/empty", "holds no sweep"), ("{tmp}/a_file", "is not an existing folder")])
def test_resume_must_name_an_earlier_sweeps_folder(tmp_path, capsys, monkeypatch, resume, says):
    prepare(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    before = sorted(tmp_path.rglob("*"))
    err = sweep_folder_refused(resume.replace("{tmp}", str(tmp_path)), tmp_path, capsys)
    assert says in err and "resume must be the folder of an earlier sweep" in err, err
    assert sorted(tmp_path.rglob("*")) == before and not (tmp_path / "base").exists()


def test_an_earlier_sweeps_folder_is_resumed(tmp_path):
    from omegaconf import OmegaConf

    from tricklab.config import register_resolvers

    register_resolvers()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}\n")
    cfg = OmegaConf.create({"resume": str(tmp_path / "sweep"), "dir": "${tricklab_sweep_dir:${resume},/nonexistent}"})
    assert cfg.dir == str(tmp_path / "sweep")


@pytest.mark.parametrize("resume", ["{tmp}/missing", "{tmp}/a_file", "{tmp}/finished"])
def test_a_single_run_refuses_resume(tmp_path, capsys, resume):
    prepare(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    line = f"resume={resume.replace('{tmp}', str(tmp_path))}"
    err = refused([f"paths.output_dir={tmp_path / 'out'}", line], capsys)
    assert line in err and "this is a single run (no -m)" in err and "add -m" in err, err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(("gpus", "says"), [
    (5, "a count such as 5 is not a list of ids"), ("abc", "hydra.launcher.gpus='abc'"), ([0, 0], "each once"),
    ([True], "GPU ids"), ([4], "this machine has no GPU 4 (it has 0, 1)"), ("0,5", "no GPU 5")])
def test_launcher_gpus_must_be_ids_the_machine_has(monkeypatch, gpus, says):
    from tricklab.errors import ConfigError
    from tricklab.launch.devices import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(ConfigError, match=r"hydra\.launcher\.gpus=") as err:
        visible_gpus(gpus)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_launcher_gpus_as_a_string_are_ids_not_characters(monkeypatch):
    from tricklab.launch.devices import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,10")
    assert visible_gpus("0,10") == ["0", "10"] and visible_gpus([1]) == ["1"] and visible_gpus([]) == []


@pytest.mark.parametrize(("line", "says"), [
    ("-m seed=0 hydra/launcher=basic hydra.launcher.fuse=2",
     "hydra.launcher.fuse is not a setting of the basic launcher"),
    ("-m seed=0 hydra/launcher=basic +hydra.launcher.fuse=2", "add hydra/launcher=local"),
    ("-m seed=0 hydra/launcher=local hydra.launcher.fusee=2", "its settings are: workers, gpus, fuse, jobs_per_gpu")])
def test_a_setting_the_chosen_launcher_lacks_is_refused_before_hydra(tmp_path, capsys, line, says):
    err = refused(["-m", f"paths.output_dir={tmp_path / 'out'}", *line.split()[1:]], capsys)
    assert says in err, err
    assert not (tmp_path / "out").exists()


def test_a_local_launcher_setting_passes(tmp_path):
    from tricklab.run.preflight import preflight

    preflight(["-m", f"paths.output_dir={tmp_path / 'out'}", "seed=0", "hydra/launcher=local", "hydra.launcher.fuse=2"])
