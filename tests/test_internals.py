"""The private library API tricklab uses, all of it in tricklab.internals, and the library lists it copies: each
test fails loudly when the library changes what tricklab relies on (Lightning is pinned <2.7 in pyproject.toml;
a new release must pass them first)."""

from __future__ import annotations

import inspect

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.strategies import StrategyRegistry
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tricklab.internals import (
    checkpoint_contents,
    count_optimizer_step,
    early_stopping_says_stop,
    foreach_lerp,
    hydra_args_parser,
    hydra_basic_sweeper,
    hydra_callbacks,
    lightning_precisions,
    optuna_trial,
)
from tricklab.lightning_names import ACCELERATORS, PRECISIONS, STRATEGIES


class ManualSteps(pl.LightningModule):
    """Two torch optimizer steps a batch, each counted through the adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = nn.Linear(3, 2)
        self.steps_seen: list[int] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        for _ in range(2):
            optimizer = self.optimizers()
            optimizer.optimizer.zero_grad()
            F.cross_entropy(self.net(x), y).backward()
            count_optimizer_step(optimizer, optimizer.optimizer.step)
            self.steps_seen.append(self.trainer.global_step)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, module: pl.LightningModule, batches: int = 3) -> pl.Trainer:
    data = TensorDataset(torch.randn(4 * batches, 3), torch.randint(0, 2, (4 * batches,)))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, DataLoader(data, batch_size=4))
    return trainer


def test_count_optimizer_step_counts_each_torch_step_in_global_step(tmp_path):
    module = ManualSteps()
    before = module.net.weight.detach().clone()
    trainer = fit(tmp_path, module)
    assert module.steps_seen == [1, 2, 3, 4, 5, 6]  # counted as soon as each update is done
    assert trainer.global_step == 6
    assert not torch.equal(before, module.net.weight)  # the update itself ran


def test_foreach_lerp_moves_each_tensor_by_a_device_tensor_weight():
    targets, ends = [torch.zeros(3), torch.zeros(2, 2)], [torch.ones(3), torch.full((2, 2), 2.0)]
    foreach_lerp(targets, ends, torch.tensor(0.25))
    torch.testing.assert_close(targets[0], torch.full((3,), 0.25))
    torch.testing.assert_close(targets[1], torch.full((2, 2), 0.5))


def test_checkpoint_contents_is_what_save_checkpoint_writes(tmp_path):
    module = ManualSteps()
    trainer = fit(tmp_path, module)
    contents = checkpoint_contents(trainer)
    trainer.save_checkpoint(tmp_path / "written.ckpt")
    written = torch.load(tmp_path / "written.ckpt", weights_only=False)
    assert set(contents) == set(written)
    assert contents["global_step"] == written["global_step"] == 6
    for key, value in written["state_dict"].items():
        assert torch.equal(contents["state_dict"][key], value)


def test_early_stopping_says_stop_follows_lightnings_rule_without_a_trainer():
    from pytorch_lightning.callbacks import EarlyStopping

    rule = EarlyStopping(monitor="val/loss", mode="min", patience=2, min_delta=0.1)
    decisions = [early_stopping_says_stop(rule, v) for v in (1.0, 0.95, 0.5, 0.45, 0.48)]
    assert decisions == [False, False, False, False, True]  # 0.95 and 0.45 improve by < min_delta
    assert rule.best_score.item() == pytest.approx(0.5) and rule.wait_count == 2
    assert early_stopping_says_stop(EarlyStopping(monitor="m", mode="max"), float("nan"))  # non-finite: stop


def test_hydra_callbacks_runs_job_hooks_without_configured_callbacks():
    callbacks = hydra_callbacks()
    for hook in ("on_job_start", "on_job_end", "on_multirun_start", "on_multirun_end"):
        assert callable(getattr(callbacks, hook))


def test_the_copied_precisions_are_lightnings():
    assert set(PRECISIONS) == set(lightning_precisions())
    assert "bogus" not in lightning_precisions() and "16-mixed" in lightning_precisions()


def test_the_copied_accelerators_and_strategies_are_lightnings():
    assert set(ACCELERATORS) == {"auto", "gpu", *AcceleratorRegistry.available_accelerators()}
    assert set(STRATEGIES) == {"auto", *StrategyRegistry.available_strategies()}


def test_hydras_argument_parser_reads_a_command_line_as_hydra_does():
    args = hydra_args_parser().parse_args(["-m", "seed=0,1", "+foo=1", "--cfg", "job"])
    assert args.multirun and args.overrides == ["seed=0,1", "+foo=1"] and args.cfg == "job"
    assert not hydra_args_parser().parse_args(["seed=1"]).multirun


def test_optuna_trial_is_built_from_its_number_in_another_process_view(tmp_path):
    optuna = pytest.importorskip("optuna", reason="pip install -e '.[optuna]'")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # The constructor tricklab calls: Trial(study, trial_id); its id maps from the number through the storage.
    assert list(inspect.signature(optuna.trial.Trial.__init__).parameters) == ["self", "study", "trial_id"]
    path = str(tmp_path / "journal")
    asker = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)),
                                direction="maximize")
    asker.ask()
    asked = asker.ask()
    # A job's view: the same study loaded through a storage of its own, as a worker process does.
    job_study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)),
                                  pruner=optuna.pruners.NopPruner())
    trial = optuna_trial(job_study, asked.number)
    assert trial.number == asked.number and trial.params == asked.params
    trial.report(0.25, 1)
    trial.set_user_attr("seen", True)
    assert trial.should_prune() is False
    frozen = asker.trials[asked.number]  # what the job wrote is in the asker's study
    assert frozen.intermediate_values == {1: 0.25} and frozen.user_attrs == {"seen": True}


def test_hydras_basic_sweeper_splits_a_grid_into_jobs():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(["a=1,2", "b=x"])
    (jobs,) = hydra_basic_sweeper().split_arguments(parsed, None)
    assert jobs == [["a=1", "b=x"], ["a=2", "b=x"]]


def test_the_copied_optimizer_options_are_torchs():
    import inspect

    from tricklab.torch_names import OPTIMIZER_OPTIONS
    from tricklab.tricks.optim import OPTIMIZERS

    assert set(OPTIMIZER_OPTIONS) == set(OPTIMIZERS)
    for name, (cls, fixed) in OPTIMIZERS.items():
        takes = set(inspect.signature(cls).parameters) - {"self", "params", *fixed}
        assert set(OPTIMIZER_OPTIONS[name]) == takes, name
