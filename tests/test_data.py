import numpy as np
import pytest
import torch
from PIL import Image

from maekit.data.bundled import DigitsDataset, ImageTilesDataset
from maekit.data.images import ArrayDataset, ImageFolderDataset, read_image
from maekit.data.views import AugmentedView, EvalTransform, MAEAugment


@pytest.fixture
def image_tree(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "BACK").mkdir()
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "cats" / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "cats" / "rgba.png")
    Image.fromarray(np.full((10, 12), 65535, dtype=np.uint16)).save(tmp_path / "dogs" / "sixteen.png")
    Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(tmp_path / "dogs" / "gray.jpg")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "BACK" / "b.png")
    return tmp_path


def test_image_folder_labels_modes_and_channel_rule(image_tree):
    dataset = ImageFolderDataset(image_tree, exclude=["BACK"])
    assert dataset.classes == ["cats", "dogs"] and len(dataset) == 4
    labels = [dataset[i]["label"] for i in range(4)]
    assert labels == [0, 0, 1, 1]
    for i in range(4):
        image = dataset[i]["inputs"]
        assert image.shape == (3, 10, 12) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    sixteen = read_image(image_tree / "dogs" / "sixteen.png")
    assert torch.allclose(sixteen, torch.ones_like(sixteen))  # 65535 → 1.0, not clipped 8-bit
    rgba = np.asarray(Image.open(image_tree / "cats" / "rgba.png"))[..., :3] / 255.0
    assert torch.allclose(read_image(image_tree / "cats" / "rgba.png").permute(1, 2, 0), torch.from_numpy(rgba).float())
    assert read_image(image_tree / "cats" / "rgb.png", channels=1).shape == (1, 10, 12)
    only_dogs = ImageFolderDataset(image_tree, classes=["dogs"])
    assert len(only_dogs) == 2 and only_dogs[0]["label"] == 0


def test_corrupt_files_raise_with_their_name_or_are_skipped_and_counted(image_tree):
    (image_tree / "cats" / "zz_broken.png").write_bytes(b"not an image at all")
    strict = ImageFolderDataset(image_tree, exclude=["BACK"])
    broken = [i for i, (path, _) in enumerate(strict.samples) if path.name == "zz_broken.png"][0]
    with pytest.raises(ValueError, match="zz_broken.png: cannot read image"):
        strict[broken]
    lenient = ImageFolderDataset(image_tree, exclude=["BACK"], on_error="skip")
    assert lenient[broken]["inputs"].shape == (3, 10, 12) and lenient.skipped == 1


