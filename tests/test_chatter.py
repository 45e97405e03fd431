"""A run prints its progress bar and closing table, not the libraries' chatter, unless verbose=true."""

from __future__ import annotations

import logging
import warnings

from helpers import run_cli

from tricklab.chatter import LIGHTNING_LOGGERS, quiet_libraries

# What Lightning and W&B print into a default run's output (before tricklab.chatter): none of it may show.
CHATTER = ("The `srun` command is available", "GPU available:", "TPU available:", "💡 Tip:", "LeafSpec",
           "Total params", "FLOPs", "wandb:")
# A short default-ish run: the default logger (W&B, offline: no network in tests), 1 epoch of the small digits.
SHORT_RUN = ["data=digits", "trainer.max_epochs=1", "threads=1", "logger.mode=offline"]
# WANDB_SILENT (which the other tests set) would hide W&B's messages by itself: here tricklab must.
LOUD = {"WANDB_SILENT": "false"}


def test_a_default_run_prints_its_closing_table_and_no_chatter(tmp_path):
    result = run_cli([f"paths.output_dir={tmp_path}", *SHORT_RUN], env=LOUD, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert [line for line in CHATTER if line in out] == [], out
    assert "tricklab · " in out and "test accuracy" in out and "best val accuracy" in out


def test_verbose_brings_the_model_summary_and_the_libraries_messages_back(tmp_path):
    result = run_cli([f"paths.output_dir={tmp_path}", *SHORT_RUN, "verbose=true"], env=LOUD, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Total params" in out and "GPU available:" in out and "wandb: " in out, out
    assert "test accuracy" in out


def test_quiet_drops_only_the_named_messages_and_restores_on_leaving(caplog):
    log = logging.getLogger(LIGHTNING_LOGGERS[0])
    with caplog.at_level(logging.INFO, logger=log.name), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_libraries(verbose=False):
            log.info("GPU available: False, used: False")
            log.info("Restoring states from the checkpoint path at last.ckpt")
            warnings.warn("The `srun` command is available on your system but is not used.", stacklevel=1)
            warnings.warn("something else", stacklevel=1)
        log.info("GPU available: False, used: False")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Restoring states from the checkpoint path at last.ckpt", "GPU available: False, used: False"]
    assert [str(w.message) for w in caught] == ["something else"]
