"""maekit-videotext as a plugin: what it registers, that it stands alone with core (and the
maekit-video it declares), its configs, training from one command on a folder of clips and a
caption CSV, exact resume, ``maekit videotext-eval`` and a short demo."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import maekit_videotext
import numpy as np
import pytest
import torch
from maekit_videotext import plugin

from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli, straight_and_resumed

CONFIGS = ("simvtp_demo_moving_digits", "smaug_demo_moving_digits", "simvtp_vit_base_webvid", "smaug_vit_base_webvid")


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-videotext,maekit-video"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-videotext", maekit_videotext.__version__, plugin,
                                   ("simvtp", "smaug", "videotext"), commands=("videotext-eval",))


def test_listed_alone_with_core_with_its_version_configs_demos_and_command():
    check_listed_alone("maekit-videotext", maekit_videotext.__version__, plugin, configs=CONFIGS,
                       demo="videotext\tmaekit_videotext.demo:run_videotext_demo", commands=("videotext-eval",))


def test_paper_config_is_simvtps_recipe():
    from maekit.engine import load_config

    cfg = load_config("simvtp_vit_base_webvid")
    assert cfg.data.batch_size * cfg._processes == 1024 and cfg.schedule.blr == 1.5e-4 and cfg.schedule.betas == (0.9, 0.95)
    assert cfg.model.mask_ratio == 0.9 and cfg.model.text.mask_prob == 0.75 and cfg.model.text.vocab_size == 30522
    assert cfg.schedule.max_iters == 200 * cfg.schedule.iters_per_epoch and cfg.retrieval.test.split == "test_1k_a"
    assert load_config("smaug_vit_base_webvid").model.type == "smaug"
    from maekit.registry import build

    model = build("model", {**cfg.model, "text": dict(vocab_size=30522, max_length=512)})  # no vocab file here
    assert len(model.encoder.blocks) == 12 and model.encoder.embed_dim == 768 and model.masker.mask_ratio == 0.9
    assert model.loss.parts["vtc"].temperature == 0.05 and model.text_masker.replace_mask == 1.0
    assert model.mlm_head.out_features == 30522 and model.decoder.embed.out_features == 384


def write_folder(root: Path, clips: int = 6) -> Path:
    """A folder of real mp4 clips and a caption CSV naming them, as a user has."""
    from maekit_video.io import write_video

    rows = ["video,caption"]
    rng = np.random.default_rng(0)
    for n in range(clips):
        write_video(root / "clips" / f"clip{n}.mp4", rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8), fps=8)
        rows += [f"clips/clip{n}.mp4,clip number {n} with a {['red', 'blue'][n % 2]} thing",
                 f"clips/clip{n}.mp4,another caption of clip {n}"]
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root / "captions.csv"


def tiny_config(csv: Path, method: str, iters: int) -> dict:
    from maekit.engine import load_config

    cfg = load_config(f"{method}_demo_moving_digits")
    dataset = dict(type="videotext_captions", file=str(csv), clip=dict(sampling="consecutive", num_frames=8, stride=1))
    cfg.merge_from_dict({"model.encoder": dict(embed_dim=32, depth=2, num_heads=2), "model.decoder_embed_dim": 16,
                         "model.decoder_depth": 1, "model.text": dict(vocab_size=64, max_length=16),
                         "data.dataset": dict(dataset, _delete_=True), "data.batch_size": 3, "data.num_workers": 0,
                         "schedule.max_iters": iters, "schedule.warmup_iters": 0, "checkpoint_interval": 2,
                         "log_interval": 1, "retrieval.test": dict(dataset, _delete_=True), "retrieval.train": dict(dataset, _delete_=True),
                         "retrieval.batch_size": 4, "retrieval.finetune": dict(iters=2, batch_size=3, _delete_=True)})
    if method == "smaug":
        cfg.merge_from_dict({"model.sparsifier": dict(layer=1, keep_tokens=0.5, keep_frames=0.75)})
    return cfg


@pytest.mark.parametrize("method", ["simvtp", "smaug"])
def test_trains_from_one_command_on_clips_and_a_caption_csv(tmp_path, method):
    csv = write_folder(tmp_path)
    work = tmp_path / "run"
    # _delete_: the user's dataset replaces the demo's (which has keys of its own), not merged into it
    clip = "{'sampling': 'consecutive', 'num_frames': 8, 'stride': 1}"
    options = [f"data.dataset={{'_delete_': True, 'type': 'videotext_captions', 'file': '{csv}', 'clip': {clip}}}", "data.batch_size=3", "data.num_workers=0",
               "model.encoder={'embed_dim': 32, 'depth': 2, 'num_heads': 2}", "model.decoder_embed_dim=16",
               "model.decoder_depth=1", "model.text={'vocab_size': 64, 'max_length': 16}", "schedule.max_iters=2",
               "schedule.warmup_iters=0", "checkpoint_interval=2", "log_interval=1"]
    if method == "smaug":
        options.append("model.sparsifier={'layer': 1}")
    maekit("train", f"{method}_demo_moving_digits", "--work-dir", str(work), "--cfg-options", *options)
    from maekit.io.checkpoint import load_state_dict
    from maekit.io.convert import strip_runner_prefix

    state = strip_runner_prefix(load_state_dict(work / "iter_2.pth"))
    vocab = bytes(state["tokenizer.vocab_bytes"].tolist()).decode().split("\n")
    assert (work / "vocab.txt").read_text().split() == vocab
    # learned from every caption the file lists (read from the dataset, no clip decoded), not one per clip
    from maekit_videotext.data import VideoCaptions
    from maekit_videotext.text import train_wordpiece

    listed = VideoCaptions(csv, clip=dict(sampling="consecutive", num_frames=8, stride=1)).captions
    assert vocab == train_wordpiece([text for texts in listed for text in texts], 64)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_resumed_training_equals_straight_training(tmp_path):
    csv = write_folder(tmp_path)
    straight, resumed = straight_and_resumed(tiny_config(csv, "simvtp", 4), tmp_path, iters=4, interrupt_at=2)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_videotext_eval_reports_retrieval_and_errors_name_the_problem(tmp_path):
    csv = write_folder(tmp_path)
    cfg = tiny_config(csv, "simvtp", 2)
    cfg_file = tmp_path / "config.py"
    cfg.dump(str(cfg_file))
    from maekit_videotext.evaluate import evaluate_retrieval

    from maekit.engine import train
    from maekit.eval.probe import load_trained_model

    train(cfg, tmp_path / "run", device="cpu")
    checkpoint = tmp_path / "run" / "iter_2.pth"
    out = tmp_path / "metrics.json"
    maekit("videotext-eval", str(cfg_file), "--checkpoint", str(checkpoint), "--finetune-iters", "2", "--out", str(out))
    metrics = json.loads(out.read_text())
    assert metrics["zero_shot/num_videos"] == 6 and metrics["zero_shot/num_captions"] == 12
    assert 0 <= metrics["finetuned/text_to_video_R@1"] <= 100 and metrics["finetune_iters"] == 2
    assert metrics["zero_shot/text_to_video_R@10"] == 100.0  # 6 videos: every caption's video is in the top 10
    # zero-shot figures are the trained model's, with the vocabulary its checkpoint holds
    from maekit.registry import build

    direct = evaluate_retrieval(load_trained_model(cfg.model, checkpoint), build("dataset", dict(cfg.retrieval.test, train=False)),
                                build("transform", cfg.eval_transform), 4)
    assert metrics["zero_shot/text_to_video_MnR"] == pytest.approx(direct["text_to_video_MnR"])
    (tmp_path / "bad.csv").write_text("video,caption\nclips/clip0.mp4,ok\nclips/nope.mp4,lost\n")
    failed = maekit("videotext-eval", str(cfg_file), "--cfg-options",
                    f"retrieval.test={{'type': 'videotext_captions', 'file': '{tmp_path / 'bad.csv'}'}}", check=False)
    assert failed.returncode != 0 and "Error:" in failed.stderr and "nope.mp4" in failed.stderr
    assert "Traceback" not in failed.stderr
    failed = maekit("videotext-eval", str(cfg_file), "--cfg-options", "retrieval.finetune={'iter': 3}", check=False)
    assert "Error: retrieval.finetune: unknown keys ['iter']" in failed.stderr
    if not torch.cuda.is_available():
        failed = maekit("videotext-eval", str(cfg_file), "--device", "cuda", check=False)
        assert "Error: --device cuda: this torch sees no CUDA device" in failed.stderr and "Traceback" not in failed.stderr


def test_short_demo_runs_and_compares_with_random_init(tmp_path):
    from maekit_videotext.demo import run_videotext_demo

    small = dict(type="videotext_demo_moving_digits", count=24, galleries=1)
    overrides = {"data.dataset": dict(small, split="train"), "retrieval.test": [dict(small, split="test_0")],
                 "retrieval.train": dict(small, split="train"), "retrieval.finetune.iters": 2,
                 "model.encoder": dict(embed_dim=32, depth=2, num_heads=2), "data.batch_size": 8, "data.num_workers": 0}
    metrics = run_videotext_demo(tmp_path, max_iters=3, overrides=overrides, log=lambda *_: None)
    for name in ("pretrained", "random_init"):
        assert 0 <= metrics[f"zero_shot/text_to_video_R@1_{name}"] <= 100
        assert metrics[f"finetuned/num_videos_{name}"] == 40
    assert (tmp_path / "metrics.json").is_file() and Path(metrics["picture"]).is_file()


def test_two_processes_train_with_one_vocabulary(tmp_path):
    """Two gloo processes (batch 3 each) against one (batch 6): the step runs under DDP (a parameter
    left out of a pass would stop it), both runs learn the same vocabulary, and the weights stay
    finite. Not equal weights: VTC and VTM use each process's own batch as negatives, as the
    reference does, so the two runs optimise different objectives."""
    from maekit.authoring.testing import one_and_two_processes
    from maekit.io.convert import strip_runner_prefix

    csv = write_folder(tmp_path)
    paths = {}
    for name, batch in (("one", 6), ("two", 3)):
        cfg = tiny_config(csv, "simvtp", 2)
        cfg.merge_from_dict({"data.batch_size": batch})
        paths[name] = tmp_path / f"{name}.py"
        cfg.dump(str(paths[name]))
    one, two = (strip_runner_prefix(state) for state in one_and_two_processes(paths["one"], paths["two"], tmp_path, iters=2))
    assert torch.equal(one["tokenizer.vocab_bytes"], two["tokenizer.vocab_bytes"])
    assert all(torch.isfinite(v).all() for v in two.values() if v.is_floating_point())
