"""maekit-video as a plugin: what it registers, that it stands alone with core, its configs, the
commands a user runs on a folder of mp4 files with a CSV list (pre-train, fine-tune, frozen
evaluation, convert) and the demo."""
from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path

import maekit_video
import numpy as np
import torch
from maekit_video import plugin
from maekit_video.io import write_video

from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build

CONFIGS = Path(maekit_video.__file__).parent / "configs"
SHIPPED = ("videomae_vit_base_k400", "videomae_vit_base_ssv2", "omnimae_vit_base", "omnimae_vit_base_released",
           "maskfeat_vit_base_k400", "maskfeat_vit_base_in1k", "videomae_demo_moving_digits",
           "omnimae_demo_moving_digits", "maskfeat_demo_moving_digits", "siammae_vit_small_k400",
           "siammae_demo_moving_digits", "mvd_vit_base_k400", "mvd_demo_image_teacher", "mvd_demo_moving_digits")
COMMANDS = ("video-eval", "video-convert", "video-propagate")


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-video"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-video", maekit_video.__version__, plugin,
                                   ("video", "omnimae", "maskfeat", "siammae", "frame_pair", "mvd", "rawframe", "kinetics",
                                    "ssv2", "ucf101", "hmdb51"), commands=COMMANDS)


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-video", maekit_video.__version__, plugin, configs=SHIPPED,
                       demo="video\tmaekit_video.demo:run_video_demo", commands=COMMANDS)


