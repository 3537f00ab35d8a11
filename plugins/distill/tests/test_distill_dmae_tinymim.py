"""DMAE and TinyMIM against transcriptions of their reference code on fixed weights, teachers read
strictly from files in the MAE release's layout and this toolkit's, the view pair, the command line
and the distillation demo.
Run alone with: MAEKIT_PLUGINS=maekit-distill python -m pytest plugins/distill/tests"""
from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.nn import functional as F

from maekit.io.checkpoint import save_state_dict
from maekit.io.convert import maekit_to_official
from maekit.methods.mae import mae
from maekit.model import seeded_noise
from maekit.registry import build

TEACHER_ENCODER = dict(embed_dim=48, depth=3, num_heads=4)
STUDENT = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=1,
               encoder=dict(embed_dim=32, depth=3, num_heads=2))


def teacher_file(tmp_path, layout: str = "official"):
    """A tiny MAE (encoder 3 × 48) saved in the MAE release's layout (``maekit_to_official``: the
    names of ``mae_visualize_vit_large.pth``, decoder included) or as a maekit state dict."""
    torch.manual_seed(1)
    teacher = mae(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=1,
                  encoder=TEACHER_ENCODER, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    state = maekit_to_official(teacher.state_dict()) if layout == "official" else teacher.state_dict()
    path = save_state_dict(state, tmp_path / f"teacher_{layout}.safetensors")
    return teacher, dict(encoder_name="vit_tiny_patch16_224", encoder=TEACHER_ENCODER, layout=layout, checkpoint=str(path))


def reference_encoder_states(encoder, images, ids_keep=None):
    """The reference's ``forward_encoder_student`` / ``forward_encoder_customized`` up to every
    block (conv patch embedding, table without the cls row, gather, cls + its row, timm blocks):
    the raw block outputs, in float32."""
    x = encoder.patch_embed(images) + encoder.pos_embed[:, 1:]
    if ids_keep is not None:
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    x = torch.cat([(encoder.cls_token + encoder.pos_embed[:, :1]).expand(len(x), -1, -1), x], 1)
    states = [x]
    for block in encoder.blocks:
        x = block(x)
        states.append(x)
    return states


def test_dmae_aligns_student_block_to_teacher_block_on_the_visible_tokens(tmp_path):
    torch.manual_seed(0)
    teacher_mae, spec = teacher_file(tmp_path)
    model = build("model", dict(type="dmae", **STUDENT, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
                                student_tap=2, teacher_tap=3, teacher=spec)).eval()
    images = torch.randn(3, 1, 32, 32)
    losses = model({"inputs": images}, noise=seeded_noise(5))
    out = model.run_steps({"inputs": images}, noise=seeded_noise(5))
    ids_keep = out.mask.ids_keep
    with torch.no_grad():
        student = reference_encoder_states(model.encoder, images, ids_keep)[2]
        teacher = reference_encoder_states(teacher_mae.encoder, images, ids_keep)[3]  # the file's weights
        expected = nn.L1Loss()(F.normalize(teacher, dim=-1), F.normalize(model.projection(student), dim=-1))
        # MAE's pixel loss without norm-pix: the raw patches of the removed tokens
        patches = images.unfold(2, 8, 8).unfold(3, 8, 8).reshape(3, 16, 64)
        mse = (((out.pred - patches) ** 2).mean(-1) * out.mask.masked).sum() / out.mask.masked.sum()
    assert torch.allclose(losses["feature_l1"], expected, atol=1e-6)
    assert torch.allclose(losses["mse"], mse, atol=1e-6)
    assert torch.allclose(losses["loss"], mse + expected, atol=1e-6)
    assert model.projection.in_features == 32 and model.projection.out_features == 48
    # the teacher sees the visible tokens only: changing the removed ones moves the pixel loss alone
    changed = images.clone()
    removed = out.mask.masked[0].nonzero()[0, 0].item()
    row, col = divmod(removed, 4)
    changed[0, :, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 5.0
    again = model({"inputs": changed}, noise=seeded_noise(5))
    assert torch.equal(again["feature_l1"], losses["feature_l1"]) and not torch.equal(again["mse"], losses["mse"])
    # gradients reach the student and its projection, never the frozen teacher
    model.train()
    model({"inputs": images})["loss"].backward()
    assert model.projection.weight.grad is not None and model.encoder.blocks[0].attn.qkv.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())
    # an encoder-only file (maekit export) evaluates: teacher and projection stay as built
    from maekit.eval.probe import load_trained_model

    exported = save_state_dict({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}, tmp_path / "enc.safetensors")
    spec_cfg = dict(type="dmae", **STUDENT, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, student_tap=2,
                    teacher_tap=3, teacher=spec)
    loaded = load_trained_model(spec_cfg, str(exported))
    assert torch.equal(loaded.encoder.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    with pytest.raises(ValueError, match="dmae teacher_tap: tap 4 is outside"):
        build("model", {**spec_cfg, "teacher_tap": 4})


def reference_relations(block, x, heads):
    """TinyMIM's ``Attention.forward(..., return_relation=True)`` on ``norm1(x)``, transcribed."""
    x = block.norm1(x)
    batch, length, channels = x.shape
    qkv = block.attn.qkv(x).reshape(batch, length, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scale = (channels // heads) ** -0.5
    return ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1), ((v @ v.transpose(-2, -1)) * scale).softmax(dim=-1)


def reference_kd_loss(pred, teacher_out):
    return nn.KLDivLoss(reduction="none")(pred.log(), teacher_out).sum(-1).mean()


def test_tinymim_relations_and_loss_match_the_reference_code(tmp_path):
    torch.manual_seed(0)
    teacher_mae, spec = teacher_file(tmp_path, "maekit")
    model = build("model", dict(type="tinymim", **STUDENT, teacher_block=2, teacher=spec, drop_path=0.1)).eval()
    # the student's blocks stay plain 2-head blocks (what fine-tuning and export read); its last
    # block's relations are taken in the teacher's 4 heads. Drop path is constant on the others and
    # absent on the last, as the reference's pre-training blocks; fine-tuning's ramp replaces it
    assert model.num_heads == 4 and all(b.attn.num_heads == 2 for b in model.encoder.blocks)
    assert [b.drop_path1.drop_prob for b in model.encoder.blocks[:-1]] == [0.1, 0.1]
    assert isinstance(model.encoder.blocks[-1].drop_path1, nn.Identity)
    tuned = build("model", dict(type="tinymim", **STUDENT, teacher_block=2, teacher=spec, drop_path_rate=0.2))
    assert [round(b.drop_path1.drop_prob, 3) for b in tuned.encoder.blocks[1:]] == [0.1, 0.2]
    teacher_view, student_view = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 32, 32)
    losses = model({"inputs": torch.stack([teacher_view, student_view], 1)})
    with torch.no_grad():
        t_x = reference_encoder_states(teacher_mae.encoder, teacher_view)[1]  # block 2's input
        t_qk, t_vv = reference_relations(teacher_mae.encoder.blocks[1], t_x, 4)
        s_x = reference_encoder_states(model.encoder, student_view)[2]  # the last block's input
        s_qk, s_vv = reference_relations(model.encoder.blocks[2], s_x, 4)
    assert torch.allclose(losses["qk_kl"], reference_kd_loss(s_qk, t_qk), atol=1e-6)
    assert torch.allclose(losses["vv_kl"], reference_kd_loss(s_vv, t_vv), atol=1e-6)
    assert torch.allclose(losses["loss"], losses["qk_kl"] + losses["vv_kl"])
    # swapping the views changes the loss: the teacher reads the first, the student the second
    swapped = model({"inputs": torch.stack([student_view, teacher_view], 1)})
    assert not torch.allclose(swapped["loss"], losses["loss"])
    with pytest.raises(ValueError, match=r"tinymim trains on view pairs \(B, 2, C, H, W\)"):
        model({"inputs": teacher_view})
    with pytest.raises(ValueError, match="teacher_block must be in 1..3"):
        build("model", dict(type="tinymim", **STUDENT, teacher_block=4, teacher=spec))
    assert model.encode({"inputs": teacher_view}).shape == (3, 17, 32)


def test_the_view_pair_shares_crop_and_flip_and_jitters_the_student_only():
    torch.manual_seed(0)
    image = torch.rand(1, 32, 32)
    rgb = build("transform", dict(type="tinymim_views", size=24, scale=(0.3, 1.0)))
    teacher_rgb, student_rgb = rgb(torch.rand(3, 40, 40))  # RGB photographs: ImageNet statistics
    assert teacher_rgb.shape == student_rgb.shape == (3, 24, 24) and not torch.equal(teacher_rgb, student_rgb)
    # the teacher's view is the un-jittered crop: the same seed gives it without any jitter
    for seed in range(3):
        torch.manual_seed(seed)
        clean = build("transform", dict(type="tinymim_views", size=24, scale=(0.3, 1.0), jitter=(0, 0, 0)))(image)[0]
        torch.manual_seed(seed)
        assert torch.equal(build("transform", dict(type="tinymim_views", size=24, scale=(0.3, 1.0)))(image)[0], clean)
    plain = build("transform", dict(type="tinymim_views", size=24, scale=(0.3, 1.0), flip=True, jitter=(0, 0, 0)))
    pair = plain(image)
    assert pair.shape == (2, 1, 24, 24) and torch.equal(pair[0], pair[1])
    jittered = build("transform", dict(type="tinymim_views", size=24, scale=(0.3, 1.0), flip=True))
    for _ in range(5):
        teacher, student = jittered(image)
        assert not torch.equal(teacher, student)
        # brightness and contrast are increasing maps of a grey level: the same crop and flip keep
        # the pixels' order (up to clamping ties)
        order = teacher.flatten().argsort()
        assert (student.flatten()[order].diff() >= -1e-6).all()


def test_teachers_load_from_the_official_and_maekit_layouts_and_refuse_anything_else(tmp_path):
    from maekit.nn.teachers import image_mae_teacher

    teacher_mae, official = teacher_file(tmp_path, "official")
    _, ours = teacher_file(tmp_path, "maekit")
    for spec in (official, ours):
        loaded = image_mae_teacher(spec, 32, 8, 1, "dmae teacher")
        for key, value in teacher_mae.encoder.state_dict().items():
            assert torch.equal(loaded.module.state_dict()[key], value), key
        assert "sha256" in loaded.source
    with pytest.raises(ValueError, match=r"teacher_official\.safetensors: no 'encoder\.\*' keys"):  # read as maekit's
        image_mae_teacher({**official, "layout": "maekit"}, 32, 8, 1, "dmae teacher")
    with pytest.raises(ValueError, match=r"teacher_official\.safetensors: .*does not fit the teacher"):
        image_mae_teacher({**official, "encoder": dict(TEACHER_ENCODER, depth=2)}, 32, 8, 1, "dmae teacher")
    with pytest.raises(ValueError, match="dmae teacher: unknown key 'checkpiont'"):
        image_mae_teacher({**official, "checkpiont": "x"}, 32, 8, 1, "dmae teacher")
    with pytest.raises(ValueError, match="dmae teacher needs checkpoint=<file>"):
        image_mae_teacher({**official, "checkpoint": None}, 32, 8, 1, "dmae teacher")
    with pytest.raises(ValueError, match="layout must be one of official, maekit"):
        image_mae_teacher({**official, "layout": "timm"}, 32, 8, 1, "dmae teacher")
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "args": object()}, pickled)  # an arbitrary object: never unpickled
    with pytest.raises(Exception, match="pickled.pth"):
        image_mae_teacher({**official, "checkpoint": str(pickled)}, 32, 8, 1, "dmae teacher")


