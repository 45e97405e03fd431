"""Where the image datasets' files are looked for, and whether they are all there, without reading them.

The loaders (tricklab.data.sources) read from the first folder that holds every file; the command-line checks
(tricklab.run.preflight, tricklab.checks) ask the same question first, so that a run whose data is missing and will
not be downloaded is refused before Hydra creates its folder. Only the standard library is imported here: the
checks run before anything heavy is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _all_idx_files(folder: Path) -> bool:
    return all(find_idx_file(folder, stem) for stem in IDX_STEMS)


def _all_cifar_batches(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CIFAR_TRAIN_BATCHES + CIFAR_TEST_BATCHES)


@dataclass(frozen=True)
class FileSet:
    """One dataset's files: its name in messages, torchvision's class for it (which downloads into
    ``data_dir/sub``), what the files are, and whether a folder holds them all."""

    title: str
    tv_name: str
    sub: str
    what: str
    complete: Callable[[Path], bool]
    system: tuple[Path, ...] = ()  # folders a system package fills, looked in before data_dir
    hint: str = ""  # how else to get the files, for the message

    def candidates(self, cfg: Mapping[str, Any], data_dir: Path) -> list[Path]:
        """Folders to look in: ``root`` and ``root/sub`` when a root is given, else the system's, then data_dir's."""
        if cfg.get("root"):
            root = Path(cfg["root"]).expanduser()
            return [root, root / self.sub]
        return [*self.system, data_dir / self.sub]

    def find(self, cfg: Mapping[str, Any], data_dir: Path) -> Path | None:
        """The first candidate folder that holds every file, or None."""
        return next((f for f in self.candidates(cfg, data_dir) if self.complete(f)), None)

    def missing(self, cfg: Mapping[str, Any], data_dir: Path) -> str:
        """The message for files found in no candidate folder (and not downloaded)."""
        fix = ("data.root was given, so nothing is downloaded" if cfg.get("root")
               else "set data.download=true to let torchvision download it, or point data.root at the files")
        searched = ", ".join(map(str, self.candidates(cfg, data_dir)))
        return f"{self.title} not found: none of {searched} holds {self.what}; {fix}{self.hint}."


FILE_SETS: dict[str, FileSet] = {
    "mnist": FileSet("MNIST", "MNIST", "MNIST/raw", "the four idx files " + ", ".join(IDX_STEMS) + " (.gz or not)",
                     _all_idx_files),
    "fashion_mnist": FileSet(
        "FashionMNIST", "FashionMNIST", "FashionMNIST/raw",
        "the four idx files " + ", ".join(IDX_STEMS) + " (.gz or not)", _all_idx_files, (DEBIAN_FASHION_MNIST,),
        "; on Debian, `apt-get install dataset-fashion-mnist` provides it"),
    "cifar10": FileSet("CIFAR-10", "CIFAR10", "cifar-10-batches-py",
                       "the pickle batches data_batch_1..5 and test_batch", _all_cifar_batches),
}


def downloads(cfg: Mapping[str, Any]) -> bool:
    """Whether a dataset that is not found is downloaded: only with data.download=true and no data.root."""
    return not cfg.get("root") and bool(cfg.get("download"))


def data_problems(cfg: Mapping[str, Any], data_dir: Path) -> list[str]:
    """The paragraph for a dataset (``cfg``: the data config) whose files are in none of the folders its loader
    looks in and that will not be downloaded; empty when it is there, is generated, or would be downloaded (a
    download that fails is reported when the run starts)."""
    files = FILE_SETS.get(str(cfg.get("name")))
    if files is None or downloads(cfg) or files.find(cfg, data_dir) is not None:
        return []
    return [files.missing(cfg, data_dir)]
