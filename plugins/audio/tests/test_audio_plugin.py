"""maekit-audio as a plugin: what it registers, that it stands alone with core, its configs, the
commands a user runs on an ESC-50-style folder (pre-train, fine-tune, frozen evaluation, convert)
and the demo."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import maekit_audio
import numpy as np
import soundfile
import torch
from maekit_audio import plugin

from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build

CONFIGS = Path(maekit_audio.__file__).parent / "configs"


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-audio"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-audio", maekit_audio.__version__, plugin,
                                   ("audio", "esc50", "speech_commands", "vggsound"),
                                   commands=("audio-eval", "audio-convert"))


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-audio", maekit_audio.__version__, plugin,
                       configs=("audio_mae_audioset2m", "audio_mae_esc50", "audio_mae_demo"),
                       demo="audio\taudio_mae_demo", commands=("audio-eval", "audio-convert"))


def test_paper_config_has_the_references_sizes_and_recipe():
    from maekit.engine import load_config

    cfg = load_config("audio_mae_audioset2m")
    model = build("model", {**cfg.model, "size": None, "encoder_name": "vit_base_patch16_224",
                            "encoder": dict(depth=1), "decoder_depth": 2})  # the paper's widths, fewer blocks
    tokens = model.tokenize(torch.zeros(1, 1, 1024, 128))
    assert tokens.num_tokens == 512 and tokens.meta["grid_size"] == (64, 8) and tokens.values.shape[-1] == 256
    assert model.make_mask(tokens).num_visible == 102 and model.encoder.embed_dim == 768
    assert model.decoder.embed.out_features == 512 and model.decoder.blocks[1].attn.num_heads == 16
    assert cfg.model.decoder_depth == 16 and cfg.model.mask_ratio == 0.8 and cfg.model.decoder_mode == "local"
    assert (cfg.schedule.blr, cfg.schedule.weight_decay, cfg.schedule.betas) == (2e-4, 1e-4, (0.9, 0.95))
    assert cfg.data.batch_size * 8 == 512 and cfg.schedule.max_iters == 32 * 3906 and cfg.schedule.warmup_iters == 3 * 3906
    assert cfg.data.transform == dict(type="audio_mae_augment", gain=True, stats="audioset", target_length=1024,
                                      num_mel_bins=128)
    tuning = cfg.finetune
    assert tuning.num_classes == 527 and tuning.classifier_options.multi_label and tuning.data.sampler == "balanced"
    assert (tuning.data.transform.freqm, tuning.data.transform.timem, tuning.schedule.layer_decay) == (48, 192, 0.75)
    esc50 = load_config("audio_mae_esc50")
    assert esc50.model.target_length == 512 and esc50.eval_transform.stats == "esc50" and esc50.finetune.num_classes == 50


def write_esc50(root: Path, per_class: int = 4) -> None:
    """A small ESC-50 in its release layout: two classes (tones low and high), folds 1 and 5."""
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for target, (category, frequency) in enumerate((("low", 300.0), ("high", 2500.0))):
        for i in range(per_class):
            fold = 5 if i == 0 else 1
            name = f"{fold}-{100 + i}-A-{target}.wav"
            t = np.arange(int(0.6 * 44100)) / 44100
            wave = 0.3 * np.sin(2 * np.pi * frequency * (1 + 0.05 * i) * t)
            (root / "audio").mkdir(parents=True, exist_ok=True)
            soundfile.write(root / "audio" / name, wave.astype(np.float32), 44100)
            lines.append(f"{name},{fold},{target},{category},False,100{i},A")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


def write_user_config(tmp_path: Path) -> Path:
    """What the README tells a user to write: pre-train on their folder, ESC-50 for evaluation."""
    esc50 = tmp_path / "ESC-50"
    write_esc50(esc50)
    config = tmp_path / "my_audio.py"
    train, test = dict(type="esc50", root=str(esc50), folds=(1,)), dict(type="esc50", root=str(esc50), folds=(5,))
    config.write_text(f"""_base_ = [{str(CONFIGS / 'audio_mae_demo.py')!r}]
