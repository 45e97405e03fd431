"""Training throughput of the default run (MNIST-1D, MLP 40-256-256-10, Adam, batch 128), in one run:

1. plain: a hand-written PyTorch loop over in-memory tensors (the ceiling);
2. lightning: Lightning's floor, the loss alone in training_step over the same index batches, nothing else;
3. tricklab: the real ClassifierModule, TensorDataModule, callbacks and Trainer that `python train.py` builds
   (32 optimizer steps per Lightning call, metrics accumulated on the device, divergence guard, best epoch
   tracked every epoch and best + last checkpoints written at the end, progress bar);
4. template: Lightning + DataLoader + per-step `self.log` (lightning-hydra-template's way).

Same model init, same batch order (one randperm per epoch from the same seed), no validation anywhere, same
torch thread count. Each repeat runs the four ways in a rotated order; prints the best samples/s of each, its
ratio to the plain loop's best, and the median over repeats of the ratio within a repeat (robust to a machine
whose speed drifts). Target: tricklab >= 0.9x plain.

    python benchmarks/throughput.py [--epochs 30] [--threads 2] [--repeats 3] [--accelerator cpu|gpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import compose_config  # noqa: E402

from tricklab.run.context import RunContext  # noqa: E402
from tricklab.run.prepare import PreparedRun, prepare  # noqa: E402

# The default run, with no validation (none of the three ways validates) and no experiment logger.
OVERRIDES = ["logger=none", "data.val_fraction=0", "callbacks.checkpoint.monitor=train/acc"]


def prepared_run(tmp: Path, epochs: int, threads: int, accelerator: str = "cpu") -> PreparedRun:
    """What ``python train.py`` builds for the default run, up to (not including) ``trainer.fit``."""
    overrides = [*OVERRIDES, f"trainer.max_epochs={epochs}", f"threads={threads}", f"trainer.accelerator={accelerator}"]
    cfg = compose_config(overrides, tmp / "out", tmp / "data")
    return prepare(cfg, RunContext(tmp / "run"))


SEED = 0  # the default run's seed: IndexBatches draws its permutations from it


def permutations(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator) for _ in range(epochs)]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(model, x, y, epochs, batch_size, seed) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    synchronize(x.device)
    start = time.perf_counter()
    for order in permutations(len(x), epochs, seed):
        order = order.to(x.device)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    synchronize(x.device)
    return time.perf_counter() - start


def tricklab_fit(tmp: Path, epochs: int, threads: int, initial: dict, accelerator: str) -> float:
    prepared = prepared_run(tmp, epochs, threads, accelerator)
    prepared.module.model.load_state_dict(initial)
    start = time.perf_counter()
    prepared.trainer.fit(prepared.module, datamodule=prepared.datamodule)
    synchronize(prepared.module.device)
    return time.perf_counter() - start


def timed_fit(module, loader, epochs: int, accelerator: str, device: torch.device) -> float:
    """Seconds of a Lightning fit with no callback, logger, checkpoint, summary or validation."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator=accelerator, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, loader)
    synchronize(device)
    return time.perf_counter() - start


def bare_lightning_fit(model, x, y, epochs, batch_size, seed, accelerator) -> float:
    """Lightning's own floor: the loss alone in training_step, index batches, no callback, logger or checkpoint."""
    import pytorch_lightning as pl

    from tricklab.data.batches import IndexBatches

    class BareModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.model(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return timed_fit(BareModule(), IndexBatches(x, y, batch_size, shuffle=True, seed=seed), epochs, accelerator,
                     x.device)


def template_fit(model, x, y, epochs, batch_size, seed, accelerator) -> float:
    """The dataset stays on the CPU, as a DataLoader's does; Lightning moves each batch to the device."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    class TemplateModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            logits = self.model(xb)
            loss = F.cross_entropy(logits, yb)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
            self.log("train/acc", (logits.argmax(1) == yb).float().mean(), on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    orders = permutations(len(x), epochs, seed)

    class SameOrder(torch.utils.data.Sampler):
        def __init__(self):
            self.epoch = 0

        def __iter__(self):
            order = orders[min(self.epoch, epochs - 1)]
            self.epoch += 1
            return iter([order[i : i + batch_size].tolist() for i in range(0, len(x), batch_size)])

        def __len__(self):
            return -(-len(x) // batch_size)

    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_sampler=SameOrder())
    return timed_fit(TemplateModule(), loader, epochs, accelerator, x.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each way")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu", help="where all four ways train")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import logging
    import tempfile

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        reference = prepared_run(tmp / "reference", args.epochs, args.threads)
        device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
        model, batch_size = reference.module.model.to(device), reference.datamodule.batch_size
        x, y = (t.to(device) for t in reference.datamodule.tensors["train"])
        initial = {k: v.clone() for k, v in model.state_dict().items()}

        def fresh():  # Lightning moves a module back to the CPU when fit ends
            model.load_state_dict(initial)
            return model.to(device)

        ways = {
            "plain": lambda r: plain_loop(fresh(), x, y, args.epochs, batch_size, SEED),
            "lightning": lambda r: bare_lightning_fit(fresh(), x, y, args.epochs, batch_size, SEED, args.accelerator),
            "tricklab": lambda r: tricklab_fit(tmp / str(r), args.epochs, args.threads, initial, args.accelerator),
            "template": lambda r: template_fit(fresh(), x, y, args.epochs, batch_size, SEED, args.accelerator),
        }
        timings: dict[str, list[float]] = {way: [] for way in ways}
        names = list(ways)
        for repeat in range(args.repeats):  # each repeat runs all four, in a rotated order
            for way in names[repeat % 4:] + names[: repeat % 4]:
                timings[way].append(ways[way](repeat))
    samples = args.epochs * len(y)
    print(f"default MLP on MNIST-1D: {len(y)} train samples x {args.epochs} epochs, batch {batch_size}, "
          f"{args.threads} torch threads, {args.repeats} repeats, on {device}")
    print(f"  {'way':9s} {'samples/s':>10s}   best/best   median of a repeat's ratios")
    base = samples / min(timings["plain"])
    for way, times in timings.items():
        rate = samples / min(times)
        ratios = sorted(p / t for p, t in zip(timings["plain"], times, strict=True))
        print(f"  {way:9s} {rate:10.0f}   {rate / base:5.2f}x       {ratios[len(ratios) // 2]:5.2f}x")


if __name__ == "__main__":
    main()
