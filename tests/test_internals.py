"""tricklab's uses of private library APIs (tricklab.internals) and the library lists it copies: each test
fails when the library changes what tricklab relies on."""

from __future__ import annotations

from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.strategies import StrategyRegistry

from tricklab.internals import hydra_args_parser, lightning_precisions
from tricklab.lightning_names import ACCELERATORS, PRECISIONS, STRATEGIES


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
