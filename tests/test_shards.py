"""WebDataset shards: the writer, the reader on hand-made tars, the stream's split and cursor, and
a streamed pre-training killed mid-shard resuming to identical weights."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maekit.authoring.testing import run_cli, straight_and_resumed, train_processes
from maekit.configs import CONFIG_DIR
from maekit.data.images import ArrayDataset
from maekit.data.shards import ShardDataset, write_shards
from maekit.data.streaming import StreamedView
from maekit.io.checkpoint import load_state_dict


class Fields(torch.utils.data.Dataset):
    """Samples with every kind of field a dataset may return."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return {"inputs": torch.randn(2, 3, 4, generator=generator), "label": index % 3,
                "text": torch.arange(index, index + 5), "caption": f"sample {index} é", "meta": {"id": index, "ok": True},
                "score": 0.25 * index, "mask": np.arange(index % 4, dtype=np.uint8)}


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def png_bytes(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_written_shards_read_back_every_field_exactly(tmp_path):
    dataset = Fields(23)
    written = write_shards(dataset, tmp_path, shard_size=5)
    assert [path.name for path in written] == [f"shard-{i:06d}.tar" for i in range(5)]
    index = json.loads((tmp_path / "index.json").read_text())
    assert [entry["samples"] for entry in index["shards"]] == [5, 5, 5, 5, 3] and index["samples"] == 23
    shards = ShardDataset(str(tmp_path), shuffle=False)
    assert len(shards) == 23 and not list(tmp_path.glob(".*"))  # no temporaries left
    read = [(offset, key, sample) for shard in range(5) for offset, key, sample in shards.samples(shard)]
    assert [key for _, key, _ in read] == [f"{i:09d}" for i in range(23)]
    for index_, (_, _, sample) in enumerate(read):
        expected = dataset[index_]
        assert sample.keys() == expected.keys()
        assert torch.equal(sample["inputs"], expected["inputs"]) and torch.equal(sample["text"], expected["text"])
        assert np.array_equal(sample["mask"].numpy(), expected["mask"]) and sample["mask"].dtype == torch.uint8
        assert (sample["label"], sample["caption"], sample["meta"], sample["score"]) == (
            expected["label"], expected["caption"], expected["meta"], expected["score"])
    # a shard read from the middle (a resume) gives the same samples as reading it whole
    assert [key for _, key, _ in shards.samples(1, start=3)] == ["000000008", "000000009"]
    shuffled = ShardDataset(str(tmp_path))
    order = [key for _, key, _ in shuffled.samples(2, shuffle_seed=7)]
    assert sorted(order) == [f"{i:09d}" for i in range(10, 15)] and order != sorted(order)
    assert [key for _, key, _ in shuffled.samples(2, start=2, shuffle_seed=7)] == order[2:]


def test_writer_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="--shard-size must be at least 1, got 0"):
        write_shards(Fields(2), tmp_path, shard_size=0)

    class Bad(Fields):
        def __getitem__(self, index):
            return {"inputs": torch.zeros(1), "handle": object()}

    with pytest.raises(ValueError, match="sample 0: field 'handle' holds a object"):
        write_shards(Bad(1), tmp_path / "bad", shard_size=1)
    assert not (tmp_path / "bad" / "shard-000000.tar").exists()  # the failed shard left nothing


def test_webdataset_image_text_shards_as_img2dataset_writes_them(tmp_path):
    # LAION's layout: KEY.jpg/png + KEY.txt + KEY.json, keys in a folder, a stray non-sample member
    members = [("00000/000000001.png", png_bytes(255)), ("00000/000000001.txt", b"a white square"),
               ("00000/000000001.json", b'{"width": 5}'), ("00000/.hidden", b"x"),
               ("00000/000000002.png", png_bytes(0)), ("00000/000000002.txt", b"a black square"),
               ("00000/000000002.json", b'{"width": 5}')]
    shards = ShardDataset(str(write_tar(tmp_path / "laion-0000.tar", members)), shuffle=False)
    samples = [sample for _, _, sample in shards.samples(0)]
    assert [s["text"] for s in samples] == ["a white square", "a black square"]
    assert samples[0]["inputs"].shape == (3, 6, 5) and samples[0]["inputs"].min() == 1 and samples[1]["inputs"].max() == 0
    renamed = ShardDataset(str(tmp_path / "laion-0000.tar"), fields={"txt": "caption", "json": "info"}, channels=1)
    first = next(renamed.samples(0))[2]
    assert first["caption"] == "a white square" and first["info"] == {"width": 5} and first["inputs"].shape == (1, 6, 5)
    with pytest.raises(TypeError, match="read as a stream"):
        shards[0]


