"""Short real trainings: each dataset learns, and each run-level trick (schedule, clip, early stopping,
divergence, loggers, checkpoints) leaves the trace it should."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

import tricklab.callbacks
from tricklab.data.datamodule import TensorDataModule
from tricklab.data.files import DEBIAN_FASHION_MNIST
from tricklab.models import build_model
from tricklab.results import PREDICTIONS_FILE


def history(tmp_path, name="run"):
    return list(csv.DictReader((tmp_path / name / "history.csv").open()))


def test_digits_cnn_with_batch_norm_learns(run_training):
    metrics = run_training(["data=digits", "architecture=cnn", "norm=batch", "trainer.max_epochs=3"])
    assert metrics["status"] == "completed" and metrics["test"]["test/acc"] > 0.7
    assert metrics["input_shape"] == [1, 8, 8] and metrics["num_classes"] == 10


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs apt-get install dataset-fashion-mnist")
def test_the_issue_example_on_fashion_mnist(run_training, tmp_path):
    metrics = run_training([
        "data=fashion_mnist", "architecture=cnn", "norm=batch", "dropout.p=0.5", "optimizer=sgd",
        "optimizer.lr=0.05", "scheduler=exponential", "clip=norm", "data.subset=2000", "trainer.max_epochs=2",
    ])
    assert metrics["status"] == "completed" and metrics["test"]["test/acc"] > 0.5
    lrs = [float(r["lr"]) for r in history(tmp_path)]
    assert lrs == pytest.approx([0.05, 0.05 * 0.98])  # exponential: γ = 0.98 per epoch, logged each epoch


def test_history_has_one_row_per_epoch_with_every_column(run_training, tmp_path):
    run_training(["trainer.max_epochs=3", "data.subset=600", "callbacks.grad_norm=true"])
    rows = history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for column in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "grad_norm"):
        assert all(float(r[column]) >= 0 for r in rows), column
    assert int(rows[-1]["step"]) == 3 * 5  # 600 samples / batch 128 -> 5 steps an epoch


def test_grad_norm_is_the_mean_over_the_epochs_steps_before_clipping():
    import pytorch_lightning as pl
    from torch import nn

    from tricklab.data.batches import IndexBatches
    from tricklab.module import ClassifierModule
    from tricklab.stages import StepCallback
    from tricklab.tricks.step import build_step_tricks

    class RecordNorms(StepCallback):  # the gradients of the step's after_backward stage, before clipping
        def on_train_start(self, trainer, pl_module):
            self.norms = []

        def after_backward(self, trainer, step, model):
            self.norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])
                                                       ).item())

    torch.manual_seed(0)
    record = RecordNorms()
    module = ClassifierModule(nn.Linear(4, 3), build_step_tricks(
        {"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}, "clip": {"name": "norm", "max_norm": 1e-3}}))
    data = IndexBatches(torch.randn(40, 4), torch.randint(0, 3, (40,)), 8, shuffle=True, steps_per_call=2)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[record])
    trainer.fit(module, train_dataloaders=data)
    assert len(record.norms) == 5 and min(record.norms) > 1e-3
    assert float(trainer.callback_metrics["grad_norm"]) == pytest.approx(sum(record.norms) / 5, rel=1e-5)


def test_grad_norm_is_off_by_default(run_training, tmp_path):
    """It costs a pass over the gradients a step; clip=norm computes it anyway, callbacks.grad_norm=true asks."""
    run_training(["trainer.max_epochs=1", "data.subset=300"], name="default")
    assert history(tmp_path, "default")[0]["grad_norm"] == ""


def test_best_and_last_checkpoints_are_kept(run_training, tmp_path):
    metrics = run_training(["trainer.max_epochs=3", "data.subset=300"])  # 3 steps an epoch
    folder = tmp_path / "run" / "checkpoints"
    best_epoch = metrics["best"]["val/acc_epoch"]
    assert sorted(p.name for p in folder.iterdir()) == [f"best-epoch{best_epoch:03d}.ckpt", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=False)
    assert last["global_step"] == metrics["steps"] == 9 and last["epoch"] == 3  # the final state
    assert isinstance(last["hyper_parameters"]["optimizer"], dict)
    # Written only at the end (every_seconds=60), the best still holds the state of its own epoch.
    best = torch.load(folder / f"best-epoch{best_epoch:03d}.ckpt", weights_only=False)
    assert best["global_step"] == 3 * best_epoch and best["epoch"] == best_epoch - 1
    assert best["callbacks"]["RunCheckpoints"]["best_model_path"] == str(folder / f"best-epoch{best_epoch:03d}.ckpt")


@pytest.mark.parametrize("every_seconds", [0, 3600])
def test_checkpoints_are_written_on_a_clock(run_training, tmp_path, monkeypatch, every_seconds):
    """A run killed in its third epoch keeps what the clock let it write: every epoch's end, or nothing yet."""
    from tricklab.module import ClassifierModule

    start_epoch = ClassifierModule.on_train_epoch_start

    def killed_in_epoch_3(self):
        if self.current_epoch == 2:
            raise RuntimeError("killed")
        start_epoch(self)

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", killed_in_epoch_3)
    with pytest.raises(RuntimeError, match="killed"):
        run_training(["trainer.max_epochs=4", "data.subset=300", f"callbacks.checkpoint.every_seconds={every_seconds}"])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if every_seconds:
        assert not last.exists()
    else:
        assert torch.load(last, weights_only=False)["global_step"] == 2 * 3  # the end of epoch 2


