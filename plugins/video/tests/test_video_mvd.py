"""MVD: the student's space-time table, teachers loaded strictly from files in their official
layouts (and this toolkit's own), the two feature targets and the SmoothL1 terms, against
independent computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from maekit_video.model import spacetime_sincos_table, videomae
from maekit_video.mvd import mvd
from test_video_plugin import official_pretrain_state

from maekit.io.checkpoint import save_state_dict
from maekit.io.convert import maekit_to_official
from maekit.methods.mae import mae
from maekit.nn.patchify import patchify

VIDEO = dict(num_frames=4, img_size=32, patch_size=8, tubelet_size=2)


def reference_3d_table(embed_dim: int, grid_size: int, t_size: int) -> np.ndarray:
    """ruiwang2021/mvd modeling_finetune.get_3d_sincos_pos_embed, transcribed (np.float → float64)."""
    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64)
        omega /= dim / 2.0
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    spatial_dim, temporal_dim = embed_dim // 4 * 3, embed_dim // 4
    grid = np.stack(np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32)), axis=0)
    grid = grid.reshape([2, 1, grid_size, grid_size])
    spatial = np.concatenate([one_d(spatial_dim // 2, grid[0]), one_d(spatial_dim // 2, grid[1])], axis=1)
    temporal = one_d(temporal_dim, np.arange(t_size, dtype=np.float32))
    temporal = np.repeat(temporal[:, np.newaxis, :], grid_size ** 2, axis=1)
    spatial = np.repeat(spatial[np.newaxis, :, :], t_size, axis=0)
    return np.concatenate([temporal, spatial], axis=-1).reshape([-1, embed_dim])


def test_student_table_is_mvds_3d_sincos_bit_for_bit():
    ours = spacetime_sincos_table((8, 14, 14), 384)[0]
    reference = torch.from_numpy(reference_3d_table(384, 14, 8)).float()
    assert torch.equal(ours, reference)
    with pytest.raises(ValueError, match="divisible by 16"):
        spacetime_sincos_table((2, 2, 2), 40)


def teacher_files(tmp_path):
    """An image MAE saved in the MAE reference's layout and a VideoMAE in VideoMAE's official
    pre-training layout (``model`` wrapper, ``module.`` prefix), as the papers' teachers ship."""
    torch.manual_seed(1)
    image = mae(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                encoder=dict(embed_dim=48, depth=2, num_heads=3), decoder_embed_dim=16, decoder_depth=1,
                decoder_num_heads=2)
    image_file = save_state_dict(maekit_to_official(image.state_dict()), tmp_path / "mae_pretrain.safetensors")
    video = videomae(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
                     decoder_num_heads=2, **VIDEO)
    torch.save({"model": {f"module.{k}": v for k, v in official_pretrain_state(video).items()}}, tmp_path / "videomae.pth")
    return image, image_file, video, tmp_path / "videomae.pth"


def tiny_mvd(image_file, video_file, **options):
    torch.manual_seed(0)
    return mvd(dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=48, depth=2, num_heads=3),
                    checkpoint=str(image_file)),
               dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), checkpoint=str(video_file)),
               size=None, encoder=dict(embed_dim=64, depth=2, num_heads=4), **VIDEO, **options)


def test_teachers_load_from_official_layouts_and_targets_are_their_last_blocks(tmp_path):
    image, image_file, video, video_file = teacher_files(tmp_path)
    model = tiny_mvd(image_file, video_file)
    teachers = model.target.parts
    for ours, theirs in ((teachers["image"].teacher.module, image.encoder), (teachers["video"].teacher.module, video.encoder)):
        for name, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[name], value), name
    clip = torch.randn(2, 3, 4, 32, 32)
    tokens = model.tokenize(clip)
    target = model.make_target(tokens, clip)
    # image teacher: frames 0 and 2 as images, patchified as MAE does, last block before the norm, cls dropped
    frames = clip[:, :, ::2].transpose(1, 2).reshape(4, 3, 32, 32)
    image_tokens = image.tokenize(frames)
    assert torch.equal(image_tokens.values, patchify(frames, (8, 8)))
    expected = image.encoder.forward_intermediates(image_tokens, [-1]).features[2][:, 1:]
    assert torch.allclose(target["image"], expected.reshape(2, 2 * 16, 48), atol=1e-5)
    # video teacher: the whole clip, last block before the norm
    expected = video.encoder.forward_intermediates(video.tokenize(clip), [-1]).features[2]
    assert torch.allclose(target["video"], expected, atol=1e-5)
    assert not torch.allclose(target["video"], video.encoder(video.tokenize(clip)), atol=1e-3)  # not after the norm


