"""Cost of the per-layer diagnostics: time per training step with diagnostics off and on (every 50, 10, 1
steps), in the same process, on the same data and model; prints each ratio to the off baseline.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/diagnostics_cost.py [overrides, e.g. architecture.depth=8]

Each setting trains ``trainer.max_epochs`` epochs without validation, checkpoints or logger; the settings take
turns, ``REPEATS`` rounds in a rotating order, and the fastest run of each is kept (the least disturbed by other
processes: on a shared machine single runs vary by ±20%).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from tricklab.callbacks.diagnostics import LayerDiagnostics
from tricklab.config import CONF_DIR, register_resolvers
from tricklab.data.datamodule import TensorDataModule
from tricklab.models import build_model
from tricklab.module import ClassifierModule
from tricklab.tricks.step import build_step_tricks

REPEATS = 5
SETTINGS = {"off": None, "every 50 steps (default)": 50, "every 10 steps": 10, "every step": 1}


class StepClock(Callback):
    """Duration of every training batch: started by the first callback's hook, stopped by the last one's."""

    def __init__(self) -> None:
        self.started, self.durations = 0.0, []
        clock = self

        class Stop(Callback):
            def on_train_batch_end(self, *args) -> None:
                clock.durations.append(time.perf_counter() - clock.started)

        self.stop = Stop()

    def on_train_batch_start(self, *args) -> None:
        self.started = time.perf_counter()


def seconds_per_step(cfg: dict, every: int | None, out: Path, clock: StepClock | None = None) -> float:
    """Fit from scratch with diagnostics every ``every`` steps (None: off); wall time of fit / steps."""
    pl.seed_everything(cfg["seed"], verbose=False)
    data = TensorDataModule(cfg["data"], Path(cfg["paths"]["data_dir"]), cfg["seed"])
    model = build_model(cfg["architecture"], cfg["norm"], cfg["dropout"], cfg["init"], data.input_shape,
                        data.num_classes)
    module = ClassifierModule(model, build_step_tricks(cfg))
    callbacks = [] if every is None else [LayerDiagnostics(out / f"layers-{every}.csv", every, histograms=False)]
    if clock is not None:
        callbacks = [clock, *callbacks, clock.stop]
    trainer = pl.Trainer(max_epochs=cfg["trainer"]["max_epochs"], accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=callbacks)
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    return (time.perf_counter() - started) / trainer.global_step


def main(overrides: list[str]) -> None:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=["trainer.max_epochs=5", *overrides]),
                                     resolve=True)
    best = dict.fromkeys(SETTINGS, float("inf"))
    with tempfile.TemporaryDirectory() as out:
        names = list(SETTINGS)
        for round_ in range(REPEATS):
            for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                best[name] = min(best[name], seconds_per_step(cfg, SETTINGS[name], Path(out)))
    arch = cfg["architecture"]
    print(f"model: {arch['name']} depth={arch.get('depth')} width={arch.get('width')}, "
          f"data={cfg['data']['name']}, batch={cfg['data']['batch_size']}, best of {REPEATS}")
    for name, seconds in best.items():
        print(f"diagnostics {name:<26} {1e3 * seconds:7.3f} ms/step   ratio to off: {seconds / best['off']:.3f}")
    # Within one run (immune to the run-to-run noise): a diagnosed step against the median plain step.
    every, clock = SETTINGS["every 50 steps (default)"], StepClock()
    with tempfile.TemporaryDirectory() as out:
        seconds_per_step(cfg, every, Path(out), clock)
    diagnosed = statistics.median(clock.durations[every::every])  # steps 50, 100... (step 0 warms up)
    plain = statistics.median(d for i, d in enumerate(clock.durations) if i % every)
    print(f"within one run: diagnosed step {1e3 * diagnosed:.3f} ms, plain step {1e3 * plain:.3f} ms "
          f"(ratio {diagnosed / plain:.2f}); every {every} steps that averages to a per-step ratio of "
          f"{1 + (diagnosed - plain) / plain / every:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