_front_end = dict(stats="esc50", target_length=64, num_mel_bins=32)
model = dict(target_length=64, num_mel_bins=32, encoder=dict(embed_dim=32, depth=1, num_heads=2),
             decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=2)
data = dict(dataset=dict(_delete_=True, type="audio_folder", root={str(esc50 / 'audio')!r}),
            transform=dict(_front_end), batch_size=4)
eval_transform = dict(_front_end)
schedule = dict(max_iters=2, warmup_iters=0)
checkpoint_interval = 2
probe = dict(_delete_=True, train={train!r}, test={test!r}, pools=("mean",))
frozen_eval = dict(_delete_=True, train={train!r}, test={test!r}, k=3)
finetune = dict(num_classes=2, data=dict(dataset=dict(_delete_=True, **{train!r}), transform=dict(_front_end, freqm=4, timem=8),
                                          batch_size=4),
                test=dict(_delete_=True, **{test!r}), eval_transform=dict(_front_end),
                schedule=dict(max_iters=2, warmup_iters=0))
""")
    return config


def test_a_user_pretrains_finetunes_and_evaluates_on_an_esc50_folder_one_command_each(tmp_path):
    config = write_user_config(tmp_path)
    maekit("train", str(config), "--work-dir", str(tmp_path / "pretrain"), "--device", "cpu")
    checkpoint = tmp_path / "pretrain" / "iter_2.pth"
    assert checkpoint.is_file()
    printed = maekit("audio-eval", str(config), "--checkpoint", str(checkpoint), "--work-dir", str(tmp_path / "ft"),
                     "--out", str(tmp_path / "ft.json"))
    tuned = json.loads((tmp_path / "ft.json").read_text())
    assert 0 <= tuned["top1_accuracy"] <= 1 and tuned["protocol"] == "finetune" and "top1_accuracy" in printed.stdout
    maekit("audio-eval", str(config), "--checkpoint", str(checkpoint), "--protocol", "frozen", "--out",
           str(tmp_path / "frozen.json"))
    frozen = json.loads((tmp_path / "frozen.json").read_text())
    assert frozen["train_samples"] == 6 and frozen["test_samples"] == 2 and 0 <= frozen["linear_probe_accuracy"] <= 1
    failed = maekit("audio-eval", str(config), "--protocol", "frozen", "--cfg-options", "frozen_eval=None", check=False)
    assert failed.returncode != 0 and "no 'frozen_eval' section" in failed.stderr
    failed = maekit("audio-eval", str(config), "--cfg-options", "finetune.test.folds=(3,)", check=False)
    assert failed.returncode == 1 and failed.stderr.startswith("Error:") and "no rows in folds [3]" in failed.stderr


def test_convert_command_writes_loadable_weights_and_refuses_other_files(tmp_path):
    from maekit_audio.model import audio_mae

    from maekit.io.checkpoint import load_state_dict

    tiny = dict(size=None, encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=32, depth=1, num_heads=2),
                decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4)
    source = audio_mae(**tiny)
    renames = {"decoder.mask_token": "mask_token", "decoder.pos_embed": "decoder_pos_embed"}
    official = {}
    for key, value in source.state_dict().items():
        key = renames.get(key, key)
        key = key[len("encoder."):] if key.startswith("encoder.") else key.replace("decoder.", "decoder_", 1)
        official[f"module.{key}"] = value
    torch.save({"model": official, "epoch": 31}, tmp_path / "pretrained.pth")
    printed = maekit("audio-convert", str(tmp_path / "pretrained.pth"), str(tmp_path / "converted.safetensors"))
    assert "pretrain layout" in printed.stdout
    target = audio_mae(**tiny)
    target.load_state_dict(load_state_dict(tmp_path / "converted.safetensors"), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))
    torch.save({"model": {"weight": torch.zeros(2)}}, tmp_path / "other.pth")
    failed = maekit("audio-convert", str(tmp_path / "other.pth"), str(tmp_path / "x.pth"), check=False)
    assert failed.returncode == 1 and "not an official Audio-MAE checkpoint" in failed.stderr


def test_demo_pretrains_probes_and_draws_spectrograms(tmp_path):
    from maekit.eval.demo import run_demo

    config = tmp_path / "small_demo.py"
    speakers = dict(accents=("en-us", "en-gb-scotland"), variants=("", "+f3"), speeds=(165,), pitches=(35, 70))
    config.write_text(f"""_base_ = [{str(CONFIGS / 'audio_mae_demo.py')!r}]
