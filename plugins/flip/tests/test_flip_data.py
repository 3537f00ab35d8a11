"""FLIP's loaders on small files written here in the exact on-disk formats."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maekit_flip.data import CocoCaptions, CsvCaptions, DigitsCaptions, WebDatasetCaptions, expand_shards
from maekit_flip.tokenizer import open_clip_tokenizer

TOKENIZER = open_clip_tokenizer()


def write_png(path: Path, value: int, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)
    return path


def png_bytes(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_tsv_and_csv_as_open_clip_writes_them(tmp_path):
    write_png(tmp_path / "images" / "a.png", 10)
    write_png(tmp_path / "images" / "b.png", 200)
    (tmp_path / "train.tsv").write_text("filepath\ttitle\nimages/a.png\ta red square\nimages/b.png\tA white one\n")
    data = CsvCaptions(tmp_path / "train.tsv")
    assert len(data) == 2 and data.captions == ["a red square", "A white one"]
    sample = data[1]
    assert sample["inputs"].shape == (3, 10, 12) and sample["inputs"].max().item() == pytest.approx(200 / 255)
    assert torch.equal(sample["text"], TOKENIZER(["A white one"])[0]) and sample["image_id"] == 1
    (tmp_path / "pairs.csv").write_text('path,caption\nimages/a.png,"a square, red"\nimages/a.png,second caption\n')
    data = CsvCaptions(tmp_path / "pairs.csv", img_key="path", caption_key="caption")
    assert data.captions == ["a square, red", "second caption"] and data[0]["image_id"] == data[1]["image_id"] == 0


def test_csv_errors_name_the_file_row_and_what_was_expected(tmp_path):
    write_png(tmp_path / "a.png", 10)
    (tmp_path / "bad.tsv").write_text("image\ttext\na.png\thello\n")
    with pytest.raises(ValueError, match=r"bad.tsv: no column\(s\) \['filepath', 'title'\]; the header has \['image', 'text'\]"):
        CsvCaptions(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("filepath\ttitle\na.png\thello\na.png\t  \n")
    with pytest.raises(ValueError, match=r"empty.tsv:3: empty caption"):
        CsvCaptions(tmp_path / "empty.tsv")
    skipping = CsvCaptions(tmp_path / "empty.tsv", on_error="skip")
    assert len(skipping) == 1 and skipping.skipped_captions == 1
    (tmp_path / "corrupt.png").write_bytes(b"not a png")
    (tmp_path / "corrupt.tsv").write_text("filepath\ttitle\ncorrupt.png\tbroken\na.png\tfine\n")
    with pytest.raises(ValueError, match=r"corrupt.png: cannot read image"):
        CsvCaptions(tmp_path / "corrupt.tsv")[0]
    skipping = CsvCaptions(tmp_path / "corrupt.tsv", on_error="skip")
    assert torch.equal(skipping[0]["text"], TOKENIZER(["fine"])[0]) and skipping.skipped_images == 1
    with pytest.raises(ValueError, match="does not exist"):
        CsvCaptions(tmp_path / "missing.tsv")


def test_coco_captions_json_gives_one_pair_per_caption_grouped_by_image(tmp_path):
    write_png(tmp_path / "val2017" / "000000000139.png", 30)
    write_png(tmp_path / "val2017" / "000000000285.png", 60)
    content = {"info": {}, "images": [{"id": 285, "file_name": "000000000285.png", "height": 10, "width": 12},
                                      {"id": 139, "file_name": "000000000139.png"}],
               "annotations": [{"id": 1, "image_id": 139, "caption": "A woman in a kitchen."},
                               {"id": 2, "image_id": 285, "caption": "A big bear."},
                               {"id": 3, "image_id": 139, "caption": "Someone cooking."}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(content))
    data = CocoCaptions(tmp_path / "annotations" / "captions_val2017.json", image_root=tmp_path / "val2017")
    assert data.captions == ["A woman in a kitchen.", "A big bear.", "Someone cooking."]
    assert [data[i]["image_id"] for i in range(3)] == [1, 0, 1]  # ids dense, in the order of 'images'
    assert data[2]["inputs"].max().item() == pytest.approx(30 / 255)
    content["annotations"].append({"image_id": 7, "caption": "orphan"})
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"bad.json:annotations\[3\]: image_id 7 is not in 'images'"):
        CocoCaptions(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="list.json: expected a COCO captions JSON object"):
        CocoCaptions(tmp_path / "list.json")


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for key, files in samples:
            for extension, data in files.items():
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_shards_pair_members_by_key_and_expand_brace_ranges(tmp_path):
    write_shard(tmp_path / "shard-000.tar", [("00000", {"png": png_bytes(40), "txt": b"a dark square", "json": b"{}"}),
                                             ("sub/00001", {"txt": b"a light one", "jpg": png_bytes(220)})])
    write_shard(tmp_path / "shard-001.tar", [("00002", {"png": png_bytes(120), "txt": "caf\u00e9".encode()})])
    assert expand_shards(str(tmp_path / "shard-{000..001}.tar")) == [tmp_path / "shard-000.tar", tmp_path / "shard-001.tar"]
    data = WebDatasetCaptions(str(tmp_path / "shard-{000..001}.tar"))
    assert data.captions == ["a dark square", "a light one", "café"]
    sample = data[1]
    assert sample["inputs"].shape == (3, 8, 8) and sample["inputs"].max().item() == pytest.approx(220 / 255)
    assert torch.equal(sample["text"], TOKENIZER(["a light one"])[0])
    assert len(WebDatasetCaptions(str(tmp_path / "shard-*.tar"))) == 3


def test_webdataset_incomplete_samples_and_corrupt_images_are_named(tmp_path):
    write_shard(tmp_path / "bad.tar", [("k0", {"png": png_bytes(1), "txt": b"ok"}), ("k1", {"png": png_bytes(2)}),
                                       ("k2", {"png": b"garbage", "txt": b"broken image"})])
    with pytest.raises(ValueError, match=r"bad.tar:k1 \(has image only\)"):
        WebDatasetCaptions(str(tmp_path / "bad.tar"))
    data = WebDatasetCaptions([str(tmp_path / "bad.tar")], on_error="skip")
    assert len(data) == 2 and data.skipped_captions == 1
    assert torch.equal(data[1]["text"], TOKENIZER(["ok"])[0]) and data.skipped_images == 1  # k2 replaced by k0
    write_shard(tmp_path / "corrupt.tar", [("k0", {"png": png_bytes(1), "txt": b"ok"}),
                                           ("k2", {"png": b"garbage", "txt": b"broken image"})])
    with pytest.raises(ValueError, match=r"corrupt.tar:k2.png: cannot read image"):
        WebDatasetCaptions(str(tmp_path / "corrupt.tar"))[1]
    (tmp_path / "notatar.tar").write_bytes(b"hello")
    with pytest.raises(ValueError, match="notatar.tar: not a readable tar shard"):
        WebDatasetCaptions(str(tmp_path / "notatar.tar"))
    with pytest.raises(ValueError, match="matched no file"):
        WebDatasetCaptions(str(tmp_path / "none-*.tar"))


def test_digit_captions_name_the_digit_with_the_templates():
    data = DigitsCaptions(split="test", size=16, channels=3, templates=("a photo of the number {}.", "the digit {}."))
    sample = data[3]
    expected = ("a photo of the number {}.", "the digit {}.")[3 % 2].format(data.classes[sample["label"]])
    assert data.caption(3) == expected and torch.equal(sample["text"], TOKENIZER([expected])[0])
    assert sample["inputs"].shape == (3, 16, 16) and data.classes[7] == "seven" and len(data) == 360


def test_demo_data_streams_from_webdataset_shards(tmp_path):
    # image–text pairs (image + caption token ids) written by maekit shards' writer read back exactly, then 2 streamed iterations
    from maekit.authoring.testing import streams_from_shards

    checkpoint = streams_from_shards("flip_demo_digits", tmp_path)
    assert checkpoint["meta"]["iter"] == 2


def test_laion_style_shards_stream_with_their_captions_tokenized(tmp_path):
    # img2dataset's layout (KEY.png + KEY.txt + KEY.json), one image broken: streamed by core's
    # shards dataset, captions tokenized by flip_tokenize, the broken sample skipped and counted
    from maekit.authoring.testing import run_cli  # noqa: F401  (the plugin is loaded by the fixtures)
    from maekit.data.shards import ShardDataset
    from maekit.engine import train

    folder = tmp_path / "laion"
    folder.mkdir()
    captions = [f"a photo of the number {n}" for n in range(8)]
    for shard in range(2):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as archive:
            for n in range(shard * 4, shard * 4 + 4):
                image = b"not a png" if n == 5 else png_bytes(30 * n)
                for name, data in ((f"{n:09d}.png", image), (f"{n:09d}.txt", captions[n].encode()),
                                   (f"{n:09d}.json", json.dumps({"key": n}).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    dataset = dict(type="shards", shards=str(folder), field_transforms={"text": {"type": "flip_tokenize"}},
                   on_error="skip", shuffle=False)
    shards = ShardDataset(**{k: v for k, v in dataset.items() if k != "type"})
    read = [sample for shard in range(2) for _, _, sample in shards.samples(shard)]
    assert len(read) == 7 and shards.skipped == 1
    expected = open_clip_tokenizer(77)([captions[0]])[0]
    assert torch.equal(read[0]["text"], expected) and read[0]["json"] == {"key": 0}
    train("flip_demo_digits", tmp_path / "work", device="cpu",
          overrides={"data.dataset": dict(_delete_=True, **dataset), "data.batch_size": 2, "data.num_workers": 0,
                     "schedule.max_iters": 2, "schedule.warmup_iters": 1, "checkpoint_interval": 2})
    assert (tmp_path / "work" / "iter_2.pth").is_file()
