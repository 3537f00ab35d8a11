"""MILAN against transcriptions of zejiangh/MILAN's ``models_milan.py`` on fixed weights: the
prompting decoder, the loss, the semantic-aware masking law; CLIP's targets and importance against
open_clip's own forward and a direct computation from its weights; the TorchScript file refused.
Run alone with: MAEKIT_PLUGINS=maekit-distill python -m pytest plugins/distill/tests"""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from test_distill_dmae_tinymim import reference_encoder_states, teacher_file

from maekit.io.checkpoint import save_state_dict
from maekit.model import seeded_noise
from maekit.registry import build
from maekit.structures import Tokens

STUDENT = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=1,
               encoder=dict(embed_dim=32, depth=2, num_heads=2), decoder_embed_dim=16, decoder_depth=2,
               decoder_num_heads=2)


def reference_attention_fordecoder(attn, x, fix, ids_restore):
    """``Attention_fordecoder.forward``, transcribed (its ``q`` / ``kv`` / ``proj`` are our
    ``query`` / ``key_value`` / ``proj``)."""
    heads = attn.num_heads
    x_ = torch.cat([fix[:, 1:, :], x], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[-1]))
    x_ = torch.cat([fix[:, :1, :], x_], dim=1)
    batch, length, channels = x_.shape
    q = attn.query(x).reshape(batch, x.shape[1], heads, channels // heads).permute(0, 2, 1, 3)
    kv = attn.key_value(x_).reshape(batch, length, 2, heads, channels // heads).permute(2, 0, 3, 1, 4)
    weights = ((q @ kv[0].transpose(-2, -1)) * (channels // heads) ** -0.5).softmax(dim=-1)
    return attn.proj((weights @ kv[1]).transpose(1, 2).reshape(batch, x.shape[1], channels))


def reference_forward_decoder(decoder, x, ids_restore, ids_keep, ids_dump):
    """``forward_decoder`` with ``Block_fordecoder``, transcribed."""
    x = decoder.embed(x)
    mask_tokens = decoder.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1) + decoder.pos_embed
    fix = torch.cat([x[:, :1, :], torch.gather(x[:, 1:, :], 1, ids_keep.unsqueeze(-1).repeat(1, 1, x.shape[-1]))], dim=1)
    x = torch.gather(x[:, 1:, :], 1, ids_dump.unsqueeze(-1).repeat(1, 1, x.shape[-1]))
    for blk in decoder.blocks:
        x = x + reference_attention_fordecoder(blk.attn, blk.norm1(x), fix, ids_restore)
        x = x + blk.mlp(blk.norm2(x))
    x_ = torch.cat([fix[:, 1:, :], x], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[-1]))
    return decoder.pred(decoder.norm(torch.cat([fix[:, :1, :], x_], dim=1)))


def reference_loss(pred, teacher):
    pred = pred / pred.norm(dim=2, keepdim=True)
    teacher = teacher / teacher.norm(dim=2, keepdim=True)
    return (2 - 2 * (pred * teacher).sum(dim=-1)).mean()


def test_milan_pass_matches_the_reference_decoder_loss_and_mae_stand_in_teacher(tmp_path):
    torch.manual_seed(0)
    teacher_mae, spec = teacher_file(tmp_path)
    model = build("model", dict(type="milan", **STUDENT, teacher=dict(kind="mae", **spec))).eval()
    images = torch.randn(3, 1, 32, 32)
    out = model.run_steps({"inputs": images}, noise=seeded_noise(3))
    losses = model({"inputs": images}, noise=seeded_noise(3))
    mask, keep = out.mask, out.mask.ids_keep.shape[1]
    assert keep == 4 and out.pred.shape == (3, 17, 48) and out.target.shape == (3, 17, 48)  # class token included
    ids_shuffle = torch.argsort(mask.ids_restore, dim=1)
    with torch.no_grad():
        expected = reference_forward_decoder(model.decoder, out.latents, mask.ids_restore, ids_shuffle[:, :keep],
                                             ids_shuffle[:, keep:])
        # the stand-in teacher: the file's MAE encoder, final norm over every token; its last block's
        # class-token attention (heads averaged) is the importance
        states = reference_encoder_states(teacher_mae.encoder, images)
        targets = teacher_mae.encoder.norm(states[-1])
        last = teacher_mae.encoder.blocks[-1]
        x = last.norm1(states[-2])
        q, k, _ = last.attn.qkv(x).reshape(3, 17, 3, 4, 12).permute(2, 0, 3, 1, 4)
        importance = (q @ k.transpose(-2, -1) * 12 ** -0.5).softmax(-1).mean(1)[:, 0, 1:]
        _, ours = model.target(model.tokenize({"inputs": images}), {"inputs": images})
    assert torch.allclose(out.pred, expected, atol=1e-5)
    assert torch.allclose(out.target, targets, atol=1e-5) and torch.allclose(ours, importance, atol=1e-6)
    assert torch.allclose(losses["loss"], reference_loss(out.pred, out.target), atol=1e-6)
    panels = model.panels(images, (0.5,), (0.5,))  # input | what stays visible | importance
    assert len(panels) == 3 and len(panels[0]) == 3 and panels[0][2].shape == (32, 32, 3)
    # the pass masks by the teacher's importance: the same noise through the masker alone gives its mask
    from maekit_distill.milan import ImportanceMasker

    tokens = model.tokenize({"inputs": images})
    alone = ImportanceMasker(0.75)(replace(tokens, meta={**tokens.meta, "importance": importance}), noise=seeded_noise(3))
    assert torch.equal(alone.ids_keep, mask.ids_keep)
    model.train()
    model({"inputs": images})["loss"].backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert model.decoder.blocks[0].attn.query.weight.grad is not None


def test_importance_sampling_has_the_law_of_torchs_multinomial_without_replacement():
    from maekit_distill.milan import ImportanceMasker

    importance = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    draws = 20000
    tokens = Tokens(torch.zeros(draws, 4, 1), torch.zeros(draws, 4, 2), {"importance": importance.expand(draws, -1)})
    masker = ImportanceMasker(mask_ratio=0.5)
    mask = masker(tokens, noise=torch.rand(draws, 4, generator=torch.Generator().manual_seed(0)))
    assert mask.ids_keep.shape == (draws, 2) and int(mask.masked.sum(1).unique()) == 2
    torch.manual_seed(1)
    reference = torch.multinomial(importance.expand(draws, -1), 4, replacement=False)[:, :2]
    for pair in itertools.permutations(range(4), 2):  # ordered first and second picks
        ours = (mask.ids_keep == torch.tensor(pair)).all(1).float().mean()
        theirs = (reference == torch.tensor(pair)).all(1).float().mean()
        assert abs(float(ours - theirs)) < 0.015, (pair, float(ours), float(theirs))
    first = torch.bincount(mask.ids_keep[:, 0], minlength=4).float() / draws
    assert torch.allclose(first, importance[0], atol=0.015)  # the first kept patch ∝ importance
    with pytest.raises(ValueError, match=r"needs tokens.meta\['importance'\]"):
        masker(Tokens(torch.zeros(1, 4, 1), torch.zeros(1, 4, 2), {}))
    for bad, message in ((torch.tensor([[0.1, float("nan"), 0.3, 0.4]]), "finite and non-negative"),
                         (torch.tensor([[0.1, -0.2, 0.3, 0.4]]), "finite and non-negative"),
                         (torch.ones(1, 3), r"importance must be \(batch, tokens\)")):
        with pytest.raises(ValueError, match=message):
            masker(Tokens(torch.zeros(1, 4, 1), torch.zeros(1, 4, 2), {"importance": bad}))


def tiny_open_clip(tmp_path):
    import open_clip

    open_clip.factory._MODEL_CONFIGS["maekit-tiny-quickgelu"] = dict(
        embed_dim=24, quick_gelu=True, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=8),
        text_cfg=dict(context_length=8, vocab_size=64, width=16, heads=2, layers=1))
    torch.manual_seed(2)
    clip = open_clip.create_model("maekit-tiny-quickgelu", pretrained=None)
    return clip, save_state_dict(clip.state_dict(), tmp_path / "clip.safetensors")  # open_clip's own names


def test_clip_targets_are_ln_post_then_proj_of_every_token_and_importance_its_cls_attention(tmp_path):
    clip, path = tiny_open_clip(tmp_path)
    model = build("model", dict(type="milan", **{**STUDENT, "in_chans": 3},
                                teacher=dict(kind="clip", checkpoint=str(path), model_name="maekit-tiny-quickgelu")))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        targets, importance = model.target(model.tokenize({"inputs": images}), {"inputs": images})
        visual = clip.visual.eval()
        visual.output_tokens = True
        pooled, tokens = visual(images)  # open_clip's forward: pooled class token (projected), ln_post'ed tokens
        # the last block's attention straight from its weights (in_proj of ln_1 of its input)
        x = visual.ln_pre(torch.cat([visual.class_embedding.expand(2, 1, -1),
                                     visual.conv1(images).flatten(2).transpose(1, 2)], 1) + visual.positional_embedding)
        x = visual.transformer.resblocks[0](x)
        last = visual.transformer.resblocks[1]
        q, k, _ = (last.ln_1(x) @ last.attn.in_proj_weight.T + last.attn.in_proj_bias).chunk(3, dim=-1)
        q, k = (t.reshape(2, 17, 4, 8).transpose(1, 2) for t in (q, k))
        expected = (q @ k.transpose(-2, -1) / 8 ** 0.5).softmax(-1).mean(1)[:, 0, 1:]
    assert targets.shape == (2, 17, 24)
    assert torch.allclose(targets[:, 0], pooled, atol=1e-5) and torch.allclose(targets[:, 1:], tokens @ visual.proj, atol=1e-5)
    assert torch.allclose(importance, expected, atol=1e-6)
    assert model({"inputs": images})["loss"].isfinite()


def test_clip_teachers_come_from_state_dicts_only(tmp_path):
    from maekit_distill.milan import load_open_clip_visual

    _, path = tiny_open_clip(tmp_path)
    scripted = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    with pytest.raises(ValueError, match="ViT-B-16.pt: a TorchScript archive"):
        load_open_clip_visual(scripted, "maekit-tiny-quickgelu")
    with pytest.raises(ValueError, match="does not fit the teacher"):  # the CLIP file read as another tower
        load_open_clip_visual(path, "ViT-B-16-quickgelu")
    teacher = load_open_clip_visual(path, "maekit-tiny-quickgelu")
    assert teacher.mode == "frozen" and "sha256" in teacher.source  # a Teacher: frozen, its file recorded
    with pytest.raises(ValueError, match=r"patch grid differs from the student's \(2, 2\)"):
        build("model", dict(type="milan", **{**STUDENT, "in_chans": 3, "patch_size": 16},
                            teacher=dict(kind="clip", checkpoint=str(path), model_name="maekit-tiny-quickgelu")))
    for bad, message in ((dict(kind="clip"), "milan teacher needs checkpoint"),
                         (dict(kind="clip", checkpoint=str(path), layers=2), "milan teacher: unknown key 'layers'"),
                         (dict(kind="siglip", checkpoint=str(path)), "kind must be 'clip' or 'mae'")):
        with pytest.raises(ValueError, match=message):
            build("model", dict(type="milan", **{**STUDENT, "in_chans": 3}, teacher=bad))