def test_early_stopping_stops_and_tests_the_best_weights(run_training):
    metrics = run_training([
        "trainer.max_epochs=10", "data.subset=300", "callbacks.early_stopping.enabled=true",
        "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=10",
    ])
    assert metrics["epochs"] == 2 and metrics["test_weights"] == "best"


def reevaluated_probabilities(cfg, checkpoint: Path) -> np.ndarray:
    """Softmax of the test logits of the weights in ``checkpoint``, re-evaluated from scratch."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    data = TensorDataModule(plain["data"], Path(cfg.paths.data_dir), cfg.seed)
    model = build_model(plain["architecture"], plain["norm"], plain["dropout"], plain["init"], data.input_shape,
                        data.num_classes)
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    model.load_state_dict({key.removeprefix("model."): value for key, value in state.items()})
    with torch.no_grad():
        return torch.softmax(model.eval()(data.tensors["test"][0]), dim=1).numpy()


@pytest.mark.parametrize(("monitor", "mode"), [("val/acc", "max"), ("val/loss", "min")])
def test_early_stopping_tests_the_best_weights_by_its_own_monitor(run_training, make_config, tmp_path, monitor, mode):
    """200 samples at lr 0.01: val/loss is lowest at epoch 3 and rises, val/acc peaks at epoch 6, so each monitor
    picks its own epoch and early stopping (patience 2) stops after it."""
    overrides = ["trainer.max_epochs=12", "data.subset=200", "optimizer.lr=0.01",
                 "callbacks.early_stopping.enabled=true", f"callbacks.early_stopping.monitor={monitor}",
                 f"callbacks.early_stopping.mode={mode}", "callbacks.early_stopping.patience=2"]
    metrics = run_training(overrides)
    rows = history(tmp_path)
    epoch_by = {key: 1 + [float(r[key]) for r in rows].index(pick([float(r[key]) for r in rows]))
                for key, pick in (("val/acc", max), ("val/loss", min))}
    assert epoch_by["val/acc"] != epoch_by["val/loss"]  # the two monitors disagree here
    assert (metrics["test_weights"], metrics["test_monitor"], metrics["test_monitor_mode"]) == ("best", monitor, mode)
    assert metrics["test_epoch"] == epoch_by[monitor] < metrics["epochs"]
    checkpoint = tmp_path / "run" / "checkpoints" / f"best-epoch{epoch_by[monitor]:03d}.ckpt"
    probs = reevaluated_probabilities(make_config(["logger=none", *overrides]), checkpoint)
    np.testing.assert_allclose(np.load(tmp_path / "run" / PREDICTIONS_FILE)["probs"], probs, atol=1e-5)
    labels = np.load(tmp_path / "run" / PREDICTIONS_FILE)["labels"]
    assert metrics["test"]["test/acc"] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-6)


def test_huge_learning_rate_is_recorded_as_diverged(run_training, tmp_path):
    metrics = run_training(["optimizer=sgd", "optimizer.lr=1e12", "trainer.max_epochs=5", "init=normal"])
    assert metrics["status"] == "diverged" and metrics["diverged_at_step"] is not None
    assert metrics["epochs"] <= 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"


def test_a_crash_is_recorded_as_failed_and_raised(run_training, tmp_path, monkeypatch):
    from tricklab.module import ClassifierModule

    def explode(self, batch, batch_idx):
        raise RuntimeError("boom in training")

    monkeypatch.setattr(ClassifierModule, "training_step", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_training(["trainer.max_epochs=1"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "boom in training" in metrics["error"]


class GradientNormAfterClipping(Callback):
    """Records ‖g‖₂ as the optimizer saw it (Lightning clips before the step and zeroes grads later)."""

    def __init__(self):
        self.norms = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(torch.nn.utils.get_total_norm(grads).item())


@pytest.mark.parametrize(("clip", "bound"), [(["clip=norm", "clip.max_norm=0.05"], 0.05), (["clip=none"], None)])
def test_gradient_clipping_by_norm(run_training, monkeypatch, clip, bound):
    recorder = GradientNormAfterClipping()
    build = tricklab.callbacks.build_callbacks

    def with_recorder(*args):
        callbacks = build(*args)
        callbacks.others.append(recorder)
        return callbacks

    monkeypatch.setattr(tricklab.callbacks, "build_callbacks", with_recorder)
    run_training(["trainer.max_epochs=1", "data.subset=500", *clip])
    if bound is None:
        assert max(recorder.norms) > 0.1  # without clipping the norm exceeds the bound used above
    else:
        assert max(recorder.norms) <= bound * 1.001


def test_value_clipping_bounds_every_gradient_entry(run_training, monkeypatch):
    seen = []

    class MaxAbsGradient(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(max(p.grad.abs().max().item() for p in pl_module.parameters()))

    build = tricklab.callbacks.build_callbacks

    def with_recorder(*args):
        callbacks = build(*args)
        callbacks.others.append(MaxAbsGradient())
        return callbacks

    monkeypatch.setattr(tricklab.callbacks, "build_callbacks", with_recorder)
    run_training(["trainer.max_epochs=1", "data.subset=300", "clip=value", "clip.max_value=0.001"])
    assert seen and max(seen) <= 0.001 * 1.0001


def test_l2_penalty_shrinks_the_weights(run_training):
    sgd = ["trainer.max_epochs=2", "data.subset=500", "optimizer=sgd", "optimizer.lr=0.1"]
    plain = run_training(sgd, name="plain")
    penalised = run_training([*sgd, "regularization=l2", "regularization.l2=1.0"], name="l2")

    def weight_norm(metrics):
        state = torch.load(f"{metrics['run_dir']}/checkpoints/last.ckpt", weights_only=False)["state_dict"]
        return sum(v.norm() ** 2 for k, v in state.items() if k.endswith("weight")).sqrt().item()

    # SGD with an L2 penalty multiplies w by (1 - lr·λ₂) = 0.9 each of the 8 steps (0.43), the loss pulls back.
    assert weight_norm(penalised) < 0.75 * weight_norm(plain)


# logger=tensorboard needs the [tensorboard] extra (CI installs it): skipped without it.
NO_TENSORBOARD = not any(importlib.util.find_spec(m) for m in ("tensorboardX", "tensorboard"))


@pytest.mark.parametrize(("logger", "pattern"), [
    ("csv", "csv/metrics.csv"),
    pytest.param("tensorboard", "tensorboard/events.*",
                 marks=pytest.mark.skipif(NO_TENSORBOARD, reason="the [tensorboard] extra is not installed")),
])
def test_csv_and_tensorboard_loggers_write_the_epoch_metrics(run_training, tmp_path, logger, pattern):
    run_training([f"logger={logger}", "trainer.max_epochs=2", "data.subset=300"])
    files = list((tmp_path / "run").glob(pattern))
    assert files and files[0].stat().st_size > 0
    if logger == "csv":
        rows = list(csv.DictReader(files[0].open()))
        assert sum(1 for r in rows if r.get("val/acc")) == 2
        # at the optimizer step (3 an epoch, all in one Lightning call), with the 1-based epoch (metrics.logged_epoch)
        assert [(r["epoch"], r["step"]) for r in rows if r.get("train/loss")] == [("1", "3"), ("2", "6")]
        assert [(r["epoch"], r["step"]) for r in rows if r.get("val/loss")] == [("1", "3"), ("2", "6")]
        assert [(r["epoch"], r["step"]) for r in rows if r.get("test/acc")] == [("2", "6")]  # the last one trained


def test_same_seed_same_result(run_training):
    a = run_training(["trainer.max_epochs=1", "data.subset=300", "seed=3"], name="a")
    b = run_training(["trainer.max_epochs=1", "data.subset=300", "seed=3"], name="b")
    assert a["final"]["train/loss"] == b["final"]["train/loss"]


def test_checkpoints_can_be_switched_off(run_training, tmp_path):
    metrics = run_training(["trainer.max_epochs=1", "data.subset=300", "callbacks.checkpoint.enabled=false"])
    assert metrics["status"] == "completed" and (tmp_path / "run" / "history.csv").is_file()
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_trainer_without_a_gpu_is_a_config_error(run_training, tmp_path):
    from tricklab.errors import ConfigError

    with pytest.raises(ConfigError, match="accelerator=gpu.*cannot run on this machine"):
        run_training(["trainer=gpu"])
    assert not (tmp_path / "run" / "metrics.json").exists()  # nothing recorded as running


def test_ddp_on_two_cpu_processes_shards_the_data_and_records_once(tmp_path, data_dir):
    import numpy as np
    from helpers import compose_config, run_cli
    from omegaconf import OmegaConf

    from tricklab.data.datamodule import TensorDataModule

    out = run_cli(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
                   "logger=none", "callbacks.progress_bar=none", "threads=1", f"paths.output_dir={tmp_path}",
                   f"paths.data_dir={data_dir}"])
    assert out.returncode == 0, out.stderr[-2000:]
    [run_dir] = list((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["sizes"]["train"] == 3600
    assert metrics["steps"] == 2 * 15  # each of 2 ranks takes 1800 samples: 15 batches of 128 an epoch
    assert out.stdout.count("test accuracy") == 1  # one closing table, from rank 0
    # Both processes' test predictions, back in the test set's order
    saved = np.load(run_dir / "test_predictions.npz")
    data_cfg = OmegaConf.to_container(compose_config([], tmp_path, data_dir).data, resolve=True)
    data = TensorDataModule(data_cfg, data_dir, seed=0)
    np.testing.assert_array_equal(saved["labels"], data.tensors["test"][1].numpy())
    assert saved["probs"].shape == (1000, 10)


@pytest.mark.slow
def test_ddp_processes_agree_whether_to_resume(tmp_path, data_dir):
    """A failed run starts over in every process: the other rank must not resume from the last checkpoint when
    rank 0 has already marked the new attempt "running" (it did, and both processes hung)."""
    from helpers import run_cli

    args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "logger=none",
            "callbacks.progress_bar=none", "threads=1", f"paths.data_dir={data_dir}",
            f"hydra.run.dir={tmp_path / 'run'}", "callbacks.checkpoint.every_seconds=0"]
    assert run_cli([*args, "trainer.max_epochs=1"], timeout=300).returncode == 0
    metrics_file = tmp_path / "run" / "metrics.json"
    metrics_file.write_text(json.dumps({**json.loads(metrics_file.read_text()), "status": "failed"}))
    out = run_cli([*args, "trainer.max_epochs=2"], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "completed" and metrics["resumed_from"] is None
    assert metrics["steps"] == 2 * 15 and metrics["epochs"] == 2


def test_plateau_schedule_with_validation_every_other_epoch(run_training, tmp_path):
    """Plateau on val/loss steps only after epochs that validated (2 and 4), not on a stale value."""
    metrics = run_training(["scheduler=plateau", "trainer.check_val_every_n_epoch=2", "trainer.max_epochs=4",
                            "data.subset=300"])
    assert metrics["status"] == "completed" and metrics["epochs"] == 4
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["lr_schedulers"][0]["last_epoch"] == 2


@pytest.mark.parametrize("tricks", [["scheduler=onecycle", "clip=norm", "averaging=ema"],
                                    ["scheduler=plateau", "clip=value", "regularization=l2", "norm=batch"]])
def test_steps_per_call_changes_speed_not_training(run_training, tmp_path, tricks):
    """k minibatches per Lightning call train exactly as one per call does: per-step schedules, clipping, EMA
    and penalties act on every step, epoch schedules once an epoch."""
    common = ["trainer.max_epochs=3", "data.subset=600", *tricks]  # 5 steps an epoch
    one = run_training([*common, "trainer.steps_per_call=1"], name="one")
    many = run_training([*common, "trainer.steps_per_call=4"], name="many")  # calls of 4 + 1 steps
    assert one["steps"] == many["steps"] == 15
    assert one["final"] == many["final"] and one["test"] == many["test"]
    weights = [torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for name in ("one", "many")]
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_under_a_gradient_scaler_the_stages_see_unscaled_gradients(run_training, tmp_path):
    """16-mixed (a GradScaler, also on the CPU): the loss is scaled by 2^16 for backward, and the step unscales the
    gradients before the norm and clipping stages read them."""
    common = ["trainer.max_epochs=1", "data.subset=600", "clip=norm", "clip.max_norm=0.05"]
    fp32 = run_training(common, name="fp32")
    mixed = run_training([*common, "trainer.precision=16-mixed", "trainer.accelerator=cpu"], name="mixed")
    assert mixed["status"] == "completed"
    norms = [float(history(tmp_path, name)[0]["grad_norm"]) for name in ("fp32", "mixed")]
    assert norms[1] == pytest.approx(norms[0], rel=0.2)  # scaled gradients would be ~65536x larger
    assert mixed["final"]["train/loss"] == pytest.approx(fp32["final"]["train/loss"], rel=0.05)


def test_gpus_this_machine_lacks_are_refused_before_the_data_is_loaded(tmp_path):
    from helpers import run_cli

    if torch.cuda.device_count():
        pytest.skip("this machine has a GPU")
    data = tmp_path / "data"
    result = run_cli(["trainer.accelerator=gpu", "trainer.devices=2", f"paths.output_dir={tmp_path}",
                      f"paths.data_dir={data}", "logger=none"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("trainer.accelerator=gpu with trainer.devices=2 cannot run on this machine: it asks for 2 GPU(s), and "
            "this machine has 0") in result.stderr
    assert not data.exists()  # refused before MNIST-1D was generated


class StopInEpoch(Callback):
    """Ctrl-C in the middle of epoch ``epoch`` (1-based), as tricklab.signals turns Ctrl-C and SIGTERM into it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch + 1 == self.epoch and batch_idx == 2:
            raise KeyboardInterrupt


