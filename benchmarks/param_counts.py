"""Parameter counts of every architecture (its YAML defaults) on every dataset shape, as a Markdown table.

    PYTHONPATH=src python benchmarks/param_counts.py [norm=batch ...]

Extra arguments are Hydra overrides applied to every architecture (norm, architecture.depth, ...).
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tricklab.config import CONF_DIR, register_resolvers
from tricklab.errors import ConfigError
from tricklab.models import build_model

# The data's input_shape per dataset (channels, positions...); all have 10 classes.
SHAPES = {"MNIST-1D": (1, 40), "digits": (1, 8, 8), "(Fashion-)MNIST": (1, 28, 28), "CIFAR-10": (3, 32, 32)}
ARCHITECTURES = {
    "mlp": ["architecture=mlp"], "cnn": ["architecture=cnn"], "resnet (20)": ["architecture=resnet"],
    "resnet (20, residual=false)": ["architecture=resnet", "architecture.residual=false"],
    "resnet (56)": ["architecture=resnet", "architecture.depth=56"],
    "inception": ["architecture=inception"], "plain_deep (mlp, 30)": ["architecture=plain_deep"],
    "plain_deep (cnn, 30)": ["architecture=plain_deep", "architecture.kind=cnn", "architecture.width=16"],
    "torchvision (resnet18)": ["architecture=torchvision", "architecture.name=resnet18"],
}


def count(overrides: list[str], shape: tuple[int, ...]) -> str:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        c = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    try:
        model = build_model(c["architecture"], c["norm"], c["dropout"], c["init"], shape, 10)
    except ConfigError:
        return "—"
    return f"{sum(p.numel() for p in model.parameters()):,}"


def main(extra: list[str]) -> None:
    register_resolvers()
    print("| architecture | " + " | ".join(f"{name} {shape}" for name, shape in SHAPES.items()) + " |")
    print("|---" * (len(SHAPES) + 1) + "|")
    for label, overrides in ARCHITECTURES.items():
        cells = [count([*overrides, *extra], shape) for shape in SHAPES.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