def test_paper_configs_have_the_references_sizes_and_recipes():
    from maekit.engine import load_config

    cfg = load_config("videomae_vit_base_k400")
    model = build("model", {**cfg.model, "encoder": dict(depth=1)})  # the paper's widths, one block
    tokens = model.tokenize(torch.zeros(1, 3, 16, 224, 224))
    assert tokens.num_tokens == 1568 and tokens.values.shape[-1] == 1536 and model.make_mask(tokens).num_visible == 160
    assert model.encoder.embed_dim == 768 and model.decoder.embed.out_features == 384 and len(model.decoder.blocks) == 4
    assert model.decoder.blocks[0].attn.num_heads == 6 and model.decoder.embed.bias is None
    assert cfg.data.dataset.clip == dict(sampling="consecutive", num_frames=16, stride=4, pad=True)
    assert (cfg.schedule.blr, cfg.schedule.betas, cfg.schedule.weight_decay) == (1.5e-4, (0.9, 0.95), 0.05)
    assert cfg.schedule.max_iters == 1600 * (240436 // 2048) and cfg.finetune.test.test_clips == 5
    assert cfg.finetune.eval_transform.crops == 3 and cfg.finetune.schedule.layer_decay == 0.75
    ssv2 = load_config("videomae_vit_base_ssv2")
    assert ssv2.data.dataset.clip.stride == 2 and ssv2.finetune.data.transform.flip is False
    assert ssv2.finetune.data.dataset.clip == dict(sampling="segments", num_frames=16) and ssv2.finetune.num_classes == 174
    omni = load_config("omnimae_vit_base")
    assert (omni.model.image_mask_ratio, omni.model.video_mask_ratio) == (0.9, 0.95) and omni.data.sampler == "one_source_per_batch"
    released = load_config("omnimae_vit_base_released")
    assert (released.model.image_mask_ratio, released.model.video_mask_ratio) == (0.75, 0.9)
    feat = load_config("maskfeat_vit_base_k400")
    masked = build("model", {**feat.model, "encoder": dict(depth=1)})
    assert masked.masker.window == (8, 7, 7) and masked.decoder.head.pred.out_features == 108
    assert feat.schedule.clip_grad == 0.02
    siam = load_config("siammae_vit_small_k400")
    pairs = build("model", {**siam.model, "encoder": dict(depth=1)})
    future = pairs.tokenize(torch.zeros(1, 3, 224, 224))
    assert future.num_tokens == 196 and pairs.make_mask(future).num_visible == 9  # int(196 · 0.05)
    assert pairs.encoder.embed_dim == 384 and pairs.decoder.embed.out_features == 256 and len(pairs.decoder.blocks) == 4
    assert pairs.decoder.blocks[0].order == ("cross", "self", "mlp") and pairs.decoder.blocks[0].cross_attn.num_heads == 8
    assert siam.data.dataset.clip == dict(sampling="pair", min_gap=4, max_gap=48)
    assert (siam.schedule.blr, siam.schedule.betas, siam.data.transform.scale) == (1.5e-4, (0.9, 0.95), (0.5, 1.0))
    assert dict(siam.propagation) == dict(size=(480, 880), topk=7, radius=20, context=20, temperature=0.7, resolution="480p")
    from maekit_video.propagation import PROPAGATION_KEYS
    distil = load_config("mvd_vit_base_k400")  # the teachers' files are the user's: checked, not built
    assert (distil.model.mask_ratio, distil.model.decoder_depth, distil.model.drop_path_rate) == (0.9, 2, 0.1)
    assert distil.model.image_teacher.layout == distil.model.video_teacher.layout == "official"
    assert distil.schedule.min_lr == 1e-4 * 1024 / 256 and distil.schedule.warmup_iters == 40 * (240436 // 1024)
    assert plugin.maekit_config_keys()["propagation"] == list(PROPAGATION_KEYS)


def test_every_shipped_configs_datasets_and_transforms_take_their_keys():
    from maekit.engine import load_config
    from maekit.registry import get

    for name in SHIPPED:
        cfg = load_config(name)
        specs = {"data.dataset": cfg.data.dataset, "data.transform": cfg.data.get("transform"),
                 "eval_transform": cfg.get("eval_transform")}
        if cfg.data.dataset.type == "concat_sources":
            for number, source in enumerate(cfg.data.dataset.sources):
                specs.update({f"source {number} dataset": source.dataset, f"source {number} transform": source.get("transform")})
        for section in ("finetune", "frozen_eval", "probe"):
            part = cfg.get(section) or {}
            for key in ("test", "train", "eval_transform"):
                specs[f"{section}.{key}"] = part.get(key)
            if "data" in part:
                specs.update({f"{section}.data.dataset": part.data.dataset, f"{section}.data.transform": part.data.transform})
        for where, spec in specs.items():
            if not spec:
                continue
            kind = "transform" if "transform" in where else "dataset"
            parameters = inspect.signature(get(kind, spec["type"])).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):  # datasets' shared options
                parameters = {**parameters, **inspect.signature(maekit_video.data.VideoDataset).parameters}
            unknown = [k for k in spec if k != "type" and k not in parameters]
            assert not unknown, (name, where, unknown)


def write_user_data(root: Path, count: int = 6) -> None:
    """What a user has: a folder of mp4 files and VideoMAE-style train.csv / val.csv lists."""
    lines = {"train": [], "val": []}
    for n in range(count):
        frames = np.zeros((12, 32, 32, 3), np.uint8)
        for t in range(12):  # a bar moving right (class 0) or left (class 1)
            x = 2 + 2 * t if n % 2 == 0 else 28 - 2 * t
            frames[t, :, x:x + 4] = 255
        write_video(root / "videos" / f"clip{n}.mp4", frames, fps=10)
        lines["val" if n >= count - 2 else "train"].append(f"{root / 'videos' / f'clip{n}.mp4'} {n % 2}")
    for split, rows in lines.items():
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")


def test_a_user_pretrains_finetunes_evaluates_and_converts_one_command_each(tmp_path):
    write_user_data(tmp_path)
    config = tmp_path / "my_video.py"
    clip = dict(sampling="consecutive", num_frames=4, stride=2)
    train = dict(type="video_list", list_file=str(tmp_path / "train.csv"), clip=clip)
    test = dict(type="video_list", list_file=str(tmp_path / "val.csv"), clip=clip, train=False)
    config.write_text(f"""_base_ = [{str(CONFIGS / 'videomae_demo_moving_digits.py')!r}]
model = dict(num_frames=4, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
             decoder_num_heads=2)
data = dict(dataset=dict(_delete_=True, **{train!r}), batch_size=2, num_workers=0)
schedule = dict(max_iters=2, warmup_iters=0)
checkpoint_interval = 2
probe = dict(_delete_=True, train={dict(train, train=False)!r}, test={test!r}, pools=("mean",))
frozen_eval = dict(_delete_=True, train={dict(train, train=False)!r}, test={test!r}, k=3)
finetune = dict(num_classes=2, data=dict(dataset=dict(_delete_=True, **{train!r}), batch_size=2),
                test=dict(_delete_=True, **{dict(test, test_clips=2)!r}), schedule=dict(max_iters=2, warmup_iters=0))
""")
    maekit("train", str(config), "--work-dir", str(tmp_path / "pretrain"), "--device", "cpu")
    checkpoint = tmp_path / "pretrain" / "iter_2.pth"
    assert checkpoint.is_file()
    printed = maekit("video-eval", str(config), "--checkpoint", str(checkpoint), "--work-dir", str(tmp_path / "ft"),
                     "--out", str(tmp_path / "ft.json"))
    tuned = json.loads((tmp_path / "ft.json").read_text())
    assert 0 <= tuned["top1_accuracy"] <= 1 and tuned["protocol"] == "finetune" and "top1_accuracy" in printed.stdout
    maekit("video-eval", str(config), "--checkpoint", str(checkpoint), "--protocol", "frozen", "--out",
           str(tmp_path / "frozen.json"))
    frozen = json.loads((tmp_path / "frozen.json").read_text())
    assert 0 <= frozen["linear_probe_accuracy"] <= 1 and 0 <= frozen["knn_accuracy"] <= 1
    (tmp_path / "videos" / "clip5.mp4").write_bytes(b"")
    failed = maekit("video-eval", str(config), "--protocol", "frozen", check=False)
    assert failed.returncode == 1 and failed.stderr.startswith("Error:") and "clip5.mp4: empty file" in failed.stderr


def official_pretrain_state(model) -> dict[str, torch.Tensor]:
    """A VideoMAE pre-training checkpoint's names: encoder.* as ours, encoder_to_decoder, mask_token
    at the top, decoder.head for the prediction; no position tables."""
    renames = {"decoder.embed.weight": "encoder_to_decoder.weight", "decoder.mask_token": "mask_token",
               "decoder.pred.weight": "decoder.head.weight", "decoder.pred.bias": "decoder.head.bias"}
    return {renames.get(key, key): value for key, value in model.state_dict().items()}


def test_convert_command_reads_official_layouts_and_refuses_other_files(tmp_path):
    from maekit_video.model import video_classifier, videomae

    from maekit.io.checkpoint import load_state_dict

    tiny = dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), num_frames=4, img_size=32, patch_size=8,
                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    source = videomae(**tiny)
    official = official_pretrain_state(source)
    assert sorted(k for k in official if "blocks.0." in k and k.startswith("encoder")) == [
        f"encoder.blocks.0.{name}" for name in sorted(("attn.proj.bias", "attn.proj.weight", "attn.q_bias", "attn.qkv.weight",
                                                       "attn.v_bias", "mlp.fc1.bias", "mlp.fc1.weight", "mlp.fc2.bias",
                                                       "mlp.fc2.weight", "norm1.bias", "norm1.weight", "norm2.bias",
                                                       "norm2.weight"))]
    assert official["encoder.patch_embed.proj.weight"].shape == (32, 3, 2, 8, 8) and "encoder_to_decoder.bias" not in official
    torch.save({"model": {f"module.{k}": v for k, v in official.items()}, "epoch": 799}, tmp_path / "pretrain.pth")
    printed = maekit("video-convert", str(tmp_path / "pretrain.pth"), str(tmp_path / "converted.safetensors"))
    assert "pretrain layout" in printed.stdout
    target = videomae(**tiny)
    target.load_state_dict(load_state_dict(tmp_path / "converted.safetensors"), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))

    classifier = video_classifier(dict(type="videomae", **tiny), num_classes=5)
    finetuned = {key[len("encoder."):] if key.startswith("encoder.") else key: value
                 for key, value in classifier.state_dict().items()}  # patch_embed, blocks, fc_norm, head
    torch.save({"module": finetuned}, tmp_path / "finetuned.pth")
    printed = maekit("video-convert", str(tmp_path / "finetuned.pth"), str(tmp_path / "ft.pth"))
    assert "finetune layout" in printed.stdout
    again = video_classifier(dict(type="videomae", **tiny), num_classes=5)
    again.load_state_dict(load_state_dict(tmp_path / "ft.pth"), strict=True)
    torch.save({"model": {"pos_embed": torch.zeros(1, 4, 32), **finetuned}}, tmp_path / "other.pth")
    failed = maekit("video-convert", str(tmp_path / "other.pth"), str(tmp_path / "x.pth"), check=False)
    assert failed.returncode == 1 and "key 'pos_embed' is not part of the official VideoMAE finetune layout" in failed.stderr


