"""Every choice of every group composes and validates; bad values are refused with a clear message."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from tricklab.config import CONF_DIR, validate
from tricklab.errors import ConfigError

GROUPS = ("data", "architecture", "init", "norm", "dropout", "optimizer", "scheduler", "clip", "regularization",
          "callbacks", "logger", "trainer", "gradient")


def all_choices():
    for group in GROUPS:
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            yield group, path.stem


@pytest.mark.parametrize(("group", "choice"), list(all_choices()))
def test_every_choice_composes_and_validates(make_config, group, choice):
    cfg = make_config([f"{group}={choice}"])
    validate(cfg)
    if "name" in cfg[group] and group not in ("callbacks", "trainer"):
        # a file is named for the trick it selects (torchvision's: for its family; its name picks the model)
        assert cfg[group].get("family", cfg[group].name) == choice


def test_each_group_has_the_choices_the_issue_names():
    expected = {
        "data": {"mnist1d", "digits", "fashion_mnist", "mnist", "cifar10"},
        "init": {"default", "uniform", "normal", "gaussian", "lecun", "glorot", "glorot_uniform", "he", "orthogonal"},
        "norm": {"none", "batch", "layer", "group", "weight"},
        "optimizer": {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"},
        "scheduler": {"none", "exponential", "step", "cosine", "onecycle", "plateau", "warmup_cosine"},
        "clip": {"none", "norm", "value"},
        "logger": {"wandb", "csv", "tensorboard", "none"},
        "trainer": {"default", "cpu", "gpu", "ddp"},
    }
    for group, names in expected.items():
        assert names <= {p.stem for p in (CONF_DIR / group).glob("*.yaml")}, group


def test_defaults_are_mnist1d_mlp_adam(make_config):
    cfg = make_config()
    assert (cfg.data.name, cfg.architecture.name, cfg.optimizer.name) == ("mnist1d", "mlp", "adam")
    assert cfg.scheduler.name == "none" and cfg.logger.name == "wandb"


def test_experiment_dropout_cnn(make_config, tmp_path):
    cfg = make_config(["experiment=dropout_cnn"])
    assert cfg.data.name == "fashion_mnist" and cfg.architecture.name == "cnn"
    assert cfg.optimizer.name == "adam" and cfg.data.batch_size == 64 and cfg.trainer.max_epochs == 5
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = compose("config", ["experiment=dropout_cnn"], return_hydra_config=True).hydra
    # a study now: the four rates are its arms (crossed with the seeds), on the notebook's net
    rates = [o.split("=")[1] for arm in hydra_cfg.sweeper.arms.values() for o in arm if o.startswith("dropout.p=")]
    assert [float(r) for r in rates] == [0.0, 0.2, 0.5, 0.8] and cfg.architecture.hidden is None


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("optimizer.lr=-1", "optimizer.lr", "> 0"),
        ("dropout.p=1.5", "dropout.p", "[0, 1)"),
        ("data.batch_size=0", "data.batch_size", "positive integer"),
        ("data.scale=zscore", "data.scale", "raw, unit, symmetric, standardize, standardize_channel"),
        ("data.std_floor=1.5", "data.std_floor", "[0, 1]"),
        ("averaging=ema averaging.warmup=maybe", "averaging.warmup", "true or false"),
        ("averaging=swa averaging.lr=0", "averaging.lr", "> 0, or null"),
        ("averaging=swa averaging.anneal_epochs=-1", "averaging.anneal_epochs", "≥ 0"),
        ("averaging=swa averaging.anneal_strategy=step", "averaging.anneal_strategy", "cos, linear"),
        ("architecture.activation=swish", "architecture.activation", "relu"),
        ("optimizer.lr=fast", "optimizer.lr", "a number"),
        ("optimizer.betas=[0.9]", "optimizer.betas", "two numbers"),
        ("scheduler=exponential scheduler.gamma=1.5", "scheduler.gamma", "(0, 1]"),
        ("callbacks.early_stopping.monitor=val/accuracy", "callbacks.early_stopping.monitor", "val/acc"),
        ("trainer.max_epochs=0", "trainer.max_epochs", "positive integer"),
        ("init=normal init.std=-0.1", "init.std", "> 0"),
        ("trainer.steps_per_call=0", "trainer.steps_per_call", "positive integer"),
        ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches", "(0, 1] or a count"),
        ("callbacks.checkpoint.every_seconds=-1", "callbacks.checkpoint.every_seconds", "≥ 0"),
        ("callbacks.grad_norm=maybe", "callbacks.grad_norm", "true or false"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(make_config, override, key, allowed):
    cfg = make_config(override.split())
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert key in message and allowed in message
    assert override.split()[-1].split("=")[1].strip("[]") in message


def test_all_problems_are_reported_together(make_config):
    with pytest.raises(ConfigError) as err:
        validate(make_config(["optimizer.lr=-1", "dropout.p=2"]))
    assert "optimizer.lr" in str(err.value) and "dropout.p" in str(err.value)


def test_val_monitor_without_validation_split_is_refused(make_config):
    with pytest.raises(ConfigError, match="needs validation, but data.val_fraction=0"):
        validate(make_config(["data.val_fraction=0"]))
    validate(make_config(["data.val_fraction=0", "callbacks.checkpoint.monitor=train/acc"]))


def test_a_gradient_rule_refuses_what_it_cannot_train_with_in_one_paragraph_each(make_config):
    validate(make_config(["gradient=sam", "gradient.rho=0.1", "norm=layer"]))
    assert "gradient" not in make_config([])  # no rule chosen: one backward pass, and old runs' configs unchanged
    with pytest.raises(ConfigError) as err:
        validate(make_config(["gradient=sam", "norm=batch", "diagnostics=on"]))
    paragraphs = str(err.value).split("\n")
    assert len(paragraphs) == 2
    assert paragraphs[0].startswith("gradient=sam cannot train with norm.name='batch': its second forward pass")
    assert paragraphs[1].startswith("gradient=sam cannot train with diagnostics.enabled=true: ")
    assert all(p.endswith("or gradient=backward (one backward pass).") for p in paragraphs)


def test_unknown_choice_and_typo_key_are_refused_by_hydra(make_config):
    with pytest.raises((MissingConfigException, ConfigCompositionException)):
        make_config(["init=nonexistent"])
    with pytest.raises((ConfigCompositionException, ConfigAttributeError, ConfigKeyError)):
        make_config(["optimizer.lrr=0.1"])


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tricklab.config, tricklab.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_files_document_their_trick():
    groups = ("init", "norm", "optimizer", "scheduler", "clip", "regularization", "dropout", "data", "architecture",
              "gradient")
    for group in groups:
        for path in Path(CONF_DIR / group).glob("*.yaml"):
            assert path.read_text().startswith("#"), f"{path} should open with a comment stating its trick"


def _leaves(node, prefix):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}"


def test_every_leaf_of_every_group_yaml_has_a_value_rule_or_names_its_check():
    """RULES is a second schema beside tricklab/conf/: a key added to a YAML without a rule would pass unchecked."""
    from omegaconf import OmegaConf

    from tricklab.config import CHECKED_ELSEWHERE, CONF_DIR, FAMILY_RULES, RULES

    specific = {key for rules in FAMILY_RULES.values() for key in rules}
    unchecked = []
    for path in sorted(CONF_DIR.glob("*/*.yaml")):
        group = path.parent.name
        if group in ("hydra", "experiment", "hparams_search"):  # Hydra's own, and overrides of the groups' keys
            continue
        for key in _leaves(OmegaConf.to_container(OmegaConf.load(path)), group):
            if key not in RULES and key not in specific and key not in CHECKED_ELSEWHERE \
                    and key.split(".", 1)[1] not in CHECKED_ELSEWHERE:
                unchecked.append(f"{path.relative_to(CONF_DIR)}: {key}")
    assert unchecked == []


def test_job_folder_names_leave_out_every_plumbing_key():
    """config.PLUMBING (keys that say where or how a run writes, not what it trains) and the job folders' exclude
    list name the same keys: a plumbing key left in the folder name would make a resumed sweep miss its jobs."""
    from omegaconf import OmegaConf

    from tricklab.config import PLUMBING

    hydra = OmegaConf.load(CONF_DIR / "hydra" / "default.yaml")
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    paths = {f"paths.{key}" for key in OmegaConf.load(CONF_DIR / "paths" / "default.yaml")}
    expected = {key for key in PLUMBING if key not in ("hydra", "paths")} | paths
    assert expected <= excluded, sorted(expected - excluded)
