"""The ``idx_images`` dataset on files written in the exact IDX format, and on Debian's Fashion-MNIST."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maekit.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_ROOT, IdxImagesDataset, read_idx
from maekit.registry import build


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """The IDX layout written independently of the reader: 00 00 type ndim, big-endian dims, big-endian values."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture
def mnist_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(4, dtype=np.uint8), 10)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:8])  # raw, as MNIST's files are once gunzipped
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:8])
    return tmp_path, images, labels


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_every_type_code_in_big_endian(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype if dtype != "u1" else "i4").astype(dtype)
    read = read_idx(write_idx(tmp_path / "a-idx3-ubyte", array))
    assert read.dtype == np.dtype(dtype) and np.array_equal(read, array)


def test_idx_images_reads_both_splits_raw_and_gzipped(mnist_folder):
    root, images, labels = mnist_folder
    train = build("dataset", dict(type="idx_images", root=str(root), split="train", size=28))
    test = IdxImagesDataset(root, split="test")
    assert len(train) == 40 and len(test) == 8 and train.classes == ["0", "1", "2", "3"]
    sample = train[13]
    assert sample["label"] == 1 and sample["inputs"].shape == (1, 28, 28)
    assert torch.allclose(sample["inputs"][0], torch.from_numpy(images[13] / 255.0).float())
    assert torch.equal(test[5]["inputs"], train[5]["inputs"])


def test_idx_images_resizes_bilinearly_and_replicates_channels(mnist_folder):
    root, images, _ = mnist_folder
    sample = IdxImagesDataset(root, size=32, channels=3)[2]["inputs"]
    expected = F.interpolate(torch.from_numpy(images[2] / 255.0).float()[None, None], size=(32, 32), mode="bilinear",
                             align_corners=False)[0].clamp(0, 1)
    assert sample.shape == (3, 32, 32) and torch.allclose(sample, expected.expand(3, -1, -1))


def test_idx_images_limit_keeps_a_stratified_seeded_share(mnist_folder):
    root, _, labels = mnist_folder
    first, again, other = (IdxImagesDataset(root, limit=20, seed=s) for s in (0, 0, 1))
    assert len(first) == 20 and np.bincount(first.labels.numpy()).tolist() == [5, 5, 5, 5]
    assert torch.equal(first.labels, again.labels) and torch.equal(first.pixels, again.pixels)
    assert not torch.equal(first.pixels, other.pixels)
    with pytest.raises(ValueError, match="limit 2 .*number of classes \\(4\\)"):
        IdxImagesDataset(root, limit=2)


def test_idx_images_errors_name_the_file_and_what_was_expected(mnist_folder, tmp_path):
    root, images, labels = mnist_folder
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(b"\x89PNG....")
    write_idx(bad / "train-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: not an IDX file .*got 89 50 4e 47"):
        IdxImagesDataset(bad)
    truncated = write_idx(bad / "train-images-idx3-ubyte", images)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        IdxImagesDataset(bad)
    write_idx(bad / "train-images-idx3-ubyte", images[:30])
    with pytest.raises(ValueError, match="holds 40 labels for the 30 images"):
        IdxImagesDataset(bad)
    with pytest.raises(ValueError, match="expected one test images file .*found none"):
        IdxImagesDataset(bad, split="test")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        IdxImagesDataset(root, split="val")
    with pytest.raises(ValueError, match="expected bytes of shape N×H×W"):
        IdxImagesDataset(images=write_idx(bad / "x-images-idx3-ubyte", images.astype(np.float32)),
                         labels=bad / "train-labels-idx1-ubyte")
    with pytest.raises(ValueError, match="both 'images' and 'labels'"):
        IdxImagesDataset(images=bad / "train-images-idx3-ubyte")
    (bad / "broken-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match="cannot read this IDX file"):
        read_idx(bad / "broken-images-idx3-ubyte.gz")


def test_debians_fashion_mnist_as_the_set_up_installs_it():
    """.ci/setup installs Debian's dataset-fashion-mnist: the real 60k/10k IDX files."""
    train = IdxImagesDataset(FASHION_MNIST_ROOT, split="train")
    test = IdxImagesDataset(FASHION_MNIST_ROOT, split="test", limit=1000)
    assert len(train) == 60000 and len(test) == 1000 and train.classes == list(FASHION_MNIST_CLASSES)
    assert np.bincount(train.labels.numpy()).tolist() == [6000] * 10
    assert train[0]["inputs"].shape == (1, 28, 28) and 0.0 < float(train[0]["inputs"].mean()) < 1.0


def test_idx_images_colour_files_and_a_folder_holding_both_raw_and_gzipped(tmp_path):
    """N×H×W×C images (RGB, RGBA: alpha dropped) to one channel by ITU-R 601-2 luminance, or kept;
    torchvision's MNIST/raw has every file twice (.gz and unpacked): the unpacked one is read."""
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, size=(6, 8, 8, 4), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    for compress in (True, False):
        write_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else "")), rgba, compress=compress)
        write_idx(tmp_path / ("train-labels-idx1-ubyte" + (".gz" if compress else "")), labels, compress=compress)
    grey = IdxImagesDataset(tmp_path, size=8, channels=1)[4]["inputs"]
    expected = (rgba[4, ..., :3].astype(np.float64) / 255 * [0.299, 0.587, 0.114]).sum(-1)
    assert grey.shape == (1, 8, 8) and np.allclose(grey[0].numpy(), expected, atol=1e-6)
    colour = IdxImagesDataset(tmp_path, size=8, channels=3)[4]["inputs"]
    assert np.allclose(colour.permute(1, 2, 0).numpy(), rgba[4, ..., :3] / 255, atol=1e-6)
    with pytest.raises(ValueError, match="with C 1, 3 or 4"):
        IdxImagesDataset(images=write_idx(tmp_path / "two-images-idx3-ubyte", rgba[..., :2]),
                         labels=tmp_path / "train-labels-idx1-ubyte")
