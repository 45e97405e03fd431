"""Datasets load from real or test-written files, corrupt files are refused, scaling and batching hold."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tricklab.data.batches import IndexBatches
from tricklab.data.datamodule import TensorDataModule
from tricklab.data.files import DEBIAN_FASHION_MNIST
from tricklab.data.idx import read_idx
from tricklab.data.scaling import fit_scaler
from tricklab.errors import DataError

BASE = {"scale": "raw", "std_floor": 0.0, "batch_size": 16, "val_fraction": 0.2, "subset": None, "data_seed": 0,
        "root": None, "download": False}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(folder: Path, n_train: int = 50, n_test: int = 20, compress: bool = False) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for stem, array in arrays.items():
        data = idx_bytes(array)
        (folder / (stem + ".gz" if compress else stem)).write_bytes(gzip.compress(data) if compress else data)


def write_cifar(folder: Path, per_batch: int = 6) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))


def datamodule(name: str, data_dir: Path, **overrides) -> TensorDataModule:
    return TensorDataModule({"name": name, **BASE, **overrides}, data_dir, seed=0)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files_from_root(tmp_path, compress):
    write_idx_dataset(tmp_path / "MNIST" / "raw", compress=compress)
    dm = datamodule("mnist", tmp_path / "cache", root=str(tmp_path))
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10
    assert dm.sizes() == {"train": 40, "val": 10, "test": 20}
    assert dm.tensors["train"][0].max().item() <= 255 and dm.tensors["train"][0].max().item() > 200


def test_cifar10_reads_pickle_batches(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    dm = datamodule("cifar10", tmp_path / "cache", root=str(tmp_path), scale="standardize", val_fraction=0.0)
    assert dm.input_shape == (3, 32, 32) and dm.sizes() == {"train": 30, "val": 0, "test": 6}
    x = dm.tensors["train"][0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)  # per channel


def test_fashion_mnist_from_the_debian_package(tmp_path):
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist provides the files (.ci/run installs it)")
    dm = datamodule("fashion_mnist", tmp_path, scale="unit", subset=1000)
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10
    assert dm.sizes() == {"train": 1000, "val": 12000, "test": 10000}  # val_fraction 0.2 of 60k
    x = dm.tensors["train"][0]
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert x.mean().item() == pytest.approx(0.286, abs=0.02)  # Fashion-MNIST's known pixel mean


def test_mnist1d_is_generated_once_and_cached(tmp_path, fresh_datasets):
    cfg = {"num_samples": 1000, "generator_seed": 42}
    first = datamodule("mnist1d", tmp_path, **cfg)
    cache = list((tmp_path / "mnist1d").glob("*.npz"))
    assert len(cache) == 1 and first.input_shape == (1, 40) and first.num_classes == 10
    stamp = cache[0].stat().st_mtime_ns
    fresh_datasets.kept.clear()  # as in a new process: read from the .npz file, not from memory
    second = datamodule("mnist1d", tmp_path, **cfg)
    assert cache[0].stat().st_mtime_ns == stamp
    assert torch.equal(first.tensors["test"][0], second.tensors["test"][0])


def test_digits_split_and_subset(tmp_path):
    dm = datamodule("digits", tmp_path, test_fraction=0.2, subset=100)
    assert dm.input_shape == (1, 8, 8)
    sizes = dm.sizes()
    assert sizes["train"] == 100 and sizes["test"] == 360 and sizes["val"] == round(0.2 * 1437)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "corrupt"),
        (lambda b: b"\x01\x02" + b[2:], "idx header"),
        (lambda b: b + b"\x00" * 10, "holds"),
    ],
)
def test_corrupt_idx_files_are_refused(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(idx_bytes(np.zeros((3, 4, 4)))))
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_corrupt_gzip_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4))))[:-8])
    with pytest.raises(DataError, match="cannot be decompressed"):
        read_idx(path)


def test_missing_dataset_names_the_folders_and_the_fix(tmp_path):
    write_idx_dataset(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as err:
        datamodule("fashion_mnist", tmp_path / "cache", root=str(tmp_path / "partial"))
    assert "t10k-labels-idx1-ubyte" in str(err.value) and str(tmp_path / "partial") in str(err.value)
    assert "dataset-fashion-mnist" in str(err.value)


def test_corrupt_cifar_batch_is_refused(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch is corrupt"):
        datamodule("cifar10", tmp_path, root=str(tmp_path))


def test_mismatched_image_and_label_counts_are_refused(tmp_path):
    write_idx_dataset(tmp_path / "d")
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7)))
    with pytest.raises(DataError, match="labels"):
        datamodule("mnist", tmp_path, root=str(tmp_path / "d"))


@pytest.mark.parametrize(("kind", "low", "high"), [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_unit_and_symmetric_scaling_map_the_training_range(kind, low, high):
    x = np.random.default_rng(0).uniform(3, 9, (100, 1, 5)).astype(np.float32)
    scaled = fit_scaler(kind, x)(x)
    assert scaled.min() == pytest.approx(low, abs=1e-6) and scaled.max() == pytest.approx(high, abs=1e-6)


def test_standardize_channel_uses_training_statistics_per_channel():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 2, (500, 6)), rng.normal(-3, 0.5, (500, 6)), np.full((500, 6), 7.0)],
                 axis=1).astype(np.float32)
    scaled = fit_scaler("standardize_channel", x)(x)
    # the per-channel scaling standardize was before it went per feature: one μ_c and σ_c per channel (σ 0 → 1)
    mean, std = x.mean(axis=(0, 2), keepdims=True), x.std(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(scaled, (x - mean) / np.where(std > 0, std, 1), atol=1e-5)
    assert np.allclose(scaled[:, :2].mean(axis=(0, 2)), 0, atol=1e-5)
    assert np.allclose(scaled[:, :2].std(axis=(0, 2)), 1, atol=1e-4)
    assert np.allclose(fit_scaler("raw", x)(x), x)


def test_standardize_gives_every_feature_mean_0_and_std_1_on_the_training_split():
    rng = np.random.default_rng(0)
    centres, spreads = rng.uniform(-10, 10, (1, 2, 3, 4)), rng.uniform(0.5, 5, (1, 2, 3, 4))
    x = (centres + spreads * rng.normal(size=(400, 2, 3, 4))).astype(np.float32)
    scaled = fit_scaler("standardize", x, std_floor=0.0)(x)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-4)
    per_channel = fit_scaler("standardize_channel", x)(x)
    assert np.abs(per_channel.std(axis=0) - 1).max() > 0.3  # per channel leaves the features' spreads unequal


@pytest.mark.parametrize("value", [0.0, 7.3])
def test_a_constant_feature_maps_to_0_not_inf_or_nan(value):
    x = np.random.default_rng(0).normal(size=(300, 1, 5)).astype(np.float32)
    x[:, 0, 2] = value  # 7.3 in float32: its computed variance is rounding noise, not exactly 0
    scaler = fit_scaler("standardize", x, std_floor=0.0)
    scaled = scaler(x)
    assert np.isfinite(scaled).all() and np.all(scaled[:, 0, 2] == 0)
    assert scaler.scale[0, 0, 2] == 1  # scikit-learn's rule: σ of a constant feature is taken as 1
    np.testing.assert_allclose(scaled[:, 0, [0, 1, 3, 4]].std(axis=0), 1, atol=1e-4)


def test_the_std_floor_bounds_the_test_z_scores_of_near_constant_pixels(tmp_path):
    """scikit-learn's digits: a few border pixels barely vary in training (σ < 0.1 on the 0–16 scale), so without
    the floor a test image's value there becomes a z-score of about 50."""
    def test_z(std_floor: float) -> float:
        dm = datamodule("digits", tmp_path, scale="standardize", std_floor=std_floor, test_fraction=0.2)
        return float(dm.tensors["test"][0].abs().max())

    raw_train = datamodule("digits", tmp_path, test_fraction=0.2).tensors["train"][0].numpy()
    channel_std = float(raw_train.std())  # σ_c: digits has one channel
    assert test_z(0.0) > 40
    # |x - μ_j| ≤ 16 on the 0–16 scale, and σ_j ≥ f·σ_c: so |z| ≤ 16/(f·σ_c)
    assert test_z(0.1) <= 16 / (0.1 * channel_std) + 1e-3  # |z| ≤ range/(f·σ_c)
    assert test_z(1.0) <= 16 / channel_std + 1e-3


def test_index_batches_cover_each_sample_once_per_epoch_in_a_new_order():
    x, y = torch.arange(100).float()[:, None], torch.arange(100)
    batches = IndexBatches(x, y, batch_size=32, shuffle=True, seed=0)
    assert len(batches) == 4
    epoch1 = torch.cat([b[1] for b in batches])
    epoch2 = torch.cat([b[1] for b in batches])
    assert sorted(epoch1.tolist()) == list(range(100)) and not torch.equal(epoch1, epoch2)
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)
    ordered = torch.cat([b[1] for b in IndexBatches(x, y, 32, shuffle=False)])
    assert torch.equal(ordered, y)


def test_index_batches_shard_disjointly_across_ranks():
    x, y = torch.zeros(103, 1), torch.arange(103)
    shards = [torch.cat([b[1] for b in IndexBatches(x, y, 10, True, seed=1, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 51
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert len(IndexBatches(x, y, 10, True, rank=0, world_size=2)) == 6