def test_unreadable_shards_are_named(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ValueError, match="junk.tar: not a readable tar shard"):
        list(ShardDataset(str(tmp_path / "junk.tar"), shuffle=False).samples(0))
    with pytest.raises(ValueError, match="matched no file"):
        ShardDataset(str(tmp_path / "none-*.tar"))
    write_tar(tmp_path / "text.tar", [("a.txt", b"only a caption")])
    with pytest.raises(ValueError, match=r"text.tar:a: the sample has no inputs"):
        list(ShardDataset(str(tmp_path / "text.tar"), shuffle=False).samples(0))
    write_tar(tmp_path / "odd.tar", [("a.xyz", b"?")])
    with pytest.raises(ValueError, match=r"odd.tar:a.xyz: no field for a .xyz member"):
        list(ShardDataset(str(tmp_path / "odd.tar"), shuffle=False).samples(0))
    # `tar cf x.tar *.png *.cls`: a sample's members apart; a field twice; a broken image
    write_tar(tmp_path / "apart.tar", [("a.png", png_bytes(1)), ("b.png", png_bytes(2)), ("a.cls", b"1")])
    for shuffle_seed in (None, 3):
        with pytest.raises(ValueError, match="members of sample a are not consecutive"):
            list(ShardDataset(str(tmp_path / "apart.tar")).samples(0, shuffle_seed=shuffle_seed))
    write_tar(tmp_path / "twice.tar", [("a.cls", b"1"), ("a.label.cls", b"2"), ("a.png", png_bytes(1))])
    with pytest.raises(ValueError, match="twice.tar:a.label.cls: a second member for field 'label' of sample a"):
        list(ShardDataset(str(tmp_path / "twice.tar"), shuffle=False).samples(0))
    write_tar(tmp_path / "broken.tar", [("a.png", b"\x89PNG not really"), ("b.npy", b"")])
    with pytest.raises(ValueError, match="broken.tar:a.png: cannot decode"):
        list(ShardDataset(str(tmp_path / "broken.tar"), shuffle=False).samples(0))
    skipping = ShardDataset(str(tmp_path / "broken.tar"), shuffle=False, on_error="skip")
    assert list(skipping.samples(0)) == [] and skipping.skipped == 2  # the empty .npy too, the stream goes on
    with pytest.raises(ValueError, match=r"field_transforms\['text'\]: expected a transform config"):
        ShardDataset(str(tmp_path / "broken.tar"), field_transforms={"text": "flip_tokenize"})

    def refuse(value):
        raise ValueError("not this one")

    write_tar(tmp_path / "meta.tar", [("a.png", png_bytes(1)), ("a.cls", b"1"), ("a.json", b'{"error": null}')])
    with pytest.raises(ValueError, match=r"meta.tar:a: field 'label': not this one"):
        list(ShardDataset(str(tmp_path / "meta.tar"), field_transforms={"label": refuse}, shuffle=False).samples(0))
    # a member mapped to None is left out (img2dataset's json, whose nulls collation refuses)
    kept = next(ShardDataset(str(tmp_path / "meta.tar"), fields={"json": None}, shuffle=False).samples(0))[2]
    assert sorted(kept) == ["inputs", "label"]
    # a gzipped shard streams front to back, but a shuffled order would decompress it once per seek
    with tarfile.open(tmp_path / "zipped.tar", "w:gz") as archive:
        info = tarfile.TarInfo("a.png")
        info.size = len(png_bytes(1))
        archive.addfile(info, io.BytesIO(png_bytes(1)))
    assert len(list(ShardDataset(str(tmp_path / "zipped.tar"), shuffle=False).samples(0))) == 1
    with pytest.raises(ValueError, match="zipped.tar: a compressed shard cannot be read in a shuffled order"):
        list(ShardDataset(str(tmp_path / "zipped.tar")).samples(0, shuffle_seed=1))
    # shards without a sample: the stream says so instead of looping forever
    (tmp_path / "empty").mkdir()
    write_tar(tmp_path / "empty" / "x.tar", [("notes", b"")])
    with pytest.raises(ValueError, match="x.tar: no samples in them"):
        next(iter(StreamedView(dict(type="shards", shards=str(tmp_path / "empty"), shuffle=False))))


