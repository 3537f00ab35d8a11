"""The caption datasets on files written here in each format's exact layout, with real mp4 clips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from maekit_video.io import write_video
from maekit_videotext.data import MSRVTT, VideoCaptions, WebVidCSV

CLIP = dict(sampling="consecutive", num_frames=4, stride=1)


def clip_file(path: Path, shade: int = 0) -> Path:
    frames = np.full((6, 16, 16, 3), 40 * shade % 255, dtype=np.uint8)
    return write_video(path, frames, fps=8)


def test_caption_csv_groups_captions_per_video_and_draws_one_per_read(tmp_path):
    clip_file(tmp_path / "clips" / "a.mp4")
    clip_file(tmp_path / "clips" / "b.mp4", 1)
    (tmp_path / "captions.csv").write_text('video,caption\nclips/a.mp4,a cat runs\nclips/b.mp4,"a dog, sleeping"\n'
                                           "clips/a.mp4,the cat is running\n")
    data = VideoCaptions(tmp_path / "captions.csv", clip=CLIP)
    assert data.captions == [["a cat runs", "the cat is running"], ["a dog, sleeping"]] and data.num_captions == 3
    sample = data[0]
    assert sample["inputs"].shape == (4, 16, 16, 3) and sample["label"] == 0
    drawn = set()
    for seed in range(20):
        torch.manual_seed(seed)
        drawn.add(data[0]["caption"])
    assert drawn == {"a cat runs", "the cat is running"}  # training draws among a video's captions
    evaluation = VideoCaptions(tmp_path / "captions.csv", clip=CLIP, train=False)
    assert {evaluation[0]["caption"] for _ in range(5)} == {"a cat runs"}


def test_jsonl_simvtp_json_and_named_columns(tmp_path):
    clip_file(tmp_path / "x.mp4")
    clip_file(tmp_path / "y.mp4", 2)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"path": "x.mp4", "text": ["one", "two"]}) + "\n\n"
                                          + json.dumps({"path": "y.mp4", "text": "three"}) + "\n")
    assert VideoCaptions(tmp_path / "pairs.jsonl", clip=CLIP).captions == [["one", "two"], ["three"]]
    # SimVTP's own annotation: {"/path/clip.mp4": "caption"} with absolute paths
    (tmp_path / "simvtp.json").write_text(json.dumps({str(tmp_path / "x.mp4"): "a clip", str(tmp_path / "y.mp4"): "another"}))
    data = VideoCaptions(tmp_path / "simvtp.json", root="/", clip=CLIP)
    assert data.captions == [["a clip"], ["another"]] and data.source_name(1) == str(tmp_path / "y.mp4")
    (tmp_path / "odd.csv").write_text("clip_file,description\nx.mp4,four\n")
    assert VideoCaptions(tmp_path / "odd.csv", path_column="clip_file", caption_column="description", clip=CLIP).captions == [["four"]]


def test_caption_file_errors_name_the_file_and_row(tmp_path):
    clip_file(tmp_path / "x.mp4")
    (tmp_path / "no_caption.csv").write_text("video,label\nx.mp4,3\n")
    with pytest.raises(ValueError, match=r"no_caption.csv: no caption column; expected one of caption, text"):
        VideoCaptions(tmp_path / "no_caption.csv", clip=CLIP)
    (tmp_path / "empty.csv").write_text("video,caption\nx.mp4,ok\nx.mp4,  \n")
    with pytest.raises(ValueError, match=r"empty.csv, row 3: expected a non-empty caption"):
        VideoCaptions(tmp_path / "empty.csv", clip=CLIP)
    (tmp_path / "missing.csv").write_text("video,caption\nx.mp4,ok\ngone.mp4,lost\n")
    with pytest.raises(ValueError, match="gone.mp4"):
        VideoCaptions(tmp_path / "missing.csv", clip=CLIP)
    skipping = VideoCaptions(tmp_path / "missing.csv", clip=CLIP, on_error="skip")
    assert skipping.captions == [["ok"]] and list(skipping.skipped_files) == [str(tmp_path / "gone.mp4")]
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        VideoCaptions(tmp_path / "broken.json", clip=CLIP)
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl or \.json"):
        VideoCaptions(tmp_path / "x.mp4", clip=CLIP)


def test_webvid_results_csv_finds_clips_under_page_dir(tmp_path):
    clip_file(tmp_path / "videos" / "007001_007050" / "1066692580.mp4")
    clip_file(tmp_path / "videos" / "052701_052750" / "1054863104.mp4", 3)
    (tmp_path / "results_2M_val.csv").write_text(
        "videoid,contentUrl,duration,page_dir,name\n"
        "1066692580,https://ak.picdn.net/shutterstock/videos/1066692580/preview/stock-footage-x.mp4,PT00H00M10S,"
        "007001_007050,\"Aerial view, city at night.\"\n"
        "1054863104,https://ak.picdn.net/shutterstock/videos/1054863104/preview/stock-footage-y.mp4,PT00H00M22S,"
        "052701_052750,Young woman smiling\n")
    data = WebVidCSV(tmp_path / "results_2M_val.csv", video_dir=tmp_path / "videos", clip=CLIP)
    assert data.captions == [["Aerial view, city at night."], ["Young woman smiling"]]
    assert data.source_name(0).endswith("007001_007050/1066692580.mp4") and data[1]["inputs"].shape[0] == 4
    (tmp_path / "bad.csv").write_text("videoid,name\n1,x\n")
    with pytest.raises(ValueError, match="bad.csv: not a WebVid results CSV: no column page_dir"):
        WebVidCSV(tmp_path / "bad.csv", video_dir=tmp_path)


def write_msrvtt(root: Path) -> None:
    for n in range(4):
        clip_file(root / "videos" / f"video{n}.mp4", n)
    sentences = [{"caption": f"clip {n} caption {k}", "video_id": f"video{n}", "sen_id": 10 * n + k}
                 for n in range(4) for k in range(3)]
    (root / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": [{"video_id": f"video{n}"} for n in range(4)],
                                                       "sentences": sentences}))
    (root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\nvideo1\nvideo2\n")
    (root / "MSRVTT_JSFUSION_test.csv").write_text(",key,vid_key,video_id,sentence\n"
                                                   "0,ret0,msr7579,video3,a man talks about a car\n")


def test_msrvtt_splits_in_clip4clips_layout(tmp_path):
    write_msrvtt(tmp_path)
    train = MSRVTT(tmp_path, split="train_9k", clip=CLIP)
    assert len(train) == 3 and train.captions[1] == ["clip 1 caption 0", "clip 1 caption 1", "clip 1 caption 2"]
    assert train.train
    test = MSRVTT(tmp_path, split="test_1k_a", clip=CLIP)
    assert test.captions == [["a man talks about a car"]] and test.source_name(0).endswith("video3.mp4") and not test.train
    assert len(MSRVTT(tmp_path, split="all", clip=CLIP)) == 4
    (tmp_path / "MSRVTT_train.9k.csv").write_text("video_id\nvideo9\n")
    with pytest.raises(ValueError, match="video video9 has no caption"):
        MSRVTT(tmp_path, split="train_9k", clip=CLIP)
    with pytest.raises(ValueError, match="split must be one of"):
        MSRVTT(tmp_path, split="val")
