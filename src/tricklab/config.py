"""The config schema: the type and the allowed range of every value a user can set.

Unknown group choices and typo'd keys are refused before Hydra runs (tricklab.run.preflight, tricklab.keys);
this module checks the values, before any heavy import or training, and says what is allowed.
It imports neither torch nor Lightning, so a bad value is reported in well under a second.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from tricklab.choices import ACTIVATIONS, SCALES
from tricklab.errors import ConfigError, exit_on_user_error
from tricklab.folders import job_dirname, sweep_dir
from tricklab.lightning_names import ACCELERATORS, PRECISIONS, STRATEGIES

# The configs ship inside the package (installed with it as package data): code and config always match.
CONF_DIR = Path(__file__).resolve().parent / "conf"
# Where outputs/ and data/ go is never the package's location (tricklab_root, ``project_root``).
ROOT_ENV = "TRICKLAB_ROOT"
# The root of a tricklab checkout holds this file: run anywhere inside a checkout, its outputs/ is used.
CHECKOUT_MARKER = Path("src", "tricklab", "conf", "config.yaml")
STUDY_PAGES = Path("docs", "studies")  # the generated study pages, below the project root

# Override keys that say where a run writes or how it is shown, not what it trains: they name no config
# (run names, report configs). Job folder names leave out the same keys (tricklab/conf/hydra/default.yaml exclude_keys).
PLUMBING = ("hydra", "paths", "logger", "callbacks.progress_bar", "name", "threads", "resume", "overwrite", "rerun",
            "verbose")
METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")
MODES = ("min", "max")


def project_root(start: Path | None = None) -> Path:
    """The folder outputs/ and data/ go below: $TRICKLAB_ROOT when set; else the nearest folder from the
    working directory (``start``) up that is a tricklab checkout (holds CHECKOUT_MARKER), so a run started in
    a checkout's sub-folder still writes into that checkout's outputs/; else the working directory itself
    (Hydra's own convention). Never where the package is installed: a second checkout, or a user's project
    folder, keeps its own outputs/."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / CHECKOUT_MARKER).is_file()), here)


def register_resolvers() -> None:
    """``${tricklab_root:}``: the project root (``project_root``), found when the config is resolved;
    ``${tricklab_sweep_dir:resume,base}`` and ``${tricklab_job_dirname:overrides}``: see tricklab.folders."""
    OmegaConf.register_new_resolver("tricklab_root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("tricklab_sweep_dir", _exit_on_user_error(sweep_dir), replace=True, use_cache=True)
    OmegaConf.register_new_resolver("tricklab_job_dirname", job_dirname, replace=True)


def _exit_on_user_error(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Hydra resolves some values (the sweep folder) before ``main`` runs, and would show a ConfigError raised
    there with a traceback: report it as ``main`` does instead, one paragraph and exit code 2."""

    def resolve(*args: Any) -> Any:
        try:
            return resolver(*args)
        except ConfigError as err:
            exit_on_user_error(err)

    return resolve


@dataclass(frozen=True)
class Rule:
    """One value's type and allowed range; ``allowed`` says it in words for the error message."""

    kind: type
    allowed: str
    ok: Callable[[Any], bool] = lambda v: True
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule, or None when it is fine."""
        if value is None:
            return None if self.nullable else "it may not be null"
        if not _is_kind(value, self.kind):
            return f"it is not {_kind_name(self.kind)}"
        if self.kind is float and not math.isfinite(value):
            return "it is not finite"
        return None if self.ok(value) else "it is out of range"


def _is_kind(value: Any, kind: type) -> bool:
    if kind is object:  # a value of several types (trainer.devices): the rule's own test decides
        return True
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is list:
        return isinstance(value, (list, tuple, ListConfig))
    return isinstance(value, kind)


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}[kind]


def positive(kind: type = float, nullable: bool = False) -> Rule:
    """v > 0 (an integer or a number), optionally null."""
    return Rule(kind, f"{'a positive integer' if kind is int else 'a number > 0'}", lambda v: v > 0, nullable)


def non_negative(kind: type = float) -> Rule:
    """v ≥ 0."""
    return Rule(kind, "an integer ≥ 0" if kind is int else "a number ≥ 0", lambda v: v >= 0)


def fraction(low_open: bool = False, high_open: bool = True, what: str = "a fraction") -> Rule:
    """v in the interval from 0 to 1, each end open or closed as asked ([0, 1) by default)."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")

    def ok(v: float) -> bool:
        return (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)

    return Rule(float, f"{what} in {lo}0, 1{hi}", ok)


def one_of(choices: Iterable[str]) -> Rule:
    """v is one of the given strings."""
    choices = tuple(choices)
    return Rule(str, "one of " + ", ".join(choices), lambda v: v in choices)


def _positive_int_list(v: Any) -> bool:
    return len(v) > 0 and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in v)


def _devices(v: Any) -> bool:
    """Lightning's ``devices``: auto, a count > 0, -1, a list of ids ≥ 0, or "0,1" ("-1" and "3" too)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0 or v == -1
    if isinstance(v, str):  # "-1" means every device; any other minus sign is no device id Lightning knows
        parts = [part.strip() for part in v.split(",") if part.strip()]
        return v.strip() in ("auto", "-1") or (len(parts) > 0 and all(part.isdigit() for part in parts))
    return isinstance(v, (list, tuple, ListConfig)) and len(v) > 0 and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)


def _betas(v: Any) -> bool:
    return len(v) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v)


def _strings(v: Any) -> bool:
    return all(isinstance(item, str) for item in v)


# numpy's legacy seeding and Lightning's seed_everything take seeds below 2**32 only.
SEED_LIMIT = 2**32


def seed_rule() -> Rule:
    """0 ≤ v < 2**32: a seed numpy and Lightning accept."""
    return Rule(int, f"an integer ≥ 0 and < 2**32 ({SEED_LIMIT}, the seed range of numpy and Lightning)",
                lambda v: 0 <= v < SEED_LIMIT)


def folder_rule() -> Rule:
    """A folder path given as one string (a list would be written as its repr)."""
    return Rule(str, "a folder path (one string)")


# Dotted key -> rule. A key a choice does not have (architecture.width for the cnn) is skipped.
RULES: dict[str, Rule] = {
    "seed": seed_rule(),
    "name": Rule(str, "a string, or null (built from the choices)", nullable=True),
    "paths.root_dir": folder_rule(),
    "paths.output_dir": folder_rule(),
    "paths.data_dir": folder_rule(),
    "threads": positive(int, nullable=True),
    "resume": Rule(str, "the folder of an earlier sweep, or null", nullable=True),
    "overwrite": Rule(bool, "true or false"),
    "verbose": Rule(bool, "true or false"),
    "rerun": Rule(list, "a list of the statuses a resume runs again beyond failed and cut-short ones: [completed], "
                        "[diverged] or [completed,diverged]", lambda v: set(v) <= {"completed", "diverged"}),
    "arm": Rule(str, "the name of an arm of hydra.sweeper.arms (the grid sweeper sets it), or null", nullable=True),
    "data.scale": one_of(SCALES),
    "data.std_floor": Rule(float, "a number in [0, 1]: the floor on each feature's σ as a share of its channel's σ",
                           lambda v: 0 <= v <= 1),
    "data.batch_size": positive(int),
    "data.val_fraction": fraction(what="a fraction of the training set"),
    "data.test_fraction": fraction(low_open=True, what="a fraction of the data"),
    "data.subset": positive(int, nullable=True),
    "data.num_samples": Rule(int, "an integer ≥ 100", lambda v: v >= 100),
    "data.generator_seed": seed_rule(),
    "data.data_seed": seed_rule(),
    "data.download": Rule(bool, "true or false"),
    "data.root": Rule(str, "a folder path, or null", nullable=True),
    "architecture.depth": non_negative(int),
    "architecture.width": positive(int),
    "architecture.activation": one_of(ACTIVATIONS),
    "architecture.channels": Rule(list, "a non-empty list of positive integers", _positive_int_list),
    "architecture.kernel_size": Rule(int, "an odd positive integer", lambda v: v > 0 and v % 2 == 1),
    "architecture.hidden": positive(int, nullable=True),
    "architecture.layers": positive(int),
    "architecture.nonlinearity": one_of(("relu", "tanh")),
    "architecture.recurrent_gain": positive(),
    "architecture.width_multiplier": positive(),
    "architecture.residual": Rule(bool, "true or false"),
    "architecture.blocks": Rule(list, "a non-empty list of positive integers (modules per stage)", _positive_int_list),
    "architecture.kind": one_of(("mlp", "cnn")),
    "init.std": positive(),
    "init.gain": positive(),
    "norm.groups": positive(int),
    "norm.eps": positive(),
    "norm.momentum": fraction(low_open=True, high_open=False),
    "dropout.p": fraction(what="a drop probability"),
    "optimizer.lr": positive(),
    "optimizer.weight_decay": non_negative(),
    "optimizer.decay_norm_and_bias": Rule(bool, "true or false"),
    "optimizer.momentum": fraction(),
    "optimizer.alpha": fraction(),
    "optimizer.eps": positive(),
    "optimizer.betas": Rule(list, "a list of two numbers in [0, 1), e.g. [0.9, 0.999]", _betas),
    "scheduler.gamma": fraction(low_open=True, high_open=False),
    "scheduler.step_size": positive(int),
    "scheduler.milestones": Rule(list, "a non-empty list of positive epochs, or null", _positive_int_list,
                                 nullable=True),
    "scheduler.eta_min": non_negative(),
    "scheduler.pct_start": fraction(low_open=True),
    "scheduler.div_factor": positive(),
    "scheduler.final_div_factor": positive(),
    "scheduler.monitor": one_of(METRICS),
    "scheduler.mode": one_of(MODES),
    "scheduler.factor": fraction(low_open=True),
    "scheduler.patience": non_negative(int),
    "scheduler.min_lr": non_negative(),
    "scheduler.warmup_fraction": fraction(),
    "scheduler.start_factor": fraction(low_open=True, high_open=False),
    "clip.max_norm": positive(),
    "clip.max_value": positive(),
    "clip.clip_factor": positive(),
    "clip.eps": positive(),
    "gradient.rho": positive(),
    "regularization.l1": non_negative(),
    "regularization.l2": non_negative(),
    "callbacks.early_stopping.enabled": Rule(bool, "true or false"),
    "callbacks.early_stopping.monitor": one_of(METRICS),
    "callbacks.early_stopping.mode": one_of(MODES),
    "callbacks.early_stopping.patience": non_negative(int),
    "callbacks.early_stopping.min_delta": non_negative(),
    "callbacks.checkpoint.enabled": Rule(bool, "true or false"),
    "callbacks.checkpoint.monitor": one_of(METRICS),
    "callbacks.checkpoint.mode": one_of(MODES),
    "callbacks.divergence.enabled": Rule(bool, "true or false"),
    "callbacks.grad_norm": Rule(bool, "true or false"),
    "callbacks.divergence.max_loss_factor": Rule(float, "a number > 1, or null", lambda v: v > 1, nullable=True),
    "diagnostics.enabled": Rule(bool, "true or false"),
    "diagnostics.every_n_steps": positive(int),
    "diagnostics.histograms": Rule(bool, "true or false"),
    "averaging.decay": fraction(low_open=True, what="an EMA decay"),
    "averaging.start_step": non_negative(int),
    "averaging.warmup": Rule(bool, "true or false"),
    "averaging.start_fraction": fraction(what="a share of the epochs"),
    "averaging.lr": Rule(float, "a learning rate > 0, or null (the rate at the SWA start, held)", lambda v: v > 0,
                         nullable=True),
    "averaging.anneal_epochs": non_negative(int),
    "averaging.anneal_strategy": one_of(("cos", "linear")),
    "callbacks.progress_bar": one_of(("rich", "tqdm", "none")),
    "logger.mode": one_of(("auto", "online", "offline", "disabled")),
    "logger.tags": Rule(list, "a list of strings", _strings),
    "logger.project": Rule(str, "a W&B project name"),
    "logger.entity": Rule(str, "a W&B entity (user or team), or null", nullable=True),
    "logger.group": Rule(str, "a W&B group name, or null (the sweep's)", nullable=True),
    "trainer.max_epochs": positive(int),
    "trainer.check_val_every_n_epoch": positive(int),
    "trainer.steps_per_call": positive(int),
    "trainer.limit_train_batches": Rule(float, "a fraction in (0, 1] or a count ≥ 1 of minibatches, or null",
                                        lambda v: v >= 1 if isinstance(v, int) else 0 < v <= 1, nullable=True),
    "callbacks.checkpoint.every_seconds": non_negative(),
    "trainer.limit_val_batches": Rule(float, "a fraction in [0, 1] or a count ≥ 0 of minibatches, or null",
                                      lambda v: v >= 0 if isinstance(v, int) else 0 <= v <= 1, nullable=True),
    "trainer.precision": Rule(object, "one of Lightning's precisions: " + ", ".join(map(str, PRECISIONS[:8])),
                              lambda v: v in PRECISIONS and not isinstance(v, float)),
    "trainer.accelerator": one_of(ACCELERATORS),
    "trainer.strategy": one_of(STRATEGIES),
    "trainer.devices": Rule(object, "auto, a positive count, -1 (every device), a list of device ids like [0, 1] "
                                    "or a string like '0,1'", lambda v: _devices(v)),
    "trainer.deterministic": Rule(object, "true, false or warn", lambda v: v in (True, False, "warn")),
}

# Rules for keys whose meaning depends on the architecture family (architecture.family, else .name).
FAMILY_RULES: dict[str, dict[str, Rule]] = {
    "resnet": {"architecture.depth": Rule(
        int, "6n+2 with n ≥ 1 blocks per stage, e.g. 8, 14, 20, 32, 44, 56, 110", lambda v: v >= 8 and v % 6 == 2)},
    "plain_deep": {"architecture.depth": Rule(int, "an integer ≥ 2 (weight layers, the classifier included)",
                                              lambda v: v >= 2)},
}

# Metrics a monitor can only see when there is a validation split.
VAL_MONITORS = ("scheduler.monitor", "callbacks.early_stopping.monitor", "callbacks.checkpoint.monitor")


# Group leaves that RULES leaves to another check, and which one: a test holds every leaf of tricklab/conf/ to
# RULES or here.
CHECKED_ELSEWHERE = {
    "name": "each group's choice name: its registry (tricklab.choices.pick) names the allowed ones",
    "architecture.family": "the architecture registry, like architecture.name",
    "paths.root_dir": "preflight: created and written by trying (tricklab.run.preflight)",
    "paths.output_dir": "preflight, likewise",
    "paths.data_dir": "preflight, likewise",
    "trainer.defaults": "Hydra's defaults list of the trainer group (not a value)",
}


def validate(cfg: DictConfig) -> None:
    """Check every value in ``cfg`` against RULES; raise one ConfigError listing all problems."""
    found = problems(cfg)
    if found:
        raise ConfigError("\n".join(found))


def problems(cfg: DictConfig) -> list[str]:
    """Every value of ``cfg`` that breaks its rule or a cross-check, one paragraph each (empty: all fine)."""
    family = _lookup(cfg, "architecture.family")
    family = _lookup(cfg, "architecture.name") if family is _MISSING else family
    found = [
        f"{key}={_show(value)} is not allowed: {why}; {key} must be {rule.allowed}."
        for key, rule in {**RULES, **FAMILY_RULES.get(family, {})}.items()
        if (value := _lookup(cfg, key)) is not _MISSING and (why := rule.problem(value))
    ]
    return found + _cross_checks(cfg)


def _cross_checks(cfg: DictConfig) -> list[str]:
    """Values each fine alone that together cannot work: splits left empty, a val monitor with no validation."""
    return (_split_problems(cfg) + _val_monitor_problems(cfg) + _gradient_problems(cfg)
            + _missing_extra_problems(cfg) + _optimizer_option_problems(cfg))


def _optimizer_option_problems(cfg: DictConfig) -> list[str]:
    """An option added to the optimizer (``+optimizer.<key>``) that its torch class does not take."""
    from tricklab.torch_names import unknown_options_problem

    optimizer = _lookup(cfg, "optimizer")  # a plain dict, resolved
    if not isinstance(optimizer, dict):
        return []
    why = unknown_options_problem(str(optimizer.get("name")), [str(key) for key in optimizer])
    return [why] if why else []


# gradient=<rule> -> (key, the values it cannot train with, why) (tricklab.tricks.gradient)
GRADIENT_CONFLICTS: dict[str, list[tuple[str, tuple[Any, ...], str]]] = {
    "sam": [
        ("norm.name", ("batch",), "its second forward pass would update batch norm's running statistics a second "
                                  "time each step"),
        ("trainer.precision", ("16-mixed", "bf16-mixed", "16", 16),
         "a gradient scaler unscales the gradients once a step, and SAM computes them twice"),
        ("diagnostics.enabled", (True,), "per-layer diagnostics would record the second, perturbed forward pass"),
    ],
}


def _gradient_problems(cfg: DictConfig) -> list[str]:
    """A gradient rule with a setting it cannot train with (one paragraph each)."""
    rule = _lookup(cfg, "gradient.name")
    return [f"gradient={rule} cannot train with {key}={_show(value)}: {why}; choose another {key}, or "
            f"gradient=backward (one backward pass)."
            for key, values, why in GRADIENT_CONFLICTS.get(rule, [])
            if (value := _lookup(cfg, key)) is not _MISSING and value in values]


def _missing_extra_problems(cfg: DictConfig) -> list[str]:
    """A logger whose library is an optional extra that is not installed (found without importing it)."""
    if _lookup(cfg, "logger.name") != "tensorboard" or any(
            importlib.util.find_spec(module) is not None for module in ("tensorboardX", "tensorboard")):
        return []
    return ["logger=tensorboard needs tensorboardX (or TensorBoard), which is not installed; install tricklab's "
            "[tensorboard] extra (pip install 'tricklab[tensorboard]', or pip install -e '.[tensorboard]' in a "
            "checkout), or choose another logger: logger=csv, logger=wandb or logger=none."]


def _val_monitor_problems(cfg: DictConfig) -> list[str]:
    """A monitor of a val/ metric needs validation to run at least once, else it waits on a metric never logged
    (early stopping and checkpoints would fail or silently keep nothing)."""
    why = _no_validation(cfg)
    return [
        f"{key}={_lookup(cfg, key)} needs validation, but {why}; {_NO_VAL_FIX[why.split('=')[0]]} "
        f"or monitor a train/ metric."
        for key in VAL_MONITORS
        if why and _lookup(cfg, key) in ("val/loss", "val/acc") and _enabled(cfg, key)
    ]


_NO_VAL_FIX = {
    "data.val_fraction": "set data.val_fraction > 0",
    "trainer.limit_val_batches": "set trainer.limit_val_batches > 0 (or null)",
    "trainer.check_val_every_n_epoch": "set trainer.check_val_every_n_epoch ≤ trainer.max_epochs",
}


def _no_validation(cfg: DictConfig) -> str | None:
    """Why no validation batch is ever run (None: some is), as ``key=value ...`` for the message."""
    if _lookup(cfg, "data.val_fraction") == 0:
        return "data.val_fraction=0"
    sizes = _split_sizes(cfg)
    if sizes is not None and sizes[1] == 0:
        return f"data.val_fraction={_lookup(cfg, 'data.val_fraction')} holds out 0 samples"
    if _lookup(cfg, "trainer.limit_val_batches") == 0:
        return "trainer.limit_val_batches=0 runs no validation batch"
    every, epochs = _lookup(cfg, "trainer.check_val_every_n_epoch"), _lookup(cfg, "trainer.max_epochs")
    if isinstance(every, int) and isinstance(epochs, int) and every > epochs:
        return (f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs} never reaches a "
                f"validation epoch")
    return None


# Training-set sizes before the validation split; mnist1d and digits depend on their own keys.
TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
DIGITS = 1797  # scikit-learn's 8x8 digits, train and test together


def _train_size(cfg: DictConfig) -> int | None:
    """How many training samples the dataset has before validation is held out (None: not known here)."""
    name = _lookup(cfg, "data.name")
    if name == "mnist1d" and isinstance(n := _lookup(cfg, "data.num_samples"), int):
        return int(n * 0.8)  # mnist1d.make_dataset keeps the first 80% for training
    if name == "digits" and isinstance(tf := _lookup(cfg, "data.test_fraction"), (int, float)):
        return DIGITS - math.ceil(tf * DIGITS)  # scikit-learn rounds the test share up
    return TRAIN_SIZES.get(name)


def _split_sizes(cfg: DictConfig) -> tuple[int, int] | None:
    """(training, validation) sample counts as the data module splits them (None: not known or not valid)."""
    n, fraction = _train_size(cfg), _lookup(cfg, "data.val_fraction")
    if n is None or not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction < 1:
        return None
    n_val = int(round(fraction * n))  # the same rounding as tricklab.data.datamodule
    return n - n_val, n_val


def _split_problems(cfg: DictConfig) -> list[str]:
    """A validation split that leaves no training sample, or a subset larger than what is left, refused before
    the run starts (the data module would refuse it only after the run folder exists)."""
    sizes = _split_sizes(cfg)
    if sizes is None:
        return []
    n_train, n_val = sizes
    fraction, subset = _lookup(cfg, "data.val_fraction"), _lookup(cfg, "data.subset")
    if n_train == 0:
        return [f"data.val_fraction={fraction} is not allowed: it holds out all {n_val} training samples for "
                f"validation, leaving 0 to train on; data.val_fraction must leave at least one "
                f"(below {1 - 0.5 / n_val:.6g} for this dataset)."]
    if isinstance(subset, int) and not isinstance(subset, bool) and subset > n_train:
        return [f"data.subset={subset} is not allowed: the training split has only {n_train} samples "
                f"({n_train + n_val} training samples, {n_val} held out for validation by "
                f"data.val_fraction={fraction}); data.subset must be at most {n_train}, or null for all of them."]
    return []


def _enabled(cfg: DictConfig, key: str) -> bool:
    parent = key.rsplit(".", 1)[0]
    return _lookup(cfg, parent + ".enabled") is not False


_MISSING = object()


def _lookup(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _show(value: Any) -> str:
    """A value as it is written on the command line: null, true/false, a quoted string, a number."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value) if isinstance(value, str) else str(value)
