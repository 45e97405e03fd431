"""One list of choices: every registry in the code names exactly the YAML files of its config group, and a name
a registry lacks is refused in one form, naming the key and what is known."""

from __future__ import annotations

import pytest
import torch

from tricklab.callbacks.averaging import AVERAGING
from tricklab.choices import ACTIVATIONS, check, pick
from tricklab.config import CONF_DIR
from tricklab.data.sources import SOURCES
from tricklab.errors import ConfigError
from tricklab.loggers import LOGGERS
from tricklab.models import ARCHITECTURES, build_model
from tricklab.models.layers import ACTIVATION_LAYERS
from tricklab.tricks.clip import CLIPS
from tricklab.tricks.gradient import GRADIENTS
from tricklab.tricks.init import INITS
from tricklab.tricks.norm import NORMS
from tricklab.tricks.optim import OPTIMIZERS
from tricklab.tricks.schedule import SCHEDULES

REGISTRIES = {"architecture": ARCHITECTURES, "init": INITS, "norm": NORMS, "optimizer": OPTIMIZERS,
              "scheduler": SCHEDULES, "logger": LOGGERS, "data": SOURCES, "clip": CLIPS, "averaging": AVERAGING,
              "gradient": GRADIENTS}


@pytest.mark.parametrize("group", sorted(REGISTRIES))
def test_each_registry_names_exactly_its_groups_yaml_files(group):
    assert {path.stem for path in (CONF_DIR / group).glob("*.yaml")} == set(REGISTRIES[group])


def test_activation_layers_are_the_activation_names():
    assert list(ACTIVATION_LAYERS) == list(ACTIVATIONS)
    assert all(issubclass(cls, torch.nn.Module) for cls in ACTIVATION_LAYERS.values())


def test_an_unknown_name_is_refused_naming_the_key_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"^init=bogus is unknown; known: default, uniform, .*orthogonal\.$"):
        pick(INITS, "init", "bogus")
    with pytest.raises(ConfigError, match="logger=tb is unknown; known: wandb, csv, tensorboard, none."):
        check(LOGGERS, "logger", "tb")
    assert pick(INITS, "init", "he") is INITS["he"]


@pytest.mark.parametrize(("cfg", "message"), [
    ({"architecture": {"name": "transformer"}}, "architecture=transformer is unknown"),
    ({"init": {"name": "xavier"}}, "init=xavier is unknown"),
    ({"norm": {"name": "instance"}}, "norm=instance is unknown"),
    ({"architecture": {"name": "mlp", "depth": 1, "width": 8, "activation": "swish"}},
     "architecture.activation=swish is unknown"),
])
def test_the_builders_refuse_names_through_the_one_helper(cfg, message):
    arch = cfg.get("architecture", {"name": "mlp", "depth": 1, "width": 8})
    with pytest.raises(ConfigError, match=message):
        build_model(arch, cfg.get("norm", {"name": "none"}), {"name": "standard", "p": 0.0},
                    cfg.get("init", {"name": "default"}), (1, 40), 10)
