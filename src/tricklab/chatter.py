"""The libraries' console chatter, kept out of a run's output unless ``verbose=true``.

A two-second run printed some 80 lines: Lightning's SLURM hint (twice), device and tip lines, a deprecation
inside Lightning's own code, the model summary, and W&B's banners and run summary. By default a run prints its
progress bar and its closing table. Each message is matched by itself (its text, or its library's own switch:
Trainer(enable_model_summary=...), wandb.Settings(silent=True)), so whatever else a library says still shows.
Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

# Warnings that say nothing about the run: Lightning's hint to prepend srun (tricklab's launchers start srun
# themselves where they mean to), and a deprecation Lightning's own code triggers in torch.
WARNINGS = (
    r"The `srun` command is available on your system but is not used",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# Lightning's info lines that the config or the closing table already say, or that advertise.
INFO = (
    r"GPU available: ",
    r"TPU available: ",
    r"HPU available: ",
    r"LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES: ",
    r"💡 Tip: ",
    r"`Trainer.fit` stopped: `max_epochs=\d+` reached",  # the expected end; other reasons to stop still show
)
# Where Lightning logs those lines (rank_zero_info), under both of its package names.
LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                     "lightning_fabric.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class DropMessages(logging.Filter):
    """A logging filter dropping the records whose message starts with one of ``patterns`` (regular
    expressions)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(record.getMessage()) is None


@contextlib.contextmanager
def quiet_libraries(verbose: bool) -> Iterator[None]:
    """Within: Lightning's chatter (WARNINGS, INFO) dropped unless ``verbose``; restored on leaving, so the next
    job of a sweep worker starts as it was configured. W&B is made silent where its run starts
    (tricklab.loggers), the model summary where the Trainer is built (tricklab.run.trainer)."""
    if verbose:
        yield
        return
    drop = DropMessages(INFO)
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    with warnings.catch_warnings():
        for pattern in WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(drop)