def test_a_run_stopped_mid_epoch_writes_its_finished_epochs_and_resumes_as_if_never_stopped(
        run_training, tmp_path, monkeypatch, capsys):
    # Steps of one minibatch a call, so that the stop falls inside an epoch; no clock write before it (60 s).
    overrides = ["trainer.max_epochs=3", "data.subset=1024", "trainer.steps_per_call=1"]
    build = tricklab.callbacks.build_callbacks
    monkeypatch.setattr(tricklab.callbacks, "build_callbacks",
                        lambda *args: (c := build(*args), c.others.append(StopInEpoch(2)))[0])
    with pytest.raises(SystemExit):  # Lightning's answer to a KeyboardInterrupt in fit
        run_training(overrides)
    cut = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert cut["status"] == "interrupted" and cut["epochs"] == 1
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
    monkeypatch.setattr(tricklab.callbacks, "build_callbacks", build)
    capsys.readouterr()
    resumed = run_training(overrides)
    assert "tricklab: resuming from epoch 2 of 3 (1 done;" in capsys.readouterr().out
    assert resumed["status"] == "completed" and resumed["steps"] == 24
    straight = run_training(overrides, name="straight")
    assert resumed["test"] == straight["test"]  # nothing lost, nothing trained twice
    same = [{k: v for k, v in row.items() if "time" not in k} for row in history(tmp_path)]
    assert same == [{k: v for k, v in row.items() if "time" not in k} for row in history(tmp_path, "straight")]