_train = dict(type="audio_demo_spoken_digits", split="train", **{speakers!r})
_test = dict(type="audio_demo_spoken_digits", split="test", **{speakers!r})
data = dict(dataset=dict(_delete_=True, **_train))
probe = dict(_delete_=True, train=_train, test=_test, pools=("mean",))
""")
    test_set = build("dataset", dict(type="audio_demo_spoken_digits", split="test", **speakers))
    assert len(test_set) > 0 and sorted({test_set[i]["label"] for i in range(len(test_set))}) == list(range(10))
    metrics = run_demo(tmp_path / "out", config=str(config), max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    assert 0 <= written["probe_accuracy_pretrained"] <= 1 and 0 <= written["probe_accuracy_random_init"] <= 1
    from PIL import Image

    picture = Image.open(written["reconstructions"])
    assert picture.size[0] > 4 * 128 and picture.size[1] > 8 * 64  # 8 rows of 4 spectrograms, time along the width


def test_every_shipped_configs_datasets_and_transforms_take_their_keys():
    import inspect

    from maekit.engine import load_config
    from maekit.registry import get

    for name in ("audio_mae_audioset2m", "audio_mae_esc50", "audio_mae_demo"):
        cfg = load_config(name)
        sections = {"data.dataset": cfg.data.dataset, "data.transform": cfg.data.transform,
                    "eval_transform": cfg.eval_transform, "finetune.data.dataset": cfg.finetune.data.dataset,
                    "finetune.data.transform": cfg.finetune.data.transform, "finetune.test": cfg.finetune.test,
                    "finetune.eval_transform": cfg.finetune.eval_transform,
                    "frozen_eval.train": cfg.frozen_eval.train, "frozen_eval.test": cfg.frozen_eval.test}
        if "probe" in cfg:
            sections.update({"probe.train": cfg.probe.train, "probe.test": cfg.probe.test})
        for where, spec in sections.items():
            options = {k: v for k, v in spec.items() if k != "type"}
            kind = "transform" if "transform" in where else "dataset"
            target = get(kind, spec["type"])
            parameters = inspect.signature(target).parameters
            takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
            unknown = [k for k in options if k not in parameters]
            # datasets pass **options on to AudioDataset (sample_rate, mono, on_error)
            allowed = {"sample_rate", "mono", "on_error", "gain", "freqm", "timem", "stats", "target_length",
                       "num_mel_bins", "mean", "std"} if takes_more else set()
            assert not [k for k in unknown if k not in allowed], (name, where, unknown)


def test_step_benchmark_times_audio_mae_beside_the_unmasked_vit_and_the_filterbank_loader(tmp_path):
    import sys

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "audio_step.py"
    out = tmp_path / "step.json"
    result = subprocess.run([sys.executable, str(script), "--tiny", "--batch", "4", "--repeats", "1",
                             "--precisions", "fp32", "--loader-batches", "1", "--workers", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    runs = {run["contender"]: run for run in figures["runs"]}
    assert set(runs) == {"audio_mae (local decoder)", "audio_mae (global decoder)", "ViT, no masking"}
    assert runs["audio_mae (local decoder)"]["relative_time"] == 1.0
    assert all(run["flops_per_step"] > 0 and run["clips_per_s"] > 0 for run in runs.values())
    assert {entry["format"] for entry in figures["loader"]} == {"wav", "flac"}
    assert all(entry["fbanks_per_s"] > 0 for entry in figures["loader"])
