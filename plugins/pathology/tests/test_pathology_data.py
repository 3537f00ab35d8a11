"""Tiles on disk in NCT-CRC-HE-100K's layout, the stain cache, the multi-modal augmentation, the
few-label subsets and the demo tiles."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from maekit.authoring.testing import run_cli
from maekit_pathology.data import DemoTiles, MultiModalAugment, PathologyTiles
from maekit_pathology.evaluate import LabelSubset, balanced_subset
from maekit_pathology.stains import StainSeparation


def write_tiles(root, classes=("ADI", "BACK", "TUM"), per_class=3, size=24, seed=0):
    """RGB .tif tiles as NCT-CRC-HE-100K ships them (root/<CLASS>/<CLASS>-<ID>.tif)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(40, 250, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}-{index:04d}.tif")
    return root


def test_class_folders_of_tif_tiles_with_background_excluded(tmp_path):
    root = write_tiles(tmp_path / "NCT")
    tiles = PathologyTiles(root, exclude=["BACK"])
    assert tiles.classes == ["ADI", "TUM"] and len(tiles) == 6
    sample = tiles[4]
    assert sample["label"] == 1 and sample["inputs"].shape == (3, 24, 24)
    expected = np.asarray(Image.open(root / "TUM" / "TUM-0001.tif"), dtype=np.float32) / 255
    np.testing.assert_allclose(sample["inputs"].permute(1, 2, 0).numpy(), expected)
    with_stains = PathologyTiles(root, exclude=["BACK"], stains="ruifrok")[4]["inputs"]
    assert with_stains.shape == (5, 24, 24)
    torch.testing.assert_close(with_stains, StainSeparation("ruifrok")(sample["inputs"]))
    chosen = PathologyTiles(root, classes=["TUM", "ADI"])
    assert chosen.classes == ["TUM", "ADI"] and chosen[0]["label"] == 0
    with pytest.raises(ValueError, match=r"excluded classes \['STR'\] not found"):
        PathologyTiles(root, exclude=["STR"])
    with pytest.raises(ValueError, match="stains must be"):
        PathologyTiles(root, stains="macenko")


def test_a_flat_folder_of_unlabelled_tiles_and_a_corrupt_tile_named(tmp_path):
    root = tmp_path / "tiles"
    root.mkdir()
    Image.fromarray(he_tile(8)).save(root / "a.tif")
    (root / "b.tif").write_bytes(b"not a tiff")
    tiles = PathologyTiles(root)
    assert tiles[0]["label"] == -1
    with pytest.raises(ValueError, match="b.tif: cannot read image"):
        tiles[1]
    assert len(PathologyTiles(root, exclude=["BACK"])) == 2  # nothing to exclude in a flat folder: not an error


