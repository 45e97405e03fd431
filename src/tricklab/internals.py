"""Every use of a library's private API, one small function each, so a library upgrade breaks here (and in
tests/test_internals.py) rather than somewhere in the middle of tricklab."""

from __future__ import annotations

import argparse
import typing

# --- Lightning -------------------------------------------------------------------------------------------


def lightning_precisions() -> tuple:
    """Every ``precision=`` value Lightning accepts (lightning_fabric.connector's private Literal types)."""
    from lightning_fabric import connector

    return tuple(value for alias in ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_STR_ALIAS", "_PRECISION_INPUT_INT")
                 for value in typing.get_args(getattr(connector, alias)))


# --- Hydra -----------------------------------------------------------------------------------------------


def hydra_args_parser() -> argparse.ArgumentParser:
    """The argument parser behind ``@hydra.main`` (hydra._internal.utils), to read a command line as Hydra will
    before Hydra runs."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()