def test_demo_writes_mp4s_pretrains_probes_and_draws_strips_and_a_gif(tmp_path):
    from maekit_video.demo import run_video_demo

    config = tmp_path / "small_demo.py"
    config.write_text(f"""_base_ = [{str(CONFIGS / 'videomae_demo_moving_digits.py')!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1)
_few = dict(type="video_demo_moving_digits", count=120)
data = dict(dataset=dict(_few, split="train"), batch_size=4, num_workers=0)
probe = dict(train=dict(_few, split="train", train=False), test=dict(_few, split="test"))
finetune = dict(data=dict(dataset=dict(_few, split="train"), batch_size=4, num_workers=0), test=dict(_few, split="test"),
                schedule=dict(max_iters=2, warmup_iters=0))
""")
    test_set = build("dataset", dict(type="video_demo_moving_digits", split="test", count=120))
    assert len(test_set) == 30 and test_set.num_classes == 40 and Path(test_set.items[0][0]).suffix == ".mp4"
    metrics = run_video_demo(tmp_path / "out", config=str(config), max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["iterations"] == 2 and 0 <= written["probe_accuracy_pretrained"] <= 1
    assert 0 <= written["finetune_accuracy_pretrained"] <= 1 and 0 <= written["finetune_accuracy_random_init"] <= 1
    from PIL import Image

    strips = Image.open(written["reconstructions"])
    assert strips.size[0] > 8 * 32 and strips.size[1] > 8 * 3 * 32  # 8 clips × 3 strips of 8 frames
    gif = Image.open(metrics["animation"])
    assert gif.n_frames == 8


def test_step_benchmark_times_videomae_beside_transformers_and_writes_its_figures(tmp_path):
    import sys

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "video_step.py"
    out = tmp_path / "step.json"
    result = subprocess.run([sys.executable, str(script), "--frames", "4", "--img-size", "32", "--batch", "1",
                             "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    runs = {(run["precision"], run["contender"]): run for run in figures["runs"]}
    assert set(runs) == {(p, c) for p in ("fp32", "bf16") for c in ("maekit", "transformers")}
    # the same architecture and masked share: maekit's FLOPs are transformers' less the cube
    # embedding of the removed cubes (transformers embeds the whole clip, then drops them)
    for precision in ("fp32", "bf16"):
        ours, theirs = runs[precision, "maekit"]["flops_per_step"], runs[precision, "transformers"]["flops_per_step"]
        assert 0.8 < ours / theirs <= 1.0
    assert all(run["clips_per_s"] > 0 and 0 < run["mfu"] for run in figures["runs"])
    assert "ratio maekit/transformers" in result.stdout