def he_tile(size: int, stains=(0, 1), seed: int = 0) -> np.ndarray:
    """A uint8 tile made by the Beer-Lambert law from Ruifrok's vectors (rows H, E, DAB) with random
    concentrations of the chosen stains, a quarter of it background."""
    from maekit_pathology.stains import RGB_FROM_HED

    rng = np.random.default_rng(seed)
    concentrations = np.zeros((size, size, 3))
    for stain in stains:
        concentrations[..., stain] = rng.uniform(0.3, 1.2, (size, size))
    concentrations[: size // 4] = 0
    return (255 * np.exp(-(concentrations @ RGB_FROM_HED))).round().astype(np.uint8)


def test_grayscale_and_dab_tiles_are_refused_with_a_reason_or_skipped_or_warned(tmp_path, caplog):
    root = tmp_path / "tiles"
    root.mkdir()
    Image.fromarray(he_tile(32)).save(root / "a_he.png")
    Image.fromarray(np.repeat(he_tile(32)[..., :1], 3, axis=-1)).save(root / "b_gray.png")
    Image.fromarray(he_tile(32, stains=(0, 2))).save(root / "c_ihc.png")  # haematoxylin counterstain + DAB
    tiles = PathologyTiles(root)
    assert tiles[0]["inputs"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="b_gray.png: a grayscale image .* eosin image would be all zero"):
        tiles[1]
    with caplog.at_level("WARNING", logger="maekit"):  # the DAB check is a heuristic: warned, once per file
        tiles[2], tiles[2]
    warned = [record.getMessage() for record in caplog.records if "looks like an IHC" in record.getMessage()]
    assert len(warned) == 1 and "c_ihc.png" in warned[0] and "a_he.png" not in " ".join(warned)
    strict = PathologyTiles(root, stain_check="refuse")
    with pytest.raises(ValueError, match="c_ihc.png: looks like an IHC \\(DAB\\) stain"):
        strict[2]
    skipping = PathologyTiles(root, on_error="skip", stain_check="refuse")
    assert [skipping[i]["inputs"].shape for i in range(3)] == [(3, 32, 32)] * 3
    assert sorted(p.name for p in skipping.skipped_files) == ["b_gray.png", "c_ihc.png"]
    assert PathologyTiles(root, stain_check="off")[1]["inputs"].shape == (3, 32, 32)


def test_stain_cache_gives_blank_tiles_the_ruifrok_vectors_lists_them_and_can_exclude_a_class(tmp_path):
    root = tmp_path / "NCT"
    for name, pixels in (("TUM/TUM-0000.png", he_tile(16)), ("BACK/BACK-0000.png", np.full((16, 16, 3), 245, np.uint8))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name)
    cache = tmp_path / "stains"
    result = run_cli("pathology-stains", str(root), "--out", str(cache), env_extra={"MAEKIT_PLUGINS": "maekit-pathology"})
    assert "BACK/BACK-0000.png: no tissue pixels for Vahadane; stains from the Ruifrok vectors" in result.stdout
    manifest = json.loads((cache / "stain_cache.json").read_text())
    assert manifest["ruifrok_fallbacks"] == ["BACK/BACK-0000.png"] and manifest["tiles"] == 2
    ruifrok = StainSeparation("ruifrok").stains(PathologyTiles(root, stain_check="off")[0]["inputs"])
    cached = np.load(cache / "BACK" / "BACK-0000.npz")
    np.testing.assert_allclose(cached["eosin"], ruifrok[1].numpy(), atol=2e-2)
    result = run_cli("pathology-stains", str(root), "--out", str(tmp_path / "tissue"), "--exclude", "BACK",
                     env_extra={"MAEKIT_PLUGINS": "maekit-pathology"})
    assert "stains of 1 tiles" in result.stdout and not (tmp_path / "tissue" / "BACK").exists()


def test_stain_cache_round_trip_through_the_command_and_its_errors(tmp_path):
    root = write_tiles(tmp_path / "NCT", classes=("ADI", "TUM"), per_class=2, size=16)
    cache = tmp_path / "stains"
    result = run_cli("pathology-stains", str(root), "--out", str(cache), "--method", "ruifrok",
                     env_extra={"MAEKIT_PLUGINS": "maekit-pathology"})
    assert "ruifrok stains of 4 tiles" in result.stdout
    assert (cache / "TUM" / "TUM-0001.npz").is_file()
    assert json.loads((cache / "stain_cache.json").read_text())["method"] == "ruifrok"
    cached = PathologyTiles(root, stains="cache", stain_cache=cache)
    computed = PathologyTiles(root, stains="ruifrok")
    for index in range(4):  # float16 storage
        torch.testing.assert_close(cached[index]["inputs"], computed[index]["inputs"], atol=2e-2, rtol=1e-3)
    (cache / "ADI" / "ADI-0000.npz").unlink()
    with pytest.raises(ValueError, match=r"ADI-0000.npz: no cached stains for .*ADI-0000.tif"):
        cached[0]
    np.savez(cache / "ADI" / "ADI-0000.npz", hematoxylin=np.zeros((8, 8)), eosin=np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"ADI-0000.npz: stain images are \(8, 8\), the tile .* is \(16, 16\)"):
        cached[0]
    with pytest.raises(ValueError, match="not a stain cache"):
        PathologyTiles(root, stains="cache", stain_cache=tmp_path)
    with pytest.raises(ValueError, match="go together"):
        PathologyTiles(root, stains="cache")


def test_aligned_crops_keep_modalities_in_register_and_unaligned_ones_do_not():
    image = torch.rand(3, 32, 32)
    stacked = torch.cat([image, image[:1], image[1:2]])  # H and E copies of two RGB channels
    torch.manual_seed(0)
    aligned = MultiModalAugment(size=16, scale=(0.2, 0.4), crop="aligned")(stacked)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    rgb = aligned[:3] * std.view(3, 1, 1) + mean.view(3, 1, 1)
    torch.testing.assert_close(rgb[0], aligned[3].clamp(0, 1), atol=1e-5, rtol=0)  # same crop, stains not normalised
    torch.manual_seed(0)
    unaligned = MultiModalAugment(size=16, scale=(0.2, 0.4), crop="unaligned")(stacked)
    rgb = unaligned[:3] * std.view(3, 1, 1) + mean.view(3, 1, 1)
    assert (rgb[0] - unaligned[3].clamp(0, 1)).abs().max() > 0.1
    with pytest.raises(ValueError, match="3 channels\\) or RGB \\+ H \\+ E \\(5\\)"):
        MultiModalAugment(size=16)(torch.rand(4, 32, 32))


def test_balanced_subsets_have_equal_classes_and_disjoint_folds():
    labels = np.repeat(np.arange(4), 50)
    subsets = [balanced_subset(labels, 20, fold, folds=5, seed=3) for fold in range(5)]
    for subset in subsets:
        assert np.bincount(labels[subset]).tolist() == [5, 5, 5, 5]
    assert len(np.unique(np.concatenate(subsets))) == 100  # no sample in two folds
    with pytest.raises(ValueError, match="cannot be split evenly over 4 classes"):
        balanced_subset(labels, 10)
    with pytest.raises(ValueError, match="class 0 has 10 samples in fold 0"):
        balanced_subset(labels, 80)
    with pytest.raises(ValueError, match="no label"):
        balanced_subset(np.array([0, 1, -1]), 2)


def test_label_subset_dataset_serves_the_chosen_samples(tmp_path):
    root = write_tiles(tmp_path / "NCT", classes=("ADI", "TUM"), per_class=10, size=8)
    subset = LabelSubset(dict(type="pathology_tiles", root=str(root)), num_labels=4, fold=1, folds=2)
    assert len(subset) == 4 and sorted(subset[i]["label"] for i in range(4)) == [0, 0, 1, 1]


def test_demo_tiles_hold_out_every_fifth_tile_per_source_interleaved():
    train, test = DemoTiles("train", tile=32), DemoTiles("test", tile=32)
    everything = DemoTiles("all", tile=32)
    assert len(train) + len(test) == len(everything)
    assert test.labels[:8].tolist() == list(range(8))  # one tile of every source first
    assert abs(len(test) / len(everything) - 0.2) < 0.01
    with_stains = DemoTiles("test", tile=32, stains="ruifrok")
    assert with_stains[0]["inputs"].shape == (5, 32, 32)
    torch.testing.assert_close(with_stains[0]["inputs"][:3], test[0]["inputs"])