def test_a_run_that_fails_writes_no_checkpoint_on_its_way_out(run_training, tmp_path, monkeypatch):
    class Fail(StopInEpoch):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.current_epoch == 1:
                raise RuntimeError("boom")

    build = tricklab.callbacks.build_callbacks
    monkeypatch.setattr(tricklab.callbacks, "build_callbacks",
                        lambda *args: (c := build(*args), c.others.append(Fail(2)))[0])
    with pytest.raises(RuntimeError, match="boom"):
        run_training(["trainer.max_epochs=3", "data.subset=256"])
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # a failed run starts over


def test_the_progress_bar_numbers_epochs_from_1_and_says_it_counts_calls():
    from types import SimpleNamespace

    from tricklab.callbacks.progress import epoch_label

    def trainer(epoch: int, calls: float, steps: int, max_epochs: int = 20):
        datamodule = SimpleNamespace(train_steps_per_epoch=lambda: steps)
        return SimpleNamespace(current_epoch=epoch, max_epochs=max_epochs, num_training_batches=calls,
                               datamodule=datamodule)

    assert epoch_label(trainer(2, 1, 29)) == "epoch 3/20 · 29 steps in 1 call"
    assert epoch_label(trainer(0, 4, 100, max_epochs=-1)) == "epoch 1 · 100 steps in 4 calls"
    assert epoch_label(trainer(0, float("inf"), 1)) == "epoch 1/20"