def test_readers_split_every_pass_exactly_and_resume_at_their_cursor(tmp_path):
    write_shards(Fields(40), tmp_path, shard_size=5)  # 8 shards
    shards = dict(type="shards", shards=str(tmp_path))
    readers = [StreamedView(shards, seed=3, rank=rank, world_size=4) for rank in range(4)]
    first_pass = []
    for view in readers:
        stream = iter(view)
        first_pass += [next(stream) for _ in range(10)]  # 2 shards each
    assert sorted(int(item["inputs"].sum() * 1e4) for item in first_pass) == sorted(
        int(Fields(40)[i]["inputs"].sum() * 1e4) for i in range(40))
    assert len({int(item["index"]) for item in first_pass}) == 40
    # the cursor after the 7th item (mid-shard) restarts a fresh view at the 8th, same seeds
    view = StreamedView(shards, seed=3, rank=1, world_size=4)
    straight = [item for _, item in zip(range(14), iter(view))]
    reader, epoch, slot, offset = straight[6]["cursor"].tolist()
    resumed_view = StreamedView(shards, seed=3, rank=1, world_size=4)
    resumed_view.resume_from = {reader: (epoch, slot, offset + 1)}
    resumed = [item for _, item in zip(range(7), iter(resumed_view))]
    for a, b in zip(straight[7:], resumed):
        assert torch.equal(a["inputs"], b["inputs"]) and a["index"] == b["index"] and torch.equal(a["cursor"], b["cursor"])
    assert straight[10]["cursor"].tolist()[1] == 1  # the second pass began, in another shard order
    with pytest.raises(ValueError, match="8 shard\\(s\\) for 16 readers"):
        StreamedView(shards, rank=0, world_size=16).check_readers(1)


STREAMED = """
_base_ = [{base!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
             decoder_num_heads=2, img_size=16)
data = dict(dataset=dict(_delete_=True, type="shards", shards={shards!r}), transform=dict(size=16),
            batch_size=4, num_workers=2)
schedule = dict(max_iters=6, warmup_iters=2)
checkpoint_interval = 3
log_interval = 1
"""


def test_streamed_pretraining_killed_mid_shard_resumes_to_identical_weights(tmp_path):
    images = np.random.default_rng(0).random((70, 16, 16), dtype=np.float32)
    write_shards(ArrayDataset(images), tmp_path / "shards", shard_size=10)  # 7 shards
    config = tmp_path / "streamed.py"
    config.write_text(STREAMED.format(base=str(CONFIG_DIR / "mae_demo_digits.py"), shards=str(tmp_path / "shards")))
    # interrupted after iteration 3: loader worker 0 has served batches 1 and 3 (8 of its first
    # shard's 10 samples), worker 1 batch 2; the resumed loader's worker 0 serves reader 1 first
    straight, resumed = straight_and_resumed(config, tmp_path, iters=6, interrupt_at=3)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    saved = torch.load(tmp_path / "resumed" / "iter_3.pth", weights_only=True)
    cursor = saved["message_hub"]["runtime_info"]["stream_cursor"]
    assert cursor["layout"] == [1, 2, 7, 0, 1] and cursor["cursors"] == [[0, 0, 0, 8], [1, 0, 0, 4]]
    # the same run resumed with another worker count is refused: its cursors are per reader
    from maekit.engine import train

    with pytest.raises(ValueError, match=r"1 process\(es\) × 2 loader worker\(s\) over 7 shards with seed 0 and "
                                         r"shuffle=1, this run has 1 × 1"):
        train(config, tmp_path / "resumed", device="cpu", resume=str(tmp_path / "resumed" / "iter_3.pth"),
              overrides={"data.num_workers": 1, "schedule.max_iters": 9})