def test_configs_state_the_papers_recipes():
    from maekit.engine import load_config

    dm = load_config("dmae_vit_base_in1k")
    epoch = dm.schedule.iters_per_epoch
    assert dm.schedule.max_iters == 100 * epoch and dm.schedule.warmup_iters == 20 * epoch
    assert dm.model.student_tap == 9 and dm.model.teacher_tap == 18 and dm.model.teacher.size == "large"
    assert 8 * dm.data.batch_size * dm.schedule.accumulate == 4096
    tm = load_config("tinymim_vit_base_in1k")
    epoch = tm.schedule.iters_per_epoch
    assert tm.schedule.max_iters == 300 * epoch and tm.schedule.warmup_iters == 15 * epoch
    assert tm.model.teacher_block == 18 and tm.model.drop_path == 0.1 and tm.find_unused_parameters
    assert tuple(tm.data.transform.jitter) == (0.4, 0.4, 0.4)
    plain = load_config("mae_demo_digits")
    mi = load_config("milan_vit_base_in1k")
    epoch = mi.schedule.iters_per_epoch
    assert mi.schedule.max_iters == 400 * epoch and mi.schedule.warmup_iters == 40 * epoch
    assert 8 * mi.data.batch_size * mi.schedule.accumulate == 4096 and mi.model.teacher.kind == "clip"
    for name in ("dmae_demo_digits", "tinymim_demo_digits", "milan_demo_digits", "mae_student_demo_digits"):
        demo = load_config(name)
        assert {k: demo.schedule[k] for k in plain.schedule} == dict(plain.schedule), name
        assert demo.model.encoder == dict(embed_dim=64, depth=4, num_heads=4), name
        if name != "mae_student_demo_digits":
            assert demo.model.teacher.encoder == plain.model.encoder  # the demo's teacher is core's MAE demo


