"""SiamMAE (frame pairs, the cross-self decoder and its ablations) and label propagation with
DAVIS-2017's J&F, on small sequences written here in DAVIS's on-disk layout."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from maekit_video.propagation import (
    PropagationSettings,
    boundary_f_measure,
    boundary_map,
    davis_scores,
    evaluate_propagation,
    propagate_labels,
    propagate_sequence,
    read_davis,
    region_similarity,
)
from maekit_video.siammae import siammae
from PIL import Image

from maekit.nn.attention import CrossAttentionBlock


def tiny_siammae(architecture: str = "cross_self", **options):
    torch.manual_seed(0)
    return siammae(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
                   encoder=dict(embed_dim=64, depth=2, num_heads=4), decoder_embed_dim=32, decoder_depth=2,
                   decoder_num_heads=4, architecture=architecture, **options)


def test_the_future_frame_is_predicted_from_the_whole_past_frame():
    model = tiny_siammae().eval()
    pair = torch.randn(2, 3, 2, 32, 32)
    out = model.run_steps(pair)
    assert out.mask.masked.shape == (2, 64) and int(out.mask.masked[0].sum()) == 64 - int(64 * (1 - 0.95))
    assert out.latents.shape == (2, 1 + 3, 64)  # cls + the 3 kept future patches
    # the target is the future frame's norm-pix, so the past frame changes only the prediction
    other_past = pair.clone()
    other_past[:, :, 0] = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    first, second = model.run_steps(pair, noise=lambda *_: noise), model.run_steps(other_past, noise=lambda *_: noise)
    assert torch.equal(first.target, second.target) and not torch.allclose(first.pred, second.pred)
    # while the future frame's removed patches never reach the encoder
    hidden = pair.clone()
    removed = first.mask.masked[0].view(8, 8).repeat_interleave(4, 0).repeat_interleave(4, 1).bool()
    hidden[0, :, 1][:, removed] = 5.0
    assert torch.allclose(model.run_steps(hidden, noise=lambda *_: noise).pred[0], first.pred[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"frame pairs \(B, C, 2, H, W\)"):
        model.run_steps(torch.randn(2, 3, 4, 32, 32))


def test_decoder_blocks_in_the_cross_self_order_and_the_ablations():
    cross_self = tiny_siammae().decoder.blocks[0]
    assert cross_self.order == ("cross", "self", "mlp") and cross_self.norm_first
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    expected = x + cross_self.cross_attn(cross_self.norm_query(x), cross_self.norm_context(context))
    expected = expected + cross_self.attn(cross_self.norm1(expected))
    expected = expected + cross_self.mlp(cross_self.norm2(expected))
    assert torch.allclose(cross_self(x, context), expected, atol=1e-6)
    assert not hasattr(tiny_siammae("cross").decoder.blocks[0], "attn")  # cross-only: no self-attention
    post = CrossAttentionBlock(32, 4, order=("cross", "mlp", "self"), norm_first=False)  # CropMAE's block
    expected = post.norm_query(x + post.cross_attn(x, context))
    expected = post.norm2(expected + post.mlp(expected))
    assert torch.allclose(post(x, context), post.norm1(expected + post.attn(expected)), atol=1e-6)
    with pytest.raises(ValueError, match="block order"):
        CrossAttentionBlock(32, 4, order=("self", "mlp"))
    # the joint ablation: one encoder pass over past + visible future, loss on the future
    joint = tiny_siammae("joint")
    out = joint.run_steps(torch.randn(2, 3, 2, 32, 32))
    assert out.latents.shape == (2, 1 + 64 + 3, 64) and out.pred.shape == (2, 64, 48)
    for architecture in ("cross_self", "cross", "joint"):
        losses = tiny_siammae(architecture)(torch.randn(2, 3, 2, 32, 32))
        losses["loss"].backward()
    with pytest.raises(ValueError, match="architecture must be one of"):
        tiny_siammae("siamese")
    with pytest.raises(ValueError, match="has no self-attention"):
        tiny_siammae("cross", block_order=("cross", "self", "mlp"))
    with pytest.raises(ValueError, match="joint architecture"):
        tiny_siammae("joint", norm_first=False)


# -- propagation and J&F ------------------------------------------------------------------------

class ColourFeatures(torch.nn.Module):
    """A stand-in encoder whose patch feature is the patch's mean colour and a constant: patches
    of one colour match exactly, so where propagation must send each label is known."""

    def __init__(self, patch: int = 4) -> None:
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.patch_size, self.encoder.num_prefix_tokens = (patch, patch), 1
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.patch = patch

    def encode(self, batch):
        x = batch["inputs"]
        means = torch.nn.functional.avg_pool2d(x, self.patch).flatten(2).transpose(1, 2)  # B, N, 3
        tokens = torch.cat([means, torch.ones_like(means[..., :1])], -1)
        return torch.cat([torch.zeros_like(tokens[:, :1]), tokens], 1)


def write_davis_sequence(root, name="square", frames=6, size=(32, 48)):
    """A red 8×8 square moving 4 pixels right per frame on grey, JPEG frames and palette-PNG
    annotations (object 1) in DAVIS-2017's layout."""
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(f"{name}\n")
    for t in range(frames):
        image = np.full((*size, 3), 128, np.uint8)
        labels = np.zeros(size, np.uint8)
        image[8:16, 4 + 4 * t:12 + 4 * t] = (220, 30, 30)
        labels[8:16, 4 + 4 * t:12 + 4 * t] = 1
        for folder, picture in (("JPEGImages", Image.fromarray(image)), ("Annotations", Image.fromarray(labels, "P"))):
            path = root / folder / "480p" / name / f"{t:05d}.{'jpg' if folder == 'JPEGImages' else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if folder == "Annotations":
                picture.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
            picture.save(path, quality=95)
    return root