def test_loss_is_smooth_l1_of_removed_cubes_one_to_one_and_teachers_stay_frozen(tmp_path):
    from maekit.engine.optim import NoDecayOptimWrapperConstructor

    _, image_file, _, video_file = teacher_files(tmp_path)
    model = tiny_mvd(image_file, video_file)
    clip = torch.randn(2, 3, 4, 32, 32)
    noise = torch.rand(2, 16)
    out = model.run_steps(clip, noise=lambda *_: noise)
    assert out.mask.masked.sum(1).tolist() == [2 * 14, 2 * 14]  # tube 0.9 of 16 places, 2 time slices
    removed = out.mask.masked.bool()
    expected = sum(torch.nn.functional.smooth_l1_loss(out.pred[part][removed], out.target[part][removed], beta=1.0)
                   for part in ("image", "video"))
    losses = model(clip, noise=lambda *_: noise)
    assert torch.allclose(losses["loss"], expected, atol=1e-6)
    assert set(losses) >= {"image_feature_loss", "video_feature_loss"}
    losses["loss"].backward()
    assert all(p.grad is None for p in model.target.parameters())
    constructor = NoDecayOptimWrapperConstructor(dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3)))
    in_groups = {id(p) for group in constructor(model).optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in in_groups for p in model.target.parameters())
    assert model.decoder.image.mask_token is not model.decoder.video.mask_token
    assert len(model.decoder.image.blocks) == 2 and model.decoder.image.embed.out_features == 64
    # the reference passes the student's drop path to its decoders too: 0 … rate over their depth
    dropping = tiny_mvd(image_file, video_file, drop_path_rate=0.1)
    assert [float(getattr(b.drop_path1, "drop_prob", 0.0)) for b in dropping.decoder.video.blocks] == [0.0, pytest.approx(0.1)]
    # an exported student (encoder only) evaluates: the frozen teachers come from their own files
    from maekit.eval.probe import load_trained_model

    exported = save_state_dict({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}, tmp_path / "student.safetensors")
    spec = dict(type="mvd", image_teacher=dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=48, depth=2, num_heads=3),
                                               checkpoint=str(image_file)),
                video_teacher=dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), checkpoint=str(video_file)),
                size=None, encoder=dict(embed_dim=64, depth=2, num_heads=4), **VIDEO)
    loaded = load_trained_model(spec, exported)
    assert torch.equal(loaded.encoder.blocks[1].mlp.fc1.weight, model.encoder.blocks[1].mlp.fc1.weight)


def test_teachers_from_this_toolkits_runs_and_clear_errors(tmp_path):
    image, _, video, _ = teacher_files(tmp_path)
    image_file = save_state_dict(image.state_dict(), tmp_path / "mine_mae.safetensors")
    video_file = save_state_dict(video.state_dict(), tmp_path / "mine_videomae.safetensors")
    model = mvd(dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=48, depth=2, num_heads=3),
                     checkpoint=str(image_file), layout="maekit"),
                dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), checkpoint=str(video_file),
                     layout="maekit"),
                size=None, encoder=dict(embed_dim=64, depth=1, num_heads=4), **VIDEO)
    assert torch.equal(model.target.parts["video"].teacher.module.blocks[1].attn.q_bias, video.encoder.blocks[1].attn.q_bias)
    with pytest.raises(ValueError, match="needs checkpoint=<file>"):
        mvd(dict(size="base"), dict(size="base", checkpoint=str(video_file)), size=None,
            encoder=dict(embed_dim=64, depth=1, num_heads=4), **VIDEO)
    with pytest.raises(ValueError, match="unknown key 'chekpoint'"):
        mvd(dict(size="base", chekpoint="x"), dict(checkpoint=str(video_file)), size=None,
            encoder=dict(embed_dim=64, depth=1, num_heads=4), **VIDEO)
    with pytest.raises(ValueError, match=r"videomae.pth: unexpected key 'encoder\.patch_embed\.proj\.weight'"):
        mvd(dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=48, depth=2, num_heads=3),
                 checkpoint=str(tmp_path / "videomae.pth")),  # the VideoMAE file given as the image teacher
            dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), checkpoint=str(video_file), layout="maekit"),
            size=None, encoder=dict(embed_dim=64, depth=1, num_heads=4), **VIDEO)
    with pytest.raises(ValueError, match="mine_mae.safetensors: does not fit the teacher"):  # an image file as video teacher
        mvd(dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=48, depth=2, num_heads=3),
                 checkpoint=str(image_file), layout="maekit"),
            dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), checkpoint=str(image_file), layout="maekit"),
            size=None, encoder=dict(embed_dim=64, depth=1, num_heads=4), **VIDEO)


def test_mvd_demo_trains_both_teachers_then_the_student_and_probes_all_three(tmp_path):
    from maekit_video.demo import run_mvd_demo
    from test_video_plugin import CONFIGS

    small = "dict(embed_dim=32, depth=1, num_heads=2)"
    few = 'dict(type="video_demo_moving_digits", count=120'
    (tmp_path / "image.py").write_text(f"""_base_ = [{str(CONFIGS / 'mvd_demo_image_teacher.py')!r}]
model = dict(encoder={small}, decoder_depth=1)
data = dict(batch_size=4)
""")
    clips = f"""data = dict(dataset={few}, split="train"), batch_size=4, num_workers=0)
probe = dict(train={few}, split="train", train=False), test={few}, split="test"))
"""
    (tmp_path / "video.py").write_text(f"""_base_ = [{str(CONFIGS / 'videomae_demo_moving_digits.py')!r}]
model = dict(encoder={small}, decoder_depth=1)
{clips}""")
    (tmp_path / "student.py").write_text(f"""_base_ = [{str(CONFIGS / 'mvd_demo_moving_digits.py')!r}]
model = dict(encoder={small}, image_teacher=dict(encoder={small}), video_teacher=dict(encoder={small}))
{clips}""")
    metrics = run_mvd_demo(tmp_path / "out", config=str(tmp_path / "student.py"), max_iters=2, log=lambda *_: None,
                           image_teacher_config=str(tmp_path / "image.py"), video_teacher_config=str(tmp_path / "video.py"))
    for name in ("pretrained", "random_init", "videomae_teacher"):
        assert 0 <= metrics[f"probe_accuracy_{name}"] <= 1 and 0 <= metrics[f"knn_accuracy_{name}"] <= 1
    assert metrics["iterations"] == 2 and (tmp_path / "out" / "work" / "iter_2.pth").is_file()
    assert metrics["teachers"]["video"].endswith("video_teacher/work/iter_2.pth")
