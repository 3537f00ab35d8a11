"""maekit-face as a plugin: what it registers, that it stands alone with core, its configs train,
``maekit au-eval`` (fine-tuned and occlusion-robust detectors) and ``maekit face-crop`` from the
command line with their errors, and the demos (short)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import maekit_face
import torch
from maekit_face import plugin

from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build

CONFIGS = ("face_mae_demo", "mcm_demo", "mcm_vit_base_bp4d_plus", "au_mae_vit_base_bp4d", "au_mae_vit_base_disfa")
TINY = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1,
        "model.encoder.depth": 1, "model.decoder_depth": 1, "data.batch_size": 8,
        "au.schedule.max_iters": 2, "au.schedule.warmup_iters": 0, "au.data.batch_size": 8,
        "au.head.depth": 1, "au.conditions": {"clean": None, "block_50": {"type": "block", "side": 0.5}}}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-face"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-face", maekit_face.__version__, plugin,
                                   ("mcm", "au", "face"), commands=("face-crop", "au-eval"))


def test_listed_alone_with_core_with_its_version_configs_demos_and_commands():
    check_listed_alone("maekit-face", maekit_face.__version__, plugin, configs=CONFIGS,
                       demo="face\tmaekit_face.demo:run_face_demo", commands=("face-crop", "au-eval"))


def test_paper_configs_hold_the_note_settings():
    from maekit.engine import load_config

    cfg = load_config("mcm_vit_base_bp4d_plus")
    model = build("model", {**cfg.model, "encoder": {"depth": 1}, "decoder_depth": 1})
    assert model.encoder.embed_dim == 768 and model.encoder.patch_size == (16, 16) and cfg.model.get("encoder") is None
    assert (model.masker.mask_ratio, model.masker.channels, model.masker.keep, len(model.masker.subsets)) == (0.75, 5, 3, 10)
    assert model.decoder.decoders["rgb"].embed.out_features == 512 and cfg.model.decoder_depth == 8
    assert model.decoder.decoders["dt"].pred.out_features == 16 * 16 * 2 and model.target.norm_pix == ("rgb",)
    assert cfg.data.dataset.type == "face_bp4d_plus" and cfg.au.test.type == "face_bp4d"
    for name, dataset in (("au_mae_vit_base_bp4d", "face_bp4d"), ("au_mae_vit_base_disfa", "face_disfa")):
        au = load_config(name).au
        assert au.data.dataset.type == dataset and au.data.transform.size == 224 and au.eval_transform.train is False
        assert (au.node_weight, au.edge_weight, au.occlusion_threshold, tuple(au.folds)) == (1.0, 1.0, 0.5, (1, 2, 3))
    assert load_config("au_mae_vit_base_disfa").au.data.dataset.threshold == 2


def test_demo_configs_train(tmp_path):
    from maekit.engine import train

    for config in ("face_mae_demo", "mcm_demo"):
        runner = train(config, tmp_path / config, overrides=TINY, device="cpu")
        assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
        assert (tmp_path / config / "iter_2.pth").is_file()


def test_au_eval_fine_tunes_a_teacher_then_trains_the_occlusion_student(tmp_path):
    from maekit.engine import load_config

    cfg = load_config("face_mae_demo")
    cfg.merge_from_dict({**TINY, "au.data.dataset.frames": 6, "au.test.frames": 6, "au.freeze_encoder": True})
    cfg.au.conditions = TINY["au.conditions"]
    config = tmp_path / "tiny.py"
    cfg.dump(str(config))
    maekit("train", str(config), "--work-dir", str(tmp_path / "mae"))
    checkpoint = str(tmp_path / "mae" / "iter_2.pth")
    maekit("au-eval", str(config), "--checkpoint", checkpoint, "--work-dir", str(tmp_path / "teacher"),
           "--out", str(tmp_path / "teacher.json"))
    tuned = json.loads((tmp_path / "teacher.json").read_text())
    table = tuned["per_fold"]["fold1"]["clean"]
    assert set(table) == {"AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU25", "AU43", "avg_f1"}
    assert all(0 <= v <= 100 for v in table.values()) and tuned["per_fold"]["fold1"]["test_frames"] == 4 * 6
    teacher = str(tmp_path / "teacher" / "fold{fold}" / "iter_2.pth")
    maekit("au-eval", str(config), "--checkpoint", checkpoint, "--method", "occlusion", "--teacher", teacher,
           "--work-dir", str(tmp_path / "student"), "--out", str(tmp_path / "student.json"))
    student = json.loads((tmp_path / "student.json").read_text())
    assert set(student["avg_f1_mean_over_folds"]) == {"clean", "block_50"} and student["method"] == "occlusion"
    state = torch.load(tmp_path / "student" / "fold1" / "iter_2.pth", weights_only=True)["state_dict"]
    tuned_state = torch.load(tmp_path / "teacher" / "fold1" / "iter_2.pth", weights_only=True)["state_dict"]
    # the frozen teacher travels in the student's checkpoint unchanged; the frozen encoder too
    for key in ("head.from_global.weight", "encoder.blocks.0.attn.qkv.weight"):
        assert torch.equal(state[f"model.teacher.module.{key}"], tuned_state[f"model.{key}"])
    pretrained = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(state["model.encoder.blocks.0.attn.qkv.weight"], pretrained["model.encoder.blocks.0.attn.qkv.weight"])
    failed = maekit("au-eval", str(config), "--method", "occlusion", check=False)
    assert failed.returncode == 1 and "Error: --method occlusion distils from a teacher" in failed.stderr
    wrong = maekit("au-eval", str(config), "--method", "occlusion", "--teacher", checkpoint, "--work-dir",
                   str(tmp_path / "bad"), check=False)
    assert wrong.returncode == 1 and "not an AU detector of this model, head and AUs" in wrong.stderr
    typo = maekit("au-eval", str(config), "au.hed.width=8", check=False)
    assert typo.returncode == 1 and "Error:" in typo.stderr and "hed" in typo.stderr


def test_face_crop_command_and_its_errors(tmp_path):
    import numpy as np
    from PIL import Image
    from skimage import data

    (tmp_path / "frames" / "SN001").mkdir(parents=True)
    Image.fromarray(data.astronaut()[:256, 64:320]).save(tmp_path / "frames" / "SN001" / "0.png")
    printed = maekit("face-crop", str(tmp_path / "frames"), "--out", str(tmp_path / "crops"), "--size", "48")
    assert "cropped 1 frames" in printed.stdout and "no face found in 0" in printed.stdout
    assert Image.open(tmp_path / "crops" / "SN001" / "0.png").size == (48, 48)
    (tmp_path / "empty").mkdir()
    failed = maekit("face-crop", str(tmp_path / "empty"), "--out", str(tmp_path / "c2"), check=False)
    assert failed.returncode == 1 and "Error:" in failed.stderr and "no image files found" in failed.stderr
    assert np.asarray(Image.open(tmp_path / "crops" / "SN001" / "0.png")).std() > 10


def test_demos_write_metrics_and_pictures(tmp_path):
    from maekit_face.demo import run_face_demo, run_mcm_demo
    from PIL import Image

    from maekit.engine import load_config

    for name, run in (("face_mae_demo", run_face_demo), ("mcm_demo", run_mcm_demo)):
        cfg = load_config(name)
        cfg.merge_from_dict({**TINY, "au.data.dataset.frames": 6, "au.test.frames": 6})
        cfg.au.conditions = TINY["au.conditions"]
        cfg.dump(str(tmp_path / f"{name}.py"))
        metrics = run(tmp_path / name, config=str(tmp_path / f"{name}.py"), log=lambda *_: None)
        written = json.loads((tmp_path / name / "metrics.json").read_text())
        assert written == json.loads(json.dumps(metrics)) and written["iterations"] == 2
        for key in ("finetune_clean_avg_f1_pretrained", "finetune_block_50_avg_f1_random_init"):
            assert 0 <= written[key] <= 100, key
        assert Image.open(written["reconstructions"]).size[0] > 3 * 32
    assert 0 <= written["finetune_clean_avg_f1_pretrained"] <= 100
    face = json.loads((tmp_path / "face_mae_demo" / "metrics.json").read_text())
    assert set(face["occlusion_beats_random_init"]) == {"clean", "block_50"}
    assert Path(face["occlusions"]).is_file()