def test_propagation_follows_a_moving_object_in_a_davis_folder(tmp_path):
    root = write_davis_sequence(tmp_path / "davis")
    [sequence] = read_davis(root)
    result = propagate_sequence(ColourFeatures(), sequence, size=(32, 48), out_dir=tmp_path / "out",
                                mean=(0, 0, 0), std=(1, 1, 1))
    # every frame: the square moved on, less its four corner pixels (the patch-level map is
    # resized bilinearly, which rounds a corner of patches to 0.625² < 0.5)
    for t, predicted in enumerate(result["predicted"]):
        expected = np.zeros((32, 48), np.uint8)
        expected[8:16, 4 + 4 * t:12 + 4 * t] = 1
        expected[[8, 8, 15, 15], [4 + 4 * t, 11 + 4 * t, 4 + 4 * t, 11 + 4 * t]] = 0
        assert np.array_equal(predicted, expected), t
    assert result["J"] == 60 / 64 and result["F"] == 1.0 and result["J&F"] == (60 / 64 + 1) / 2
    written = Image.open(tmp_path / "out" / "square" / "00003.png")
    assert written.mode == "P" and np.array_equal(np.array(written), result["predicted"][3])
    # a sequence annotated on its first frame only (DAVIS test-dev, one's own video): the same
    # masks, written, and no score rather than a wrong one
    for path in sorted((root / "Annotations" / "480p" / "square").glob("*.png"))[1:]:
        path.unlink()
    [first_only] = read_davis(root)
    alone = propagate_sequence(ColourFeatures(), first_only, size=(32, 48), out_dir=tmp_path / "test_dev",
                               mean=(0, 0, 0), std=(1, 1, 1))
    assert alone["J&F"] is None and np.array_equal(alone["predicted"], result["predicted"])
    assert np.array_equal(np.array(Image.open(tmp_path / "test_dev" / "square" / "00003.png")), result["predicted"][3])
    overall = evaluate_propagation(ColourFeatures(), [first_only], size=(32, 48))
    assert overall["J&F"] is None and overall["unscored"] == ["square"] and overall["objects"] == 0
    with pytest.raises(ValueError, match="ImageSets/2017/test.txt: not found"):
        read_davis(root, split="test")
    with pytest.raises(ValueError, match="no .jpg frames for sequence 'gone'"):
        read_davis(root, sequences=["gone"])
    from maekit_video.model import videomae

    clip_model = videomae(size=None, encoder=dict(embed_dim=32, depth=1, num_heads=2), num_frames=4, img_size=32,
                          patch_size=8, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    with pytest.raises(ValueError, match="label propagation encodes single frames; VideoMAE's VideoViTEncoder"):
        propagate_sequence(clip_model, sequence, size=(32, 48))


def test_propagation_is_the_top_k_softmax_over_first_and_recent_frames():
    """One frame's labels against a direct computation of the rule: first frame read everywhere,
    the others within the radius only, joint top-k of affinity / temperature, softmax."""
    torch.manual_seed(0)
    frames, h, w, dim, labels = 5, 3, 4, 8, 3
    features = torch.nn.functional.normalize(torch.randn(frames, h, w, dim), dim=-1)
    first = torch.rand(labels, h, w)
    settings = PropagationSettings(topk=4, radius=1.5, context=2, temperature=0.5)
    soft = propagate_labels(features, first, settings)
    # frame 2 reads frames 0 (first), 0 and 1; frame 1's labels are its own propagated ones
    context, maps = [0, 0, 1], {0: first.flatten(1), 1: soft[1].flatten(1)}
    places = [(r, c) for r in range(h) for c in range(w)]
    for query in range(h * w):
        scored = []
        for slot, frame in enumerate(context):
            for key in range(h * w):
                if slot and math.dist(places[key], places[query]) >= settings.radius:
                    continue
                affinity = float(features[frame].flatten(0, 1)[key] @ features[2].flatten(0, 1)[query])
                scored.append((affinity / settings.temperature, maps[frame][:, key]))
        best = sorted(scored, key=lambda item: -item[0])[: settings.topk]
        weights = torch.tensor([score for score, _ in best]).softmax(0)
        expected = sum(weight * label for weight, (_, label) in zip(weights, best))
        assert torch.allclose(soft[2].flatten(1)[:, query], expected, atol=1e-5)


def test_j_and_f_as_davis_computes_them():
    square = np.zeros((20, 20), bool)
    square[5:10, 5:10] = True
    shifted = np.roll(square, 2, axis=1)
    assert region_similarity(square, shifted) == pytest.approx(15 / 35)
    assert region_similarity(np.zeros_like(square), np.zeros_like(square)) == 1.0
    # seg2bmap marks the pixels whose east / south / south-east neighbour differs
    boundary = boundary_map(square)
    assert boundary[4:10, 4:10].sum() == boundary.sum() and not boundary[6:9, 6:9].any()
    assert boundary_f_measure(square, square) == 1.0
    # tolerance ceil(0.008 · diagonal) = 1 pixel here: a 2-pixel shift leaves only the rows matching
    far = np.roll(square, 5, axis=1)
    assert boundary_f_measure(square, far) < boundary_f_measure(square, shifted) < 1.0
    assert boundary_f_measure(np.zeros_like(square), square) == 0.0
    assert boundary_f_measure(np.zeros_like(square), np.zeros_like(square)) == 1.0
    truth = np.stack([square.astype(np.uint8)] * 4)
    prediction = truth.copy()
    prediction[1] = shifted  # frame 1 scored, frames 0 and 3 (first, last) not
    prediction[3] = 0
    [scores] = davis_scores(prediction, truth)
    assert scores["J"] == pytest.approx((15 / 35 + 1) / 2)
    with pytest.raises(ValueError, match="3 or more"):
        davis_scores(truth[:2], truth[:2])


# -- commands and demo ------------------------------------------------------------------------

def test_a_user_pretrains_on_a_video_folder_and_propagates_on_a_davis_folder(tmp_path):
    import json

    from maekit_video.io import write_video
    from test_video_plugin import CONFIGS, maekit

    for n in range(4):  # a folder of real videos, no list: SiamMAE needs no labels
        frames = np.zeros((12, 32, 32, 3), np.uint8)
        for t in range(12):
            frames[t, 8:16, 2 * t + n:2 * t + n + 6] = 255
        write_video(tmp_path / "videos" / f"clip{n}.mp4", frames, fps=10)
    config = tmp_path / "my_siammae.py"
    config.write_text(f"""_base_ = [{str(CONFIGS / 'siammae_demo_moving_digits.py')!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
data = dict(dataset=dict(_delete_=True, type="video_folder", root={str(tmp_path / 'videos')!r},
                         clip=dict(sampling="pair", min_gap=2, max_gap=6)), batch_size=2, num_workers=0)
schedule = dict(max_iters=2, warmup_iters=0)
checkpoint_interval = 2
propagation = dict(size=(32, 48))
""")
    maekit("train", str(config), "--work-dir", str(tmp_path / "pretrain"), "--device", "cpu")
    davis = write_davis_sequence(tmp_path / "davis")
    printed = maekit("video-propagate", str(config), "--davis", str(davis), "--checkpoint",
                     str(tmp_path / "pretrain" / "iter_2.pth"), "--out", str(tmp_path / "masks"))
    metrics = json.loads((tmp_path / "masks" / "metrics.json").read_text())
    assert 0 <= metrics["J&F"] <= 1 and metrics["sequences"][0]["sequence"] == "square" and "square: J&F" in printed.stdout
    assert metrics["settings"] == dict(topk=7, radius=20, context=20, temperature=0.7, size=[32, 48])
    assert len(list((tmp_path / "masks" / "square").glob("*.png"))) == 6
    failed = maekit("video-propagate", str(config), "--davis", str(davis), "propagation.topk=0", check=False)
    assert failed.returncode == 1 and failed.stderr.startswith("Error: propagation topk must be a positive int, got 0")
    # the other settings' errors, in process (each CLI call costs a torch import)
    from maekit_video.propagation import propagation_options

    with pytest.raises(ValueError, match="propagation: unknown key 'top_k'"):
        propagation_options({"top_k": 3})
    with pytest.raises(ValueError, match=r"propagation.size must be \(height, width\)"):
        propagation_options({"size": 480})
    with pytest.raises(ValueError, match="ImageSets/2017/train.txt: not found"):
        read_davis(davis, split="train")


def test_siammae_demo_pretrains_propagates_digit_masks_and_draws_them(tmp_path):
    from maekit_video.demo import run_siammae_demo
    from test_video_plugin import CONFIGS

    config = tmp_path / "small_demo.py"
    config.write_text(f"""_base_ = [{str(CONFIGS / 'siammae_demo_moving_digits.py')!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1)
data = dict(dataset=dict(count=120), batch_size=4, num_workers=0)
""")
    metrics = run_siammae_demo(tmp_path / "out", config=str(config), max_iters=2, sequences=3, log=lambda *_: None)
    assert metrics["sequences"] == 3 and metrics["iterations"] == 2
    for name in ("pretrained", "random_init"):
        assert 0 < metrics[f"propagation_jf_{name}"] <= 1
        assert len(list((tmp_path / "out" / f"masks_{name}").glob("*/*.png"))) == 3 * 16
    assert Image.open(tmp_path / "out" / "propagation.png").size[0] > 32 * 4 * 6
    assert (tmp_path / "out" / "reconstructions.png").is_file() and (tmp_path / "out" / "metrics.json").is_file()
