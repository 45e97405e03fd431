"""Every use of a library's private API, in one place, each with a test in tests/test_internals.py that fails
loudly when the library changes it. Use these functions, never the private names themselves.

Lightning (pinned <2.7 in pyproject.toml):
- ``count_optimizer_step``: what ``LightningOptimizer.step`` does around the update to count
  ``trainer.global_step``, without its per-step dispatch through strategy and precision plugin (the module's
  plain fp32 path calls torch's ``optimizer.step()`` itself).
- ``checkpoint_contents``: the dict ``trainer.save_checkpoint`` would write, kept in memory (RunCheckpoints holds
  a best epoch until its next write); Lightning offers only the write to a file.

Hydra:
- ``hydra_callbacks``: Hydra's (empty) callback runner, to build the ``HydraContext`` that ``run_job`` needs when
  a test drives a launcher without Hydra's own entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def count_optimizer_step(optimizer: Any, update: Callable[[], Any]) -> Any:
    """Run ``update()`` (the torch optimizer's step) counted as one optimizer step of the trainer, as
    ``LightningOptimizer.step`` would; ``optimizer`` is the LightningOptimizer (``module.optimizers()``)."""
    optimizer._on_before_step()
    result = update()
    optimizer._on_after_step()
    return result


def checkpoint_contents(trainer: Any) -> dict[str, Any]:
    """The checkpoint ``trainer.save_checkpoint(path, weights_only=False)`` would write now (live tensors)."""
    return trainer._checkpoint_connector.dump_checkpoint(weights_only=False)


def hydra_callbacks() -> Any:
    """Hydra's callback runner with no callbacks configured."""
    from hydra._internal.callbacks import Callbacks

    return Callbacks()
