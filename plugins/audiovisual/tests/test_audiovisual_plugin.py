"""maekit-audiovisual as a plugin: what it registers, that it stands alone with core (and the
maekit-video and maekit-audio it declares), its configs, both methods (MAViL's two stages) training
from one command on a CSV of real .mp4 files with sound, exact resume, ``maekit av-eval`` and a
short demo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import maekit_audiovisual
import numpy as np
import pytest
import torch
from maekit_audiovisual import plugin

from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli, straight_and_resumed

CONFIGS = ("av_mae_demo_talking_digits", "mavil_demo_talking_digits", "mavil_stage2_demo_talking_digits",
           "av_mae_vit_base_audioset_csv", "mavil_vit_base_vggsound")
TINY = {"model.encoder": dict(embed_dim=32, depth=2, num_heads=2), "model.decoder": dict(embed_dim=16, depth=1, num_heads=2)}
# the speakers maekit-audio's own demo test synthesises (shared cache; both splits have voices)
SPEAKERS = dict(accents=("en-us", "en-gb-scotland"), variants=("", "+f3"), speeds=(165,), pitches=(35, 70))


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-audiovisual,maekit-video,maekit-audio"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-audiovisual", maekit_audiovisual.__version__, plugin,
                                   ("av_", "mavil", "audiovisual"), commands=("av-eval",))


def test_listed_alone_with_core_with_its_version_configs_demos_and_command():
    check_listed_alone("maekit-audiovisual", maekit_audiovisual.__version__, plugin, configs=CONFIGS,
                       demo="audiovisual\tmaekit_audiovisual.demo:run_audiovisual_demo", commands=("av-eval",))


def test_paper_configs_are_the_references_settings():
    from maekit.engine import load_config
    from maekit.registry import build

    cfg = load_config("av_mae_vit_base_audioset_csv")
    model = build("model", cfg.model)
    assert {m: masker.mask_ratio for m, masker in model.maskers.items()} == {"audio": 0.7, "video": 0.9}
    assert len(model.encoder.joint_blocks) == 2 and len(model.encoder.blocks["video"]) == 10
    assert model.decoder.strategy == "shared" and model.decoder.embed_dim == 384 and len(model.decoder.blocks["shared"]) == 4
    assert model.loss.weights["audio"] == model.loss.weights["video"] == 0.5 and model.targets["audio"] == "pixels"
    assert cfg.schedule.betas == (0.9, 0.95) and cfg.schedule.weight_decay == 0.05 and cfg.schedule.blr == 3e-4
    tokens = model.patchifiers["audio"]({"audio": torch.zeros(1, 1, 992, 128)})
    assert tokens.meta["grid_size"] == (62, 8)  # the reference's 496 spectrogram tokens
    mavil_cfg = load_config("mavil_vit_base_vggsound")
    assert mavil_cfg.model.mask_ratio == 0.8 and mavil_cfg.model.views == 2 and mavil_cfg.data.dataset.type == "av_vggsound"


def write_clips(root: Path, count: int = 6) -> Path:
    """Real .mp4 clips with an AAC track (a digit-like square whose side and tone pitch go with the
    label) and a CSV naming them, as a user has."""
    from maekit_video.io import write_video

    rows = ["video,label"]
    rng = np.random.default_rng(0)
    for n in range(count):
        label = n % 2
        frames = rng.integers(0, 60, (16, 32, 32, 3), dtype=np.uint8)
        frames[:, 8:24, 8 + 8 * label:16 + 8 * label] = 255
        t = np.arange(32000) / 16000
        sound = (0.3 * np.sin(2 * np.pi * (300 + 500 * label) * t)).astype(np.float32)[None]
        write_video(root / "clips" / f"clip{n}.mp4", frames, fps=8, audio=sound, sample_rate=16000)
        rows.append(f"clips/clip{n}.mp4,{'low high'.split()[label]}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv"


def dataset_of(csv: Path) -> dict:
    return dict(type="av_clips", csv_file=str(csv), clip=dict(sampling="consecutive", num_frames=8, stride=2),
                audio=dict(type="audio_fbank", num_mel_bins=64, target_length=96, stats="speechcommands"))


def tiny_config(csv: Path, config: str, iters: int) -> dict:
    from maekit.engine import load_config

    cfg = load_config(config)
    dataset = dataset_of(csv)
    cfg.merge_from_dict({**TINY, "data.dataset": dict(dataset, _delete_=True), "data.batch_size": 3, "data.num_workers": 0,
                         "schedule.max_iters": iters, "schedule.warmup_iters": 0, "checkpoint_interval": 2,
                         "log_interval": 1, "av_eval.train": dict(dataset, _delete_=True),
                         "av_eval.test": dict(dataset, _delete_=True), "av_eval.knn_k": 2,
                         "av_eval.finetune": dict(iters=0, batch_size=3, num_classes=2, _delete_=True)})
    return cfg


def cli_options(csv: Path) -> list[str]:
    dataset = dataset_of(csv)
    # _delete_: the user's dataset replaces the demo's (which has keys of its own), not merged into it
    return [f"data.dataset={dict(dataset, _delete_=True)!r}", "data.batch_size=3", "data.num_workers=0",
            f"model.encoder={TINY['model.encoder']!r}", f"model.decoder={TINY['model.decoder']!r}", "schedule.max_iters=2",
            "schedule.warmup_iters=0", "checkpoint_interval=2", "log_interval=1"]


def test_mavils_two_stages_train_from_one_command_each_on_files_with_sound(tmp_path):
    from maekit.io.checkpoint import load_state_dict
    from maekit.io.convert import strip_runner_prefix

    csv = write_clips(tmp_path)
    options = cli_options(csv)
    maekit("train", "mavil_demo_talking_digits", "--work-dir", str(tmp_path / "stage1"), "--cfg-options", *options)
    stage1 = tmp_path / "stage1" / "iter_2.pth"
    teacher_model = f"model.teacher.model={{'type': 'mavil', 'size': None, 'encoder': {TINY['model.encoder']!r}, " \
                    f"'decoder': {TINY['model.decoder']!r}, 'num_frames': 8, 'img_size': 32, 'patch_size': 4, " \
                    f"'audio_patch_size': 8, 'audio_frames': 96, 'num_mel_bins': 64, 'mask_ratio': 0.75}}"
    maekit("train", "mavil_stage2_demo_talking_digits", "--work-dir", str(tmp_path / "stage2"), "--cfg-options",
           *options, f"model.teacher.checkpoint={stage1}", teacher_model)
    first = strip_runner_prefix(load_state_dict(stage1))
    second = strip_runner_prefix(load_state_dict(tmp_path / "stage2" / "iter_2.pth"))
    # stage 2 carries its frozen teacher: the stage-1 weights, unchanged by its two steps
    assert all(torch.equal(second[f"teacher.module.{k}"], v) for k, v in first.items())
    assert not torch.equal(second["encoder.embed.audio.proj.weight"], first["encoder.embed.audio.proj.weight"])
    for work in ("stage1", "stage2"):
        state = load_state_dict(tmp_path / work / "iter_2.pth")
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    failed = maekit("train", "mavil_stage2_demo_talking_digits", "--work-dir", str(tmp_path / "no_teacher"),
                    "--cfg-options", *options, check=False)
    assert failed.returncode != 0 and "Error: MAViL stage 2 needs its stage-1 weights: set model.teacher.checkpoint" \
        in failed.stderr and "Traceback" not in failed.stderr


def test_resumed_training_equals_straight_training(tmp_path):
    csv = write_clips(tmp_path)
    straight, resumed = straight_and_resumed(tiny_config(csv, "mavil_demo_talking_digits", 4), tmp_path, iters=4,
                                             interrupt_at=2)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_av_mae_trains_from_one_command_and_av_eval_reports_probes_retrieval_and_fine_tuning(tmp_path):
    from maekit_audiovisual.evaluate import av_features, retrieval_report

    from maekit.eval.probe import load_trained_model
    from maekit.registry import build

    csv = write_clips(tmp_path)
    cfg = tiny_config(csv, "av_mae_demo_talking_digits", 2)
    cfg_file = tmp_path / "config.py"
    cfg.dump(str(cfg_file))
    maekit("train", "av_mae_demo_talking_digits", "--work-dir", str(tmp_path / "run"), "--cfg-options", *cli_options(csv))
    checkpoint = tmp_path / "run" / "iter_2.pth"
    out = tmp_path / "metrics.json"
    maekit("av-eval", str(cfg_file), "--checkpoint", str(checkpoint), "--finetune-iters", "2", "--out", str(out))
    metrics = json.loads(out.read_text())
    for kind in ("joint", "audio", "video"):
        assert 0 <= metrics[f"probe/{kind}"] <= 100 and 0 <= metrics[f"finetune/{kind}"] <= 100
    assert metrics["retrieval/clips"] == 6 and metrics["finetune_iters"] == 2
    # the command's retrieval is the trained model's, from the features of each modality alone
    model = load_trained_model(cfg.model, checkpoint)
    features, labels = av_features(model, build("dataset", dict(cfg.av_eval.test, train=False)),
                                   build("transform", cfg.eval_transform), retrieval=True)
    assert features["joint"].shape == (6, 64) and labels.tolist() == [1, 0, 1, 0, 1, 0]  # classes sorted: high, low
    assert np.allclose(features["retrieval_audio"], features["audio"], atol=1e-5)  # AV-MAE: the pooled tokens
    direct = retrieval_report({m: features[f"retrieval_{m}"] for m in ("audio", "video")})
    for key in ("audio_to_video_R@1", "audio_to_video_MnR", "video_to_audio_R@5"):
        assert metrics[f"retrieval/{key}"] == pytest.approx(direct[f"retrieval/{key}"])
    from maekit.eval.probe import linear_probe

    assert metrics["probe/audio"] == pytest.approx(100 * linear_probe(features["audio"], labels, features["audio"], labels))
    # core's single-stream commands refuse the model with one line naming the command to use
    probe = dict(train=dataset_of(csv), test=dataset_of(csv))
    failed = maekit("probe", str(cfg_file), "--checkpoint", str(checkpoint), "--cfg-options", f"probe={probe!r}", check=False)
    assert "Error:" in failed.stderr and "maekit av-eval" in failed.stderr and "Traceback" not in failed.stderr


def test_av_eval_names_a_missing_clip_and_an_unknown_key(tmp_path):
    # apart from the training test above so that the two spread over the suite's two workers
    csv = write_clips(tmp_path)
    cfg_file = tmp_path / "config.py"
    tiny_config(csv, "av_mae_demo_talking_digits", 2).dump(str(cfg_file))
    (tmp_path / "bad.csv").write_text("video,label\nclips/clip0.mp4,low\nclips/nope.mp4,high\n")
    failed = maekit("av-eval", str(cfg_file), "--cfg-options",
                    f"av_eval.test={{'_delete_': True, 'type': 'av_clips', 'csv_file': '{tmp_path / 'bad.csv'}'}}", check=False)
    assert failed.returncode != 0 and "Error:" in failed.stderr and "nope.mp4" in failed.stderr
    assert "Traceback" not in failed.stderr
    failed = maekit("av-eval", str(cfg_file), "--cfg-options", "av_eval.finetune={'iter': 3}", check=False)
    assert "Error: av_eval.finetune: unknown keys ['iter']" in failed.stderr


def test_short_demo_runs_and_compares_with_random_init(tmp_path):
    from maekit_audiovisual.demo import run_audiovisual_demo

    small = dict(type="av_demo_talking_digits", count=40, speakers=SPEAKERS)
    overrides = {**TINY, "data.dataset": dict(small, split="train"), "av_eval.train": dict(small, split="train"),
                 "av_eval.test": dict(small, split="test"), "av_eval.knn_k": 3, "data.batch_size": 8,
                 "data.num_workers": 0, "av_eval.finetune.iters": 2, "av_eval.finetune.batch_size": 4}
    metrics = run_audiovisual_demo(tmp_path, max_iters=3, overrides=overrides, log=lambda *_: None)
    for name in ("pretrained", "random_init"):
        for kind in ("joint", "audio", "video"):
            assert 0 <= metrics[f"probe/{kind}_{name}"] <= 100
        assert metrics[f"retrieval/clips_{name}"] == 10 and 0 <= metrics[f"finetune/joint_{name}"] <= 100
    assert (tmp_path / "metrics.json").is_file() and Path(metrics["picture"]).is_file()
    assert metrics["config"] == "mavil_demo_talking_digits"  # the headline demo is MAViL's stage 1


def test_talking_digits_are_one_second_mp4s_with_the_word_in_their_track():
    import av
    from maekit_audiovisual.demo_data import TalkingDigits

    clips = TalkingDigits("test", count=40, speakers=SPEAKERS)
    path = str(clips.items[0][0])
    with av.open(path) as container:
        frames = [frame.to_ndarray() for frame in container.decode(video=0)]
    with av.open(path) as container:
        sound = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    # 16 frames at 16 fps and a second of 16 kHz sound (the AAC encoder pads its last frame)
    assert len(frames) == 16 and 16000 <= len(sound) <= 16000 + 2048
    assert np.abs(sound).max() > 0.05  # the word is in the track, not silence
    sample = clips[0]
    assert tuple(sample["audio"].shape) == (1, 96, 64) and tuple(sample["inputs"].shape) == (8, 32, 32, 3)


def test_step_benchmark_runs_every_contender_and_writes_its_figures(tmp_path):
    # the step part only (--decode 0): the decoding figure reads the full demo's clips
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "audiovisual_step.py"
    out = tmp_path / "step.json"
    result = subprocess.run([sys.executable, str(script), "--quick", "--repeats", "1", "--decode", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["size"] == "demo" and figures["batch"] == 32 and figures["av_mae_mid_time_vs_mid"] == 1.0
    for name in ("av_mae_mid", "av_mae_early", "av_mae_late", "mavil"):
        assert figures[f"{name}_clips_per_s"] > 0 and name in result.stdout
    assert "decode_clips_per_s_one_process" not in figures
