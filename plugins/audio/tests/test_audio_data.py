"""The datasets on small files written in each release's exact layout, their error and skip
policies, the label-balancing weights, and the training transform (gain, SpecAugment)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile
import torch
from maekit_audio.data import ESC50, AudioFolder, AudioMAEAugment, AudioSetJSON, AudioSetSegments, SpeechCommands, VGGSound

from maekit.registry import build

RATE = 16000


def write_clip(path, seconds: float = 0.3, rate: int = RATE, frequency: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def test_esc50_reads_its_csv_and_folds(tmp_path):
    rows = [("1-100-A-0.wav", 1, 0, "dog", "True"), ("1-101-A-1.wav", 1, 1, "rooster", "False"),
            ("2-102-A-0.wav", 2, 0, "dog", "True"), ("5-103-A-41.wav", 5, 41, "chainsaw", "True")]
    (tmp_path / "meta").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    lines += [f"{name},{fold},{target},{category},{esc10},100032,A" for name, fold, target, category, esc10 in rows]
    (tmp_path / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    for name, *_ in rows:
        write_clip(tmp_path / "audio" / name, rate=44100)  # ESC-50 ships 44.1 kHz
    train, test = ESC50(tmp_path, folds=(1, 2)), ESC50(tmp_path, folds=(5,))
    assert len(train) == 3 and len(test) == 1 and train.classes == ["dog", "rooster", "chainsaw"]
    assert [label for _, label in train.items] == [0, 1, 0] and test[0]["label"] == 2  # targets 0, 1, 41 renumbered
    assert test[0]["inputs"].shape == (1, int(0.3 * RATE))  # resampled from 44.1 kHz
    assert ESC50(tmp_path, folds=(1, 2, 5), esc10=True).classes == ["dog", "chainsaw"]
    with pytest.raises(ValueError, match="no rows in folds \\[3\\]"):
        ESC50(tmp_path, folds=(3,))
    with pytest.raises(ValueError, match="esc50 folds must be a list of fold numbers"):
        ESC50(tmp_path, folds=5)
    (tmp_path / "audio" / "1-101-A-1.wav").unlink()
    with pytest.raises(ValueError, match="1-101-A-1.wav, which does not exist"):
        ESC50(tmp_path, folds=(1,))
    skipping = ESC50(tmp_path, folds=(1,), on_error="skip")
    assert len(skipping) == 1 and list(skipping.skipped_files.values()) == ["file not found"]


def test_speech_commands_splits_by_its_lists(tmp_path):
    for word in ("yes", "no"):
        for speaker in ("aaa", "bbb", "ccc"):
            write_clip(tmp_path / word / f"{speaker}_nohash_0.wav")
    write_clip(tmp_path / "_background_noise_" / "white_noise.wav")
    (tmp_path / "validation_list.txt").write_text("yes/bbb_nohash_0.wav\nno/bbb_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/ccc_nohash_0.wav\n")
    train = SpeechCommands(tmp_path, "train")
    assert train.classes == ["no", "yes"] and len(train) == 3  # aaa ×2 and no/ccc
    assert {path.name for path, _ in train.items} == {"aaa_nohash_0.wav", "ccc_nohash_0.wav"}
    test = SpeechCommands(tmp_path, "test")
    assert len(test) == 1 and test[0]["label"] == 1
    assert len(SpeechCommands(tmp_path, "validation", words=["yes"])) == 1
    with pytest.raises(ValueError, match="word folders \\['maybe'\\] not found"):
        SpeechCommands(tmp_path, words=["yes", "maybe"])
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(ValueError, match="testing_list.txt: not found"):
        SpeechCommands(tmp_path)


def write_class_labels(path) -> None:
    path.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n'
                    '2,/m/0ytgt,"Child speech, kid speaking"\n')


def test_audioset_segments_are_multi_label_with_comment_lines_and_quoted_labels(tmp_path):
    write_class_labels(tmp_path / "class_labels_indices.csv")
    (tmp_path / "balanced_train_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=2, num_segs=2, num_unique_labels=3\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/0ytgt"\n'
        '--ZhevVpy1s, 50.000, 60.000, "/m/05zppz"\n')
    write_clip(tmp_path / "audio" / "--PJHxphWEs.flac")
    write_clip(tmp_path / "audio" / "--ZhevVpy1s.wav")
    dataset = AudioSetSegments(tmp_path / "balanced_train_segments.csv", tmp_path / "class_labels_indices.csv",
                               tmp_path / "audio")
    assert dataset.classes == ["/m/09x0r", "/m/05zppz", "/m/0ytgt"]
    assert torch.equal(dataset[0]["label"], torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(dataset[1]["label"], torch.tensor([0.0, 1.0, 0.0]))
    write_clip(tmp_path / "audio" / "Y--PJHxphWEs_30.000.wav")  # another common naming: Y + id + start
    named = AudioSetSegments(tmp_path / "balanced_train_segments.csv", tmp_path / "class_labels_indices.csv",
                             tmp_path / "audio", filename="Y{ytid}_{start}", on_error="skip")
    assert len(named) == 1 and named.items[0][0].name == "Y--PJHxphWEs_30.000.wav"
    assert [path.name for path in named.skipped_files] == ["Y--ZhevVpy1s_50.000.wav"]
    (tmp_path / "bad_segments.csv").write_text('--PJHxphWEs, 30.000, 40.000, "/m/unknown"\n')
    with pytest.raises(ValueError, match="label '/m/unknown' is not in the class list"):
        AudioSetSegments(tmp_path / "bad_segments.csv", tmp_path / "class_labels_indices.csv", tmp_path / "audio")
    # AST's label-balancing weights: a class weighs 1000 / (count + 0.01); a clip the sum over its labels
    weights = dataset.sample_weights()
    assert torch.allclose(weights, torch.tensor([2 * 1000 / 1.01, 1000 / 1.01], dtype=torch.float64))


def test_audioset_json_datafile_reads_relative_paths(tmp_path):
    write_class_labels(tmp_path / "class_labels_indices.csv")
    write_clip(tmp_path / "clips" / "a.wav")
    (tmp_path / "train.json").write_text(json.dumps({"data": [{"wav": "clips/a.wav", "labels": "/m/05zppz"}]}))
    dataset = AudioSetJSON(tmp_path / "train.json", tmp_path / "class_labels_indices.csv")
    assert len(dataset) == 1 and torch.equal(dataset[0]["label"], torch.tensor([0.0, 1.0, 0.0]))
    (tmp_path / "broken.json").write_text(json.dumps({"items": []}))
    with pytest.raises(ValueError, match="broken.json: expected"):
        AudioSetJSON(tmp_path / "broken.json", tmp_path / "class_labels_indices.csv")


def test_vggsound_csv_without_header_names_files_by_id_and_start(tmp_path):
    (tmp_path / "vggsound.csv").write_text("---g-f_I2yQ,1,people marching,test\n--0PQM4-hqg,30,waterfall burbling,train\n"
                                           "--56QUhyDQM,185,playing tennis,train\n")
    for name in ("---g-f_I2yQ_000001", "--0PQM4-hqg_000030", "--56QUhyDQM_000185"):
        write_clip(tmp_path / "video" / f"{name}.wav")
    train = VGGSound(tmp_path / "vggsound.csv", tmp_path / "video", "train")
    test = VGGSound(tmp_path / "vggsound.csv", tmp_path / "video", "test")
    assert train.classes == test.classes == ["people marching", "playing tennis", "waterfall burbling"]
    assert [label for _, label in train.items] == [2, 1] and test[0]["label"] == 0
    (tmp_path / "bad.csv").write_text("---g-f_I2yQ,1,people marching,validation\n")
    with pytest.raises(ValueError, match="bad.csv: row 1 must be youtube_id,start_second,label,train\\|test"):
        VGGSound(tmp_path / "bad.csv", tmp_path / "video")


def test_audio_folder_for_pretraining_and_class_folders_and_unreadable_files(tmp_path):
    write_clip(tmp_path / "dogs" / "a.wav")
    write_clip(tmp_path / "cats" / "b.flac")
    (tmp_path / "cats" / "broken.wav").write_bytes(b"not audio at all")
    (tmp_path / "notes.txt").write_text("ignored")
    flat = AudioFolder(tmp_path)
    assert len(flat) == 3 and flat[0]["label"] == -1
    labelled = AudioFolder(tmp_path, class_folders=True, on_error="skip")
    assert labelled.classes == ["cats", "dogs"]
    served = [labelled[i] for i in range(len(labelled))]  # the broken file is replaced by the next readable one
    assert [sample["label"] for sample in served] == [0, 1, 1]
    assert list(labelled.skipped_files) == [tmp_path / "cats" / "broken.wav"]
    with pytest.raises(ValueError, match="broken.wav: unreadable audio"):
        AudioFolder(tmp_path)[1]
    with pytest.raises(ValueError, match="no audio files"):
        AudioFolder(tmp_path / "dogs", extensions=(".mp3",))
    with pytest.raises(ValueError, match="on_error must be"):
        AudioFolder(tmp_path, on_error="ignore")


def test_training_view_applies_a_seeded_gain_and_specaugment_filled_before_normalising():
    torch.manual_seed(0)
    t = torch.arange(RATE) / RATE
    waveform = (0.3 * torch.sin(2 * math.pi * (200 + 3000 * t) * t)).reshape(1, -1)
    augment = AudioMAEAugment(gain=False, freqm=20, timem=30, stats="audioset", target_length=128, num_mel_bins=64)
    fill = augment.normalise(torch.tensor(0.0))
    widths = []
    for seed in range(6):
        torch.manual_seed(seed)
        view = augment(waveform)[0]
        assert view.shape == (128, 64)
        bands = (view == fill).all(dim=0).nonzero().flatten()  # frequency bands masked in every frame
        frames = (view[:98] == fill).all(dim=1).nonzero().flatten()  # frames masked (98 hold speech; then padding)
        for masked, limit in ((bands, 20), (frames, 30)):
            assert len(masked) < limit and (len(masked) == 0 or int(masked.max() - masked.min()) + 1 == len(masked))
        widths.append((len(bands), len(frames)))
        torch.manual_seed(seed)
        assert torch.equal(augment(waveform), view[None])  # the same seed, the same view
    assert max(w for w, _ in widths) > 0 and max(w for _, w in widths) > 0
    plain = AudioMAEAugment(gain=False, stats="audioset", target_length=128, num_mel_bins=64)
    gained = AudioMAEAugment(gain=True, stats="audioset", target_length=128, num_mel_bins=64)
    torch.manual_seed(5)
    factor = float(torch.distributions.Beta(10.0, 10.0).sample() + 0.5)
    torch.manual_seed(5)
    before, after = plain.denormalise(plain(waveform)), gained.denormalise(gained(waveform))  # log-mel units
    before, after = before[..., :98, :], after[..., :98, :]  # 98 frames of 1 s; zero padding after them
    live = before > math.log(torch.finfo(torch.float32).eps) + 3  # clear of the log floor
    assert 0.5 <= factor <= 1.5 and live.float().mean() > 0.3
    assert torch.allclose((after - before)[live], torch.tensor(2 * math.log(factor)), atol=5e-3)


def test_registered_transforms_and_datasets_build_from_config(tmp_path):
    write_clip(tmp_path / "a.wav", seconds=2.0)
    dataset = build("dataset", dict(type="audio_folder", root=str(tmp_path)))
    transform = build("transform", dict(type="audio_fbank", stats="esc50", target_length=512, num_mel_bins=128))
    assert transform(dataset[0]["inputs"]).shape == (1, 512, 128)
    with pytest.raises(ValueError, match="freqm and timem must be >= 0"):
        build("transform", dict(type="audio_mae_augment", freqm=-1))


def test_demo_data_streams_from_webdataset_shards(tmp_path):
    # waveforms (the fbank transform runs in the stream) written by maekit shards' writer read back exactly, then 2 streamed iterations
    from maekit.authoring.testing import streams_from_shards

    checkpoint = streams_from_shards("audio_mae_demo", tmp_path)
    assert checkpoint["meta"]["iter"] == 2


def test_audioset_style_flac_shards_stream_as_an_audio_file_reads(tmp_path):
    # KEY.flac + KEY.cls in tar shards (44.1 kHz stereo): each kept as bytes and read by audio_bytes
    # exactly as load_waveform reads the file (first channel, resampled to 16 kHz)
    import io
    import tarfile

    from maekit_audio.frontend import load_waveform

    from maekit.data.streaming import StreamedView
    from maekit.registry import build

    rng = np.random.default_rng(0)
    files = []
    for n in range(4):
        files.append(tmp_path / f"clip{n}.flac")
        soundfile.write(files[-1], rng.uniform(-0.5, 0.5, (44100, 2)), 44100)
    (tmp_path / "audioset").mkdir()
    for shard in range(2):
        with tarfile.open(tmp_path / "audioset" / f"{shard:06d}.tar", "w") as archive:
            for n in (2 * shard, 2 * shard + 1):
                for name, data in ((f"{n:06d}.flac", files[n].read_bytes()), (f"{n:06d}.cls", str(n).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    dataset = dict(type="shards", shards=str(tmp_path / "audioset"), fields={"flac": "inputs"},
                   field_transforms={"inputs": {"type": "audio_bytes"}})
    first = next(build("dataset", {**dataset, "shuffle": False}).samples(0))[2]
    assert torch.equal(first["inputs"], load_waveform(files[0])) and first["inputs"].shape == (1, 16000)
    view = StreamedView(dataset, transform=dict(type="audio_mae_augment", target_length=128, num_mel_bins=64), seed=0)
    items = [item for _, item in zip(range(4), iter(view))]
    assert sorted(int(item["label"]) for item in items) == [0, 1, 2, 3]
    assert all(item["inputs"].shape[-2:] == (128, 64) for item in items)