def tinymim_config(tmp_path, iters: int, batch: int, extra: str = ""):
    """A tiny TinyMIM training config file over a teacher file in maekit's layout."""
    _, spec = teacher_file(tmp_path, "maekit")
    config = tmp_path / "tinymim.py"
    config.write_text(textwrap.dedent(f"""
        model = dict(type="tinymim", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                     in_chans=1, encoder=dict(embed_dim=32, depth=3, num_heads=2), teacher_block=3,
                     teacher=dict(encoder_name="vit_tiny_patch16_224", encoder={TEACHER_ENCODER!r}, layout="maekit",
                                  checkpoint={spec['checkpoint']!r}))
        data = dict(dataset=dict(type="digits", split="test", size=32, channels=1),
                    transform=dict(type="tinymim_views", size=32, scale=(0.35, 1.0), flip=False), batch_size={batch})
        schedule = dict(max_iters={iters}, warmup_iters=1, blr=1e-3)
        checkpoint_interval = {iters}
    """) + extra)
    return config


def test_both_train_from_the_command_line_and_the_demo_runs(tmp_path):
    from maekit_distill.demo import run_distill_demo

    from maekit.cli import main

    config = tinymim_config(tmp_path, iters=2, batch=8)
    result = CliRunner().invoke(main, ["train", str(config), "--work-dir", str(tmp_path / "work"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "iter_2.pth").is_file()
    missing = CliRunner().invoke(main, ["train", str(config), "--work-dir", str(tmp_path / "bad"), "--device", "cpu",
                                        "--cfg-options", "model.teacher.checkpoint=" + str(tmp_path / "gone.pth")])
    assert missing.exit_code != 0 and "Error:" in missing.output and "gone.pth" in missing.output
    # the whole demo at two iterations a model, with a small probe: teacher, DMAE, TinyMIM, MAE student
    probe = dict(train=dict(type="digits", split="test", size=32, channels=1),
                 test=dict(type="digits", split="test", size=32, channels=1), pools=("mean",))
    students = {}
    for name, base in (("dmae", "dmae_demo_digits"), ("tinymim", "tinymim_demo_digits"), ("milan", "milan_demo_digits"),
                       ("mimco", "mimco_demo_digits")):
        from maekit.configs import find_config

        path = tmp_path / f"{name}_small.py"
        path.write_text(f"_base_ = [{str(find_config(base))!r}]\nprobe = {probe!r}\n")
        students[name] = str(path)
    teacher_config = tmp_path / "teacher_small.py"
    from maekit.configs import find_config

    teacher_config.write_text(f"_base_ = [{str(find_config('mae_demo_digits'))!r}]\nprobe = {probe!r}\n")
    metrics = run_distill_demo(tmp_path / "demo", str(teacher_config), max_iters=2, log=lambda *_: None, students=students)
    for name in ("teacher", "dmae", "tinymim", "milan"):
        assert 0 <= metrics[f"{name}_probe_accuracy_pretrained"] <= 1
        assert (tmp_path / "demo" / name / "reconstructions.png").is_file()
    assert (tmp_path / "demo" / "metrics.json").is_file()


def test_tinymim_trains_under_two_process_ddp(tmp_path):
    # the student's last block beyond its relations (and the final norm) gets no gradient, as in
    # the reference: DDP needs find_unused_parameters, which the TinyMIM configs set
    import os
    import subprocess
    import sys

    config = tinymim_config(tmp_path, iters=3, batch=4, extra="find_unused_parameters = True\n")
    script = tmp_path / "run.py"
    script.write_text("import sys\nfrom maekit.engine import train\ntrain(sys.argv[1], sys.argv[2], device='cpu', launcher='pytorch')\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               str(script), str(config), str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "work" / "iter_3.pth").is_file()