@pytest.mark.parametrize("bar", ["rich", "tqdm"])
def test_a_runs_bar_shows_its_epoch_as_history_csv_numbers_it(run_training, tmp_path, monkeypatch, bar):
    from tricklab.callbacks.progress import EpochRichProgressBar, EpochTQDMProgressBar

    seen = []

    class ReadBar(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            (shown,) = [c for c in trainer.callbacks if isinstance(c, (EpochRichProgressBar, EpochTQDMProgressBar))]
            if isinstance(shown, EpochRichProgressBar):
                seen.append(next(t.description for t in shown.progress.tasks if t.id == shown.train_progress_bar_id))
            else:
                seen.append(shown.train_progress_bar.desc.removesuffix(": "))  # tqdm adds the colon

    build = tricklab.callbacks.build_callbacks

    def with_bar(cfg, *args):
        cfg.progress_bar = bar
        callbacks = build(cfg, *args)
        callbacks.others.append(ReadBar())
        return callbacks

    monkeypatch.setattr(tricklab.callbacks, "build_callbacks", with_bar)
    run_training(["trainer.max_epochs=2", "data.subset=300", "trainer.steps_per_call=2"])  # 3 steps an epoch
    assert seen == ["epoch 1/2 · 3 steps in 2 calls", "epoch 2/2 · 3 steps in 2 calls"]
    assert [int(r["epoch"]) for r in history(tmp_path)] == [1, 2]
