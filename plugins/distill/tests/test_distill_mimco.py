"""MimCo: both contrastive reconstruction terms against direct computations, the teacher's targets
(cls row first, after its final norm) and a MoCo v3 release file as the teacher."""
from __future__ import annotations

import pytest
import torch
from maekit_distill.mimco import ContrastiveReconstructionLoss, mimco
from torch.nn import functional as F

from maekit.model import seeded_noise
from maekit.structures import Mask

STUDENT = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=3,
               encoder=dict(embed_dim=32, depth=2, num_heads=4), decoder_embed_dim=16, decoder_depth=1,
               decoder_num_heads=4)
TEACHER = dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=64, depth=2, num_heads=4))


def moco_v3_file(tmp_path):
    """A file laid out as facebookresearch/moco-v3's release (base and momentum encoders, head, predictor)."""
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                            num_classes=0)
    encoder = {**vit.state_dict(), "head.0.weight": torch.randn(32, 64)}
    state = {**{f"module.base_encoder.{k}": v for k, v in encoder.items()},
             **{f"module.momentum_encoder.{k}": v + 1 for k, v in encoder.items()}}
    path = tmp_path / "vit-s-300ep.pth.tar"
    torch.save({"epoch": 300, "state_dict": state}, path)
    return path, vit


def test_both_terms_are_the_direct_infonce_formulas():
    torch.manual_seed(0)
    batch, tokens, width = 3, 5, 8
    pred, target = torch.randn(batch, 1 + tokens, width), torch.randn(batch, 1 + tokens, width)
    masked = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float)
    mask = Mask(torch.zeros(batch, 1, dtype=torch.long), torch.zeros(batch, tokens, dtype=torch.long), masked)
    out = ContrastiveReconstructionLoss(patch_temperature=0.3, image_temperature=0.5, image_weight=2.0)(pred, target, mask)
    q, k = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    patch_terms = []
    for b in range(batch):
        for i in range(tokens):
            if masked[b, i]:  # its own position among the image's tokens, the rest negatives
                scores = torch.stack([q[b, 1 + i] @ k[b, 1 + j] / 0.3 for j in range(tokens)])
                patch_terms.append(-torch.log_softmax(scores, dim=0)[i])
    patch = torch.stack(patch_terms).mean()
    image = torch.stack([-torch.log_softmax(torch.stack([q[b, 0] @ k[c, 0] / 0.5 for c in range(batch)]), 0)[b]
                         for b in range(batch)]).mean()
    torch.testing.assert_close(out["patch_contrast"], patch)
    torch.testing.assert_close(out["image_contrast"], image)
    torch.testing.assert_close(out["loss"], patch + 2.0 * image)


def test_targets_are_the_teachers_output_of_the_whole_image_cls_first(tmp_path):
    path, vit = moco_v3_file(tmp_path)
    torch.manual_seed(0)
    model = mimco(dict(**TEACHER, checkpoint=str(path)), **STUDENT)
    for key, value in vit.state_dict().items():  # the base encoder of the MoCo v3 file, its head left out
        assert torch.equal(model.target.teacher.module.state_dict()[key], value), key
    images = torch.randn(2, 3, 32, 32)
    out = model.run_steps(images, noise=seeded_noise(0))
    with torch.no_grad():
        expected = vit.forward_features(images)  # timm: cls + every patch, after the final norm
    torch.testing.assert_close(out.target, expected, rtol=1e-4, atol=1e-5)
    assert out.pred.shape == (2, 17, 64)  # the decoder at every position and its cls, at the teacher's width
    losses = model(images)
    losses["loss"].backward()
    assert set(losses) == {"loss", "patch_contrast", "image_contrast"}
    assert not out.target.requires_grad and all(p.grad is None for p in model.target.teacher.parameters())
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None


def test_mimco_needs_a_teacher_file():
    with pytest.raises(ValueError, match="mimco teacher needs checkpoint=<file>"):
        mimco(dict(TEACHER), **STUDENT)


def test_the_default_teacher_is_moco_v3s_twelve_head_vit_small(tmp_path):
    import timm

    vit = timm.create_model("vit_small_patch16_224", img_size=32, num_heads=12, num_classes=0)  # MoCo v3's vits.py
    path = tmp_path / "vit-s-300ep.pth.tar"
    torch.save({"state_dict": {f"module.base_encoder.{k}": v for k, v in vit.state_dict().items()}}, path)
    model = mimco(dict(checkpoint=str(path)), size=None, encoder_name="vit_tiny_patch16_224", img_size=32,
                  encoder=dict(embed_dim=32, depth=1, num_heads=4), decoder_embed_dim=16, decoder_depth=1,
                  decoder_num_heads=4)
    assert model.target.teacher.module.blocks[0].attn.num_heads == 12
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.run_steps(images).target, vit.eval().forward_features(images), rtol=1e-4, atol=1e-5)


def test_the_loss_refuses_predictions_without_the_cls_row():
    mask = Mask(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(ValueError, match="reads the cls row"):
        ContrastiveReconstructionLoss()(torch.randn(2, 4, 8), torch.randn(2, 4, 8), mask)
