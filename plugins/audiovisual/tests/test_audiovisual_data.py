"""Paired audio-visual files: one .mp4 holding both streams, parallel video and audio files, the
CSV and VGGSound layouts written exactly, the audio window around the clip, seeded reads, and the
errors (a file without sound, a missing audio file) naming the file or listed when skipped."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from maekit_audiovisual.data import AudioVisualCSV, AudioVisualFolder, VGGSoundAV, audio_window
from maekit_video.io import VideoInfo, write_video

FRONT_END = dict(type="audio_fbank", num_mel_bins=32, target_length=96, stats="speechcommands")
CLIP = dict(sampling="consecutive", num_frames=4, stride=1)


def frames(count: int = 16, level: int = 100) -> np.ndarray:
    video = np.full((count, 32, 32, 3), level, dtype=np.uint8)
    video[:, :8, :8] = 255
    return video


def tone(seconds: float, rate: int = 16000, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)[None]


def write_clip(path: Path, sound: bool = True, seconds: float = 2.0) -> Path:
    return write_video(path, frames(16), fps=8, audio=tone(seconds) if sound else None, sample_rate=16000)


def test_one_file_gives_both_streams_and_the_spectrogram_of_its_own_audio(tmp_path):
    write_clip(tmp_path / "a.mp4")
    (tmp_path / "list.csv").write_text("video,label\na.mp4,cat\n")
    data = AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP, train=False)
    sample = data[0]
    assert sample["inputs"].shape == (4, 32, 32, 3) and sample["inputs"].dtype == torch.uint8
    assert sample["audio"].shape == (1, 96, 32) and data.classes == ["cat"] and sample["label"] == 0
    # the spectrogram is the front end's of the track PyAV decodes from the file
    from maekit_audio.frontend import FbankFrontEnd, load_waveform

    expected = FbankFrontEnd(num_mel_bins=32, target_length=96, stats="speechcommands")(load_waveform(tmp_path / "a.mp4"))
    assert torch.allclose(sample["audio"], expected)


def test_parallel_audio_files_are_read_in_place_of_the_videos_own_track(tmp_path):
    write_clip(tmp_path / "v.mp4", sound=False)
    soundfile.write(tmp_path / "v.wav", tone(1.5, frequency=1000.0)[0], 16000)
    (tmp_path / "list.csv").write_text("video,audio,label\nv.mp4,v.wav,3\n")
    data = AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP, train=False)
    from maekit_audio.frontend import FbankFrontEnd, load_waveform

    expected = FbankFrontEnd(num_mel_bins=32, target_length=96, stats="speechcommands")(load_waveform(tmp_path / "v.wav"))
    assert torch.allclose(data[0]["audio"], expected) and data[0]["label"] == 3
    assert data.classes == ["0", "1", "2", "3"]


def test_the_audio_window_is_centred_on_the_clip_and_kept_inside_the_track():
    info = VideoInfo(num_frames=80, fps=8.0)
    assert audio_window(info, [[0, 1, 2, 3]], None, 16000, 160000) == (0, 160000)  # the whole track
    start, stop = audio_window(info, [list(range(40, 48))], 2.0, 16000, 160000)  # frames 40..47: 5 s to 6 s
    assert (start, stop) == (int(5.5 * 16000) - 16000, int(5.5 * 16000) + 16000)
    assert audio_window(info, [[0, 1]], 2.0, 16000, 160000) == (0, 32000)  # shifted to fit the start
    assert audio_window(info, [[78, 79]], 2.0, 16000, 160000) == (128000, 160000)
    assert audio_window(info, [[0, 1]], 20.0, 16000, 160000) == (0, 160000)  # shorter track: all of it


def test_a_window_of_audio_follows_the_sampled_clip(tmp_path):
    # a 4 s clip whose track is silent for 2 s, then a tone: the first frames go with silence, the
    # last ones with the tone
    track = np.concatenate([np.zeros((1, 32000), np.float32), tone(2.0)], axis=1)
    write_video(tmp_path / "a.mp4", frames(32), fps=8, audio=track, sample_rate=16000)
    (tmp_path / "list.csv").write_text("video\na.mp4\n")
    data = AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, audio_seconds=1.0, clip=CLIP, train=False)
    video, _ = data.items[0]
    info, _ = data.clip_frames(video)
    first = data.audio_of(video, info, [[0, 1, 2, 3]])  # 0–0.5 s: the window 0–1 s
    last = data.audio_of(video, info, [[28, 29, 30, 31]])  # 3.5–4 s: the window 3–4 s
    silence = data.audio_transform(torch.zeros(1, 16000))
    assert torch.allclose(first, silence, atol=1e-3)
    assert float((last - silence).amax()) > 1.0 and float((last - silence).mean()) > 0.2
    assert data[0]["label"] == -1


def test_training_reads_are_seeded_per_sample_position(tmp_path):
    from maekit.data.views import AugmentedView

    write_clip(tmp_path / "a.mp4")
    (tmp_path / "list.csv").write_text("video\na.mp4\n")
    dataset = dict(type="av_clips", csv_file=str(tmp_path / "list.csv"), clip=CLIP,
                   audio=dict(type="audio_mae_augment", gain=True, num_mel_bins=32, target_length=96, stats="speechcommands"))
    first, again, other = AugmentedView(dataset, seed=1)[0], AugmentedView(dataset, seed=1)[0], AugmentedView(dataset, seed=1)[1]
    assert torch.equal(first["audio"], again["audio"]) and torch.equal(first["inputs"], again["inputs"])
    assert not torch.equal(first["audio"], other["audio"])  # another position: another random gain


def test_a_video_without_sound_is_an_error_naming_it_or_skipped_and_listed(tmp_path):
    write_clip(tmp_path / "silent.mp4", sound=False)
    write_clip(tmp_path / "b.mp4")
    (tmp_path / "list.csv").write_text("video\nsilent.mp4\nb.mp4\n")
    with pytest.raises(ValueError, match=r"silent\.mp4.*no audio stream"):
        AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP)[0]
    data = AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP, on_error="skip")
    assert data[0]["audio"].shape == (1, 96, 32)  # the next readable clip in its place
    assert any("silent.mp4" in name for name in data.skipped_files)


def test_a_missing_audio_file_is_an_error_naming_it_or_left_out_and_listed(tmp_path):
    write_clip(tmp_path / "a.mp4")
    write_clip(tmp_path / "b.mp4")
    (tmp_path / "list.csv").write_text("video,audio\na.mp4,gone.wav\nb.mp4,\n")
    with pytest.raises(ValueError, match=r"gone\.wav, which does not exist"):
        AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP)
    data = AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP, on_error="skip")
    assert len(data) == 1 and str(tmp_path / "gone.wav") in data.skipped_files


def test_a_video_paired_with_two_audio_files_is_an_error(tmp_path):
    write_clip(tmp_path / "a.mp4")
    (tmp_path / "list.csv").write_text("video,audio\na.mp4,\na.mp4,a.mp4\n")
    with pytest.raises(ValueError, match=r"pairs .*a\.mp4 with two audio sources"):
        AudioVisualCSV(tmp_path / "list.csv", audio=FRONT_END, clip=CLIP)


def test_frozen_features_read_the_filterbank_without_training_augmentation():
    from maekit_audiovisual.evaluate import frozen_view

    spec = dict(type="av_clips", csv_file="x.csv", audio=dict(type="audio_mae_augment", gain=True, freqm=8,
                                                              num_mel_bins=32, target_length=96))
    view = frozen_view(spec)
    assert view["train"] is False and view["audio"] == dict(type="audio_fbank", num_mel_bins=32, target_length=96)
    with pytest.raises(ValueError, match="test_clips=3"):
        frozen_view(dict(spec, test_clips=3))


def test_csv_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.csv").write_text("path,label\na.mp4,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*'video' column"):
        AudioVisualCSV(tmp_path / "bad.csv")
    (tmp_path / "labels.csv").write_text("video,label\na.mp4,dog\n")
    with pytest.raises(ValueError, match=r"labels\.csv: line 2: label 'dog' is not among"):
        AudioVisualCSV(tmp_path / "labels.csv", classes=["cat"])
    with pytest.raises(ValueError, match="audio_seconds"):
        AudioVisualCSV(tmp_path / "labels.csv", audio_seconds=0)


def test_vggsound_layout_names_clips_by_id_and_start_and_numbers_classes_over_both_splits(tmp_path):
    write_clip(tmp_path / "video" / "---g-f_I2yQ_000001.mp4")
    write_clip(tmp_path / "video" / "abc_000030.mp4", sound=False)
    soundfile.write(tmp_path / "abc_000030.wav", tone(1.0)[0], 16000)
    (tmp_path / "vggsound.csv").write_text("---g-f_I2yQ,1,people marching,test\nabc,30,dog barking,train\n")
    train = VGGSoundAV(tmp_path / "vggsound.csv", tmp_path / "video", "train", audio_dir=tmp_path, audio=FRONT_END, clip=CLIP)
    test = VGGSoundAV(tmp_path / "vggsound.csv", tmp_path / "video", "test", audio=FRONT_END, clip=CLIP)
    assert train.classes == test.classes == ["dog barking", "people marching"]
    assert train[0]["label"] == 0 and test[0]["label"] == 1 and test[0]["audio"].shape == (1, 96, 32)
    (tmp_path / "broken.csv").write_text("abc,thirty,dog barking,train\n")
    with pytest.raises(ValueError, match=r"broken\.csv: row 1"):
        VGGSoundAV(tmp_path / "broken.csv", tmp_path / "video")


def test_a_folder_of_videos_with_class_folders(tmp_path):
    write_clip(tmp_path / "dogs" / "a.mp4")
    write_clip(tmp_path / "cats" / "b.mp4")
    data = AudioVisualFolder(tmp_path, class_folders=True, audio=FRONT_END, clip=CLIP)
    assert data.classes == ["cats", "dogs"] and sorted(int(data[i]["label"]) for i in range(2)) == [0, 1]