def test_folder_errors_are_clear(tmp_path, image_tree):
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"class folders \['birds'\] not found"):
        ImageFolderDataset(image_tree, classes=["birds"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ImageFolderDataset(tmp_path / "empty")


def test_flat_folder_is_unlabelled(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    assert ImageFolderDataset(tmp_path)[0]["label"] == -1


def test_array_dataset_layouts():
    hwc = np.random.default_rng(0).integers(0, 256, (5, 8, 6, 3), dtype=np.uint8)
    dataset = ArrayDataset(hwc, labels=[0, 1, 2, 3, 4])
    assert dataset[2]["inputs"].shape == (3, 8, 6) and dataset[2]["label"] == 2
    assert torch.allclose(dataset[1]["inputs"], torch.from_numpy(hwc[1]).permute(2, 0, 1).float() / 255)
    assert ArrayDataset(np.zeros((2, 7, 7), np.float32))[0]["inputs"].shape == (1, 7, 7)
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        ArrayDataset(np.zeros((2, 7, 7)), labels=[1, 2, 3])


def test_bundled_digits_and_tiles():
    train, test = DigitsDataset("train"), DigitsDataset("test", size=16, channels=3)
    assert len(train) == 1437 and len(test) == 360
    assert test[0]["inputs"].shape == (3, 16, 16)
    assert sorted({int(l) for l in train.labels}) == list(range(10))
    tiles = ImageTilesDataset(sources=("astronaut", "camera"), tile=128)
    assert len(tiles) == 32 and tiles[0]["inputs"].shape == (3, 128, 128) and tiles[31]["label"] == 1


def test_augmented_view_is_seeded_per_virtual_index():
    base = ArrayDataset(np.random.default_rng(0).random((4, 3, 40, 40)).astype(np.float32))
    view = AugmentedView(base, MAEAugment(size=32), seed=7)
    first, again, next_pass = view[1], view[1], view[1 + 4]
    assert first["inputs"].shape == (3, 32, 32) and first["index"] == 1
    assert torch.equal(first["inputs"], again["inputs"])
    assert not torch.equal(first["inputs"], next_pass["inputs"])  # same sample, new pass, new crop
    state = torch.get_rng_state()
    view[2]
    assert torch.equal(state, torch.get_rng_state())  # the global random state is untouched


def test_eval_transform_normalises_with_the_stated_statistics():
    image = torch.full((3, 8, 8), 0.5)
    out = EvalTransform(8)(image)
    assert torch.allclose(out[0], torch.full((8, 8), (0.5 - 0.485) / 0.229))
    assert EvalTransform(16, mean=(0.5,), std=(0.5,))(torch.zeros(1, 8, 8)).shape == (1, 16, 16)


def test_array_dtype_rule_and_16_bit_big_endian(tmp_path):
    assert torch.allclose(ArrayDataset(np.full((1, 2, 2), 65535, np.uint16))[0]["inputs"], torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="dtype torch.int64 are ambiguous"):
        ArrayDataset(np.full((1, 2, 2), 200, np.int64))
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        ArrayDataset(np.full((1, 2, 2), 200.0, np.float32))
    path = tmp_path / "big.tif"
    Image.frombytes("I;16B", (3, 3), np.full((3, 3), 65535, dtype=">u2").tobytes()).save(path)
    assert torch.allclose(read_image(path, channels=1), torch.ones(1, 3, 3))


def test_exclude_must_name_existing_folders(image_tree):
    with pytest.raises(ValueError, match="exclude must be a list"):
        ImageFolderDataset(image_tree, exclude="BACK")
    with pytest.raises(ValueError, match=r"excluded classes \['BAKC'\] not found"):
        ImageFolderDataset(image_tree, exclude=["BAKC"])


def test_probe_features_of_differently_sized_images(tmp_path):
    from maekit.eval.probe import extract_features
    from tests.conftest import tiny_mae

    for i, size in enumerate([(40, 50), (64, 32)]):
        (tmp_path / f"c{i}").mkdir()
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(tmp_path / f"c{i}" / "a.png")
    features, labels = extract_features(tiny_mae(), ImageFolderDataset(tmp_path), EvalTransform(32))
    assert features.shape == (2, 64) and labels.tolist() == [0, 1]


def test_views_carry_extra_sample_fields_into_the_batch():
    class Captioned(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> dict:
            return {"inputs": torch.rand(3, 40, 40), "label": index, "text": torch.tensor([index, 7])}

    augmented = AugmentedView(Captioned(), MAEAugment(size=32), seed=0)[3]
    assert augmented["index"] == 3 and augmented["label"] == 1 and torch.equal(augmented["text"], torch.tensor([1, 7]))
    assert augmented["inputs"].shape == (3, 32, 32)
    from maekit.data.views import TransformedView

    evaluated = TransformedView(Captioned(), EvalTransform(32))[0]
    assert torch.equal(evaluated["text"], torch.tensor([0, 7])) and evaluated["inputs"].shape == (3, 32, 32)


def test_skipping_counts_each_unreadable_file_once_and_logs_it(image_tree, caplog):
    for name in ("zz_broken.png", "zz_empty.png"):
        (image_tree / "cats" / name).write_bytes(b"" if "empty" in name else b"not an image")
    lenient = ImageFolderDataset(image_tree, exclude=["BACK"], on_error="skip")
    first = [i for i, (path, _) in enumerate(lenient.samples) if path.name == "zz_broken.png"][0]
    with caplog.at_level("WARNING", logger="maekit"):
        for _ in range(3):  # the same bad files met again and again
            lenient[first]
            lenient[first + 1]
    assert lenient.skipped == 2 and sorted(p.name for p in lenient.skipped_files) == ["zz_broken.png", "zz_empty.png"]
    logged = [r.getMessage() for r in caplog.records if "skipped an unreadable image" in r.getMessage()]
    assert len(logged) == 2 and any("zz_empty.png" in line for line in logged)


def test_balanced_sampler_draws_by_the_datasets_weights_each_draw_its_own_virtual_index():
    import itertools

    from mmengine.registry import DATA_SAMPLERS

    import maekit.engine.sampler  # noqa: F401  (registers the samplers)
    from maekit.engine.train import _samplers

    class Weighted(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return {"inputs": torch.zeros(1), "label": index}

        def sample_weights(self):
            return torch.tensor([0.0, 1.0, 1.0, 2.0])

    view = AugmentedView(Weighted())
    sampler = DATA_SAMPLERS.build(dict(_samplers("balanced", 3)["sampler"], dataset=view))
    virtual = list(itertools.islice(iter(sampler), 4000))
    counts = np.bincount([v % 4 for v in virtual], minlength=4)
    assert counts[0] == 0 and abs(counts[3] / counts[1] - 2) < 0.3 and abs(counts[1] / counts[2] - 1) < 0.2
    assert len(set(virtual)) == len(virtual)  # repeats of a sample get their own augmentation seed
    again = DATA_SAMPLERS.build(dict(_samplers("balanced", 3)["sampler"], dataset=view))
    assert list(itertools.islice(iter(again), 4000)) == virtual  # seeded: resume sees the same draws
    with pytest.raises(ValueError, match="needs a dataset with sample_weights"):
        DATA_SAMPLERS.build(dict(_samplers("balanced", 0)["sampler"], dataset=AugmentedView([{"inputs": 0}])))
    with pytest.raises(ValueError, match="data.sampler must be one of shuffle, balanced"):
        _samplers("weighted", 0)


def test_resize_center_crop_is_imagenets_test_view():
    from maekit.data.views import ResizeCenterCrop

    torch.manual_seed(0)
    square = torch.rand(3, 256, 256)
    view = ResizeCenterCrop(size=224, resize=256, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert torch.allclose(view(square), square[:, 16:240, 16:240])  # already at 256: only the centre crop
    wide = ResizeCenterCrop(size=224, resize=256)(torch.rand(3, 300, 400))
    assert wide.shape == (3, 224, 224)
    with pytest.raises(ValueError, match="resize \\(200\\) must be at least the crop size \\(224\\)"):
        ResizeCenterCrop(size=224, resize=200)
