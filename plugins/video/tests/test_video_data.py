"""Video files in the formats users have, the datasets' list formats, clip sampling and transforms,
and the one-source-per-batch sampler — on small files written here in the real on-disk formats."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from maekit_video.data import (
    HMDB51,
    UCF101,
    ClipSampler,
    KineticsCSV,
    RawframeList,
    SomethingSomethingV2,
    VideoEvalTransform,
    VideoFolder,
    VideoList,
    VideoMAEAugment,
    VideoResizedCropAugment,
)
from maekit_video.io import DECODERS, probe_video, read_frames, write_video

from maekit.data.views import AugmentedView


def numbered_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frames whose brightness encodes their number (10·n), so a decoded frame says which it is."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for n in range(count):
        frames[n] = 10 * n
    return frames


def frame_numbers(frames: torch.Tensor) -> list[int]:
    return [int(round(float(f.float().mean()) / 10)) for f in frames]


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".gif"])
def test_every_container_reads_the_asked_frames_with_and_without_seeking(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", numbered_frames(24), fps=12)
    assert probe_video(path).num_frames == 24
    asked = [20, 3, 3, 11]
    assert frame_numbers(read_frames(path, asked)) == asked
    assert torch.equal(read_frames(path, asked, seek=True), read_frames(path, asked, seek=False))
    # the optional reader (the test extra installs it, .ci/setup FFmpeg's libraries): the same pixels
    assert torch.equal(read_frames(path, asked, decoder="torchcodec"), read_frames(path, asked, seek=False))
    for decoder in DECODERS:
        with pytest.raises(ValueError, match="fewer frames than needed"):
            read_frames(path, [30], decoder=decoder)


def test_broken_files_are_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    for name, message in (("empty.mp4", "empty file"), ("text.mp4", "not a readable video"), ("gone.mp4", "not found")):
        with pytest.raises(ValueError, match=message) as error:
            probe_video(tmp_path / name)
        assert name in str(error.value)
        with pytest.raises(ValueError, match=message) as error:
            read_frames(tmp_path / name, [0], decoder="torchcodec")
        assert name in str(error.value)
    with pytest.raises(ValueError, match="decoder must be one of pyav, torchcodec, got 'ffmpeg'"):
        read_frames(tmp_path / "text.mp4", [0], decoder="ffmpeg")


def write_list_dataset(root, count=4, frames=20):
    lines = []
    for n in range(count):
        path = write_video(root / "videos" / f"v{n}.mp4", numbered_frames(frames), fps=10)
        lines.append(f"videos/{path.name} {n % 2}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root / "train.csv"


def test_video_list_reads_clips_seeded_by_position_and_resume_reads_the_same(tmp_path):
    listing = write_list_dataset(tmp_path)
    dataset = VideoList(listing, root=tmp_path, clip=dict(sampling="consecutive", num_frames=4, stride=2))
    assert len(dataset) == 4 and dataset.classes == ["0", "1"] and dataset[1]["label"] == 1
    view = AugmentedView(dataset, seed=3)
    first = [frame_numbers(view[v]["inputs"]) for v in range(12)]
    assert first == [frame_numbers(AugmentedView(dataset, seed=3)[v]["inputs"]) for v in range(12)]
    assert all(numbers == list(range(numbers[0], numbers[0] + 8, 2)) for numbers in first)
    assert len({numbers[0] for numbers in first}) > 1  # each position its own start
    test = VideoList(listing, root=tmp_path, clip=dict(sampling="consecutive", num_frames=4, stride=2), train=False,
                     test_clips=3)
    assert test[0]["inputs"].shape == (3, 4, 32, 48, 3)
    assert [frame_numbers(clip)[0] for clip in test[0]["inputs"]] == [0, 6, 12]
    decoded = VideoList(listing, root=tmp_path, clip=dict(sampling="consecutive", num_frames=4, stride=2),
                        decoder="torchcodec")
    assert first == [frame_numbers(AugmentedView(decoded, seed=3)[v]["inputs"]) for v in range(12)]
    with pytest.raises(ValueError, match="decoder must be one of"):
        VideoList(listing, root=tmp_path, decoder="av")


def test_missing_short_and_broken_videos_raise_or_are_skipped_and_listed(tmp_path):
    listing = write_list_dataset(tmp_path)
    write_video(tmp_path / "videos" / "short.mp4", numbered_frames(3), fps=10)
    (tmp_path / "videos" / "broken.mp4").write_text("garbage")
    listing.write_text(listing.read_text() + "videos/short.mp4 0\nvideos/broken.mp4 1\nvideos/gone.mp4 1\n")
    clip = dict(sampling="consecutive", num_frames=4, stride=2)
    with pytest.raises(ValueError, match=r"lists .*gone.mp4, which does not exist"):
        VideoList(listing, root=tmp_path, clip=clip)
    listing.write_text(listing.read_text().replace("videos/gone.mp4 1\n", ""))
    strict = VideoList(listing, root=tmp_path, clip=clip)
    with pytest.raises(ValueError, match=r"short.mp4: has 3 frames; a clip of 4 frames at stride 2 needs 7"):
        strict[4]
    with pytest.raises(ValueError, match=r"broken.mp4: not a readable video"):
        strict[5]
    listing.write_text(listing.read_text() + "videos/gone.mp4 1\n")
    lenient = VideoList(listing, root=tmp_path, clip=clip, on_error="skip")
    assert lenient[4]["inputs"].shape == (4, 32, 48, 3) and lenient[5]["inputs"].shape == (4, 32, 48, 3)
    assert sorted(p.rsplit("/", 1)[-1] for p in lenient.skipped_files) == ["broken.mp4", "gone.mp4", "short.mp4"]
    (tmp_path / "bad.csv").write_text("videos/v0.mp4 zero\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 1: the label must be an integer, got 'zero'"):
        VideoList(tmp_path / "bad.csv", root=tmp_path)
    with pytest.raises(ValueError, match="clip sampling 'consecutive' takes num_frames, stride; got unknown \\['strides'\\]"):
        VideoList(listing, root=tmp_path, clip=dict(sampling="consecutive", num_frames=4, strides=2))


def test_rawframes_kinetics_ssv2_ucf101_hmdb51_and_folders_in_their_layouts(tmp_path):
    from PIL import Image

    for n in range(8):  # MMAction2 rawframes: img_00001.jpg ...
        (tmp_path / "frames" / "clip_a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(numbered_frames(8)[n]).save(tmp_path / "frames" / "clip_a" / f"img_{n + 1:05d}.jpg", quality=100)
    (tmp_path / "rawframes.txt").write_text("clip_a 8 3\n")
    raw = RawframeList(tmp_path / "rawframes.txt", root=tmp_path / "frames", clip=dict(sampling="segments", num_frames=4),
                       train=False)
    assert frame_numbers(raw[0]["inputs"]) == [1, 3, 5, 7] and raw[0]["label"] == 3

    kinetics = tmp_path / "k400"
    write_video(kinetics / "abseiling" / "abc_000010_000020.mp4", numbered_frames(12), fps=10)
    write_video(kinetics / "zumba_xyz_000001_000011.mp4", numbered_frames(12), fps=10)
    (kinetics / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,10,20,train\n"
                                        "zumba,zumba_xyz,1,11,train\n")
    dataset = KineticsCSV(kinetics / "train.csv", kinetics, clip=dict(sampling="consecutive", num_frames=4, stride=2))
    assert dataset.classes == ["abseiling", "zumba"] and [label for _, label in dataset.items] == [0, 1]

    ssv2 = tmp_path / "ssv2"
    write_video(ssv2 / "20bn-something-something-v2" / "17.webm", numbered_frames(12), fps=12)
    (ssv2 / "labels.json").write_text(json.dumps({"Holding something": "0", "Pushing something from left to right": "1"}))
    (ssv2 / "train.json").write_text(json.dumps([{"id": "17", "label": "pushing a cup from left to right",
                                                  "template": "Pushing [something] from left to right",
                                                  "placeholders": ["a cup"]}]))
    (ssv2 / "validation.json").write_text("[]")
    videos = SomethingSomethingV2(ssv2, "train", clip=dict(sampling="segments", num_frames=4))
    assert videos[0]["label"] == 1 and videos[0]["inputs"].shape == (4, 32, 48, 3)
    with pytest.raises(ValueError, match="validation.json: no video to read"):
        SomethingSomethingV2(ssv2, "validation")

    ucf = tmp_path / "UCF-101"
    write_video(ucf / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", numbered_frames(10), fps=10)
    write_video(ucf / "Archery" / "v_Archery_g01_c01.avi", numbered_frames(10), fps=10)
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (splits / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    (splits / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    assert UCF101(ucf, splits, 1, "test").items[0][1] == 1 and UCF101(ucf, splits, 1, "train").classes[0] == "ApplyEyeMakeup"

    hmdb = tmp_path / "hmdb51"
    write_video(hmdb / "brush_hair" / "a.avi", numbered_frames(10), fps=10)
    write_video(hmdb / "cartwheel" / "b.avi", numbered_frames(10), fps=10)
    (tmp_path / "hsplits").mkdir()
    (tmp_path / "hsplits" / "brush_hair_test_split1.txt").write_text("a.avi 1\n")
    (tmp_path / "hsplits" / "cartwheel_test_split1.txt").write_text("b.avi 2\n")
    assert [label for _, label in HMDB51(hmdb, tmp_path / "hsplits", 1, "test").items] == [1]

    folder = VideoFolder(hmdb, class_folders=True, clip=dict(sampling="consecutive", num_frames=4, stride=1))
    assert folder.classes == ["brush_hair", "cartwheel"] and len(folder) == 2


def test_transforms_crop_resize_normalise_and_repeat():
    frames = torch.from_numpy(numbered_frames(4, 40, 60))
    torch.manual_seed(0)
    clip = VideoMAEAugment(size=16)(frames)
    assert clip.shape == (3, 4, 16, 16)
    mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
    expected = (torch.tensor([10 * t / 255 for t in range(4)]).view(1, 4) - mean.view(3, 1)) / std.view(3, 1)
    torch.testing.assert_close(clip.mean(dim=(2, 3)), expected, rtol=1e-4, atol=1e-4)  # flat frames stay flat
    assert VideoResizedCropAugment(size=16, repeats=4)(frames).shape == (4, 3, 4, 16, 16)
    views = VideoEvalTransform(size=16, short_side=20, crops=3)(torch.stack([frames, frames]))
    assert views.shape == (6, 3, 4, 16, 16)




def test_demo_data_streams_from_webdataset_shards(tmp_path):
    # video clips (T×C×H×W frames) written by maekit shards' writer read back exactly, then 2 streamed iterations
    from maekit.authoring.testing import streams_from_shards

    checkpoint = streams_from_shards("videomae_demo_moving_digits", tmp_path)
    assert checkpoint["meta"]["iter"] == 2


def test_kinetics_style_mp4_shards_stream_into_clips_as_a_video_file_reads(tmp_path):
    # KEY.mp4 + KEY.cls in tar shards: each video kept as bytes, read into a clip by video_clip_bytes
    # under the sample's seed — the frames read_frames gives for the clip the sampler draws there
    import io
    import tarfile

    from maekit.data.shards import ShardDataset
    from maekit.data.streaming import StreamedView
    from maekit.registry import build

    rng = np.random.default_rng(0)
    videos = [write_video(tmp_path / f"v{n}.mp4", rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8), fps=10)
              for n in range(4)]
    (tmp_path / "k400").mkdir()
    for shard in range(2):
        with tarfile.open(tmp_path / "k400" / f"{shard:06d}.tar", "w") as archive:
            for n in (2 * shard, 2 * shard + 1):
                for name, data in ((f"{n:06d}.mp4", videos[n].read_bytes()), (f"{n:06d}.cls", str(n % 2).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    clip = dict(sampling="consecutive", num_frames=8, stride=1)
    dataset = dict(type="shards", shards=str(tmp_path / "k400"), fields={"mp4": "inputs"},
                   field_transforms={"inputs": {"type": "video_clip_bytes", "clip": clip}})
    shards = build("dataset", {**dataset, "shuffle": False})
    _, key, raw = next(shards.samples(0, finish=False))
    with torch.random.fork_rng():
        torch.manual_seed(3)
        frames = shards.finish(raw, key)["inputs"]
        torch.manual_seed(3)
        indices = ClipSampler(**clip).clips(probe_video(videos[0]), True, 1)[0]
    assert torch.equal(frames, read_frames(videos[0], indices)) and frames.shape == (8, 32, 32, 3)
    assert isinstance(shards, ShardDataset) and raw["label"] == 0
    # the stream: every video once per pass, through the training transform (training on a stream is
    # tested with the demo's clips written by maekit shards, test_demo_data_streams_from_webdataset_shards)
    view = StreamedView(dataset, transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875)), seed=0)
    items = [item for _, item in zip(range(4), iter(view))]
    assert all(item["inputs"].shape == (3, 8, 32, 32) for item in items)
    assert sorted(int(item["cursor"][2]) * 2 + int(item["cursor"][3]) for item in items) == [0, 1, 2, 3]