def test_shards_command_writes_a_config_dataset_and_refuses_a_used_folder(tmp_path):
    out = tmp_path / "digits"
    result = run_cli("shards", "mae_demo_digits", "--out", str(out), "--shard-size", "600", "--dataset-key", "probe.test")
    assert "wrote 360 samples into 1 shards" in result.stdout
    first = next(ShardDataset(str(out), shuffle=False).samples(0))[2]
    from maekit.data.bundled import DigitsDataset

    assert torch.equal(first["inputs"], DigitsDataset(split="test", size=32, channels=1)[0]["inputs"])
    again = run_cli("shards", "mae_demo_digits", "--out", str(out), check=False)
    assert again.returncode == 1 and f"Error: --out {out}: already holds shards" in again.stderr
    wrong = run_cli("shards", "mae_demo_digits", "--out", str(tmp_path / "x"), "--dataset-key", "data.nope", check=False)
    assert wrong.returncode == 1 and "Error: --dataset-key data.nope: config mae_demo_digits has no 'nope' there" in wrong.stderr


def test_streamed_two_process_run_killed_mid_shard_resumes_to_identical_weights(tmp_path):
    images = np.random.default_rng(1).random((70, 16, 16), dtype=np.float32)
    write_shards(ArrayDataset(images), tmp_path / "shards", shard_size=10)  # 7 shards, readers 0 and 1
    text = STREAMED.format(base=str(CONFIG_DIR / "mae_demo_digits.py"), shards=str(tmp_path / "shards"))
    text = text.replace("num_workers=2", "num_workers=0")
    (tmp_path / "straight.py").write_text(text)
    # the crash: a hook this config imports stops both processes right after iteration 3's checkpoint
    (tmp_path / "killed.py").write_text(text + 'custom_imports = dict(imports=["maekit.authoring.interrupt"])\n'
                                               'custom_hooks = [dict(type="MaekitTestInterrupt", iteration=3)]\n')
    train_processes(tmp_path / "straight.py", tmp_path / "straight", processes=2)
    killed = train_processes(tmp_path / "killed.py", tmp_path / "resumed", processes=2, check=False)
    assert killed[0][0] != 0 and "interrupted after iteration 3" in killed[0][1]
    assert (tmp_path / "resumed" / "iter_3.pth").is_file() and not (tmp_path / "resumed" / "iter_6.pth").exists()
    cursor = torch.load(tmp_path / "resumed" / "iter_3.pth", weights_only=True)["message_hub"]["runtime_info"]["stream_cursor"]
    # each rank's reader is 12 samples into its stream (its first shard of 10, then 2): both ranks' cursors
    assert cursor["layout"] == [2, 1, 7, 0, 1] and cursor["cursors"] == [[0, 0, 1, 2], [1, 0, 1, 2]]
    train_processes(tmp_path / "straight.py", tmp_path / "resumed", processes=2, resume=True)
    # the checkpoint written after the resume holds every rank's advanced cursor, as the straight run's
    cursors = [torch.load(tmp_path / run / "iter_6.pth", weights_only=True)["message_hub"]["runtime_info"]["stream_cursor"]
               for run in ("straight", "resumed")]
    assert cursors[0] == cursors[1] and cursors[0]["cursors"] == [[0, 0, 2, 4], [1, 0, 2, 4]]
    straight, resumed = (load_state_dict(tmp_path / run / "iter_6.pth") for run in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_an_error_raised_in_a_loader_worker_reaches_the_user_as_its_own_line():
    from maekit.cli.support import user_message

    error = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                       "last):\n  File \"x.py\", line 1, in <module>\nValueError: shard.tar:a.png: cannot decode (boom)\n")
    assert user_message(error) == "shard.tar:a.png: cannot decode (boom) (maekit --debug ... shows the traceback)"
