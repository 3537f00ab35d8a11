"""AV-MAE's and MAViL's mechanisms, each against a computation written out here: the tables, the
per-modality masks, what every fusion variant routes, the decoders, the inpainting objective, the
loss, MAViL's contrastive terms and its stage-2 teacher."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from maekit_audiovisual.model import AudioVisualMAE, av_mae, flat_index, mavil
from torch.nn import functional as F

from maekit.model import seeded_noise

SMALL = dict(size=None, encoder=dict(embed_dim=32, depth=4, num_heads=2), decoder=dict(embed_dim=16, depth=2, num_heads=2),
             num_frames=4, img_size=16, patch_size=4, audio_patch_size=8, audio_frames=32, num_mel_bins=16)
VIDEO_TOKENS, AUDIO_TOKENS = 2 * 4 * 4, 4 * 2


def batch_of(size: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randn(size, 3, 4, 16, 16, generator=g), "audio": torch.randn(size, 1, 32, 16, generator=g)}


def test_the_table_is_scenics_interleaved_sinusoid_over_each_modalitys_flat_order():
    model = av_mae(**SMALL)
    tokens = model.patchifiers["audio"](batch_of())
    assert flat_index(tokens)[0].tolist() == list(range(AUDIO_TOKENS))  # time-major rows of the 4 × 2 grid
    dim, length = 32, AUDIO_TOKENS
    position = np.arange(length)[:, None]
    div = np.exp(np.arange(0, dim, 2) * -(np.log(1e4) / dim))  # scenic's Add1DPositionEmbedding
    expected = np.zeros((length, dim))
    expected[:, 0::2], expected[:, 1::2] = np.sin(position * div), np.cos(position * div)
    found = model.encoder.embed["audio"].positions(tokens)[0]
    assert torch.allclose(found, torch.from_numpy(expected).float(), atol=1e-6)


def test_each_modality_is_masked_at_its_own_ratio_with_its_own_noise():
    model = av_mae(**SMALL, audio_mask_ratio=0.7, video_mask_ratio=0.9)
    out = model.run_steps(batch_of(), noise=seeded_noise(0))
    masks = out.extras["masks"]
    assert int(masks["video"].masked[0].sum()) == int(0.9 * VIDEO_TOKENS)  # the reference's int(ratio · N)
    assert int(masks["audio"].masked[0].sum()) == int(0.7 * AUDIO_TOKENS)
    assert not torch.equal(masks["video"].masked[0], masks["video"].masked[1])  # a mask per clip
    # the two modalities' noise are disjoint parts of one draw per sample
    drawn = seeded_noise(0)((3, VIDEO_TOKENS + AUDIO_TOKENS), torch.device("cpu"))
    expected = torch.argsort(drawn[:, VIDEO_TOKENS:], dim=1)[:, : AUDIO_TOKENS - int(0.7 * AUDIO_TOKENS)]
    assert torch.equal(masks["audio"].ids_keep.sort(1).values, expected.sort(1).values)


def encoded(model: AudioVisualMAE, batch: dict) -> dict[str, torch.Tensor]:
    return model.encoder({m: model.patchifiers[m](batch) for m in ("video", "audio")}).fused


@pytest.mark.parametrize("fusion,joint,crosses", [("early", 4, True), ("mid", 1, True), ("late", 0, False), ("shared", 0, False)])
def test_each_fusion_routes_tokens_as_the_reference_strategy(fusion, joint, crosses):
    torch.manual_seed(0)
    model = av_mae(**SMALL, fusion=fusion, joint_depth=1).eval()
    encoder = model.encoder
    assert (len(encoder.joint_blocks) if encoder.joint_blocks is not None else 0) == joint
    own = {name: len(blocks) for name, blocks in encoder.blocks.items()}
    assert own == {"early": {}, "mid": {"video": 3, "audio": 3}, "late": {"video": 4, "audio": 4},
                   "shared": {"shared": 4}}[fusion]
    batch = batch_of()
    other = dict(batch, audio=batch["audio"] + 1.0)  # only the sound changes
    with torch.no_grad():
        first, second = encoded(model, batch), encoded(model, other)
    assert torch.allclose(first["video"], second["video"]) != crosses  # video hears the audio only when fused
    assert not torch.allclose(first["audio"], second["audio"])


def test_mid_fusion_equals_per_modality_stacks_then_joint_blocks_written_out():
    torch.manual_seed(0)
    model = av_mae(**SMALL, fusion="mid", joint_depth=1).eval()
    enc, batch = model.encoder, batch_of()
    tokens = {m: model.patchifiers[m](batch) for m in ("video", "audio")}
    with torch.no_grad():
        own = {}
        for m in ("video", "audio"):
            x = enc.embed[m].proj(tokens[m].values) + enc.embed[m].positions(tokens[m])
            for block in enc.blocks[m]:
                x = block(x)
            own[m] = enc.norm[m](x)
        x = torch.cat([own["video"], own["audio"]], dim=1)  # video first: the reference's rgb, spectrogram
        for block in enc.joint_blocks:
            x = block(x)
        x = enc.joint_norm(x)
        found = enc(tokens)
    assert torch.allclose(found.fused["video"], x[:, :VIDEO_TOKENS], atol=1e-5)
    assert torch.allclose(found.fused["audio"], x[:, VIDEO_TOKENS:], atol=1e-5)
    assert torch.allclose(found.unimodal["audio"], own["audio"], atol=1e-5)


def test_shared_encoder_uses_one_stack_for_both_modalities():
    model = av_mae(**SMALL, fusion="shared")
    names = [n for n, _ in model.encoder.named_parameters() if n.startswith("blocks.")]
    assert names and all(n.startswith("blocks.shared.") for n in names)


@pytest.mark.parametrize("strategy,crosses", [("shared", False), ("separate", False), ("joint", True)])
def test_decoder_strategies_and_the_reference_inits(strategy, crosses):
    torch.manual_seed(0)
    model = av_mae(**SMALL, fusion="late", decoder_strategy=strategy).eval()
    decoder = model.decoder
    assert all(float(p.detach().abs().sum()) == 0 for p in decoder.mask_token.values())  # zero-initialised mask tokens
    assert all(float(h.weight.detach().abs().sum()) == 0 and float(h.bias.detach().abs().sum()) == 0 for h in decoder.pred.values())
    for head in decoder.pred.values():  # non-zero output weights, so that routing shows in the prediction
        torch.nn.init.normal_(head.weight)
    out = model.run_steps(batch_of(), noise=seeded_noise(1))
    masks, tokens = out.extras["masks"], out.extras["tokens"]
    latents = out.extras["encoded"].fused
    with torch.no_grad():
        moved = decoder(dict(latents, video=latents["video"] + 1.0), masks, tokens)
    assert torch.allclose(moved["audio"], out.pred["audio"], atol=1e-6) != crosses
    # the decoder input: visible tokens projected into their places, the mask token elsewhere, the table added
    sequence = decoder.sequence("audio", latents["audio"], masks["audio"], tokens["audio"])
    rows = torch.zeros(3, AUDIO_TOKENS, 16)
    for b in range(3):
        rows[b] = decoder.mask_token["audio"][0]
        rows[b, masks["audio"].ids_keep[b]] = decoder.proj["audio"](latents["audio"][b])
    assert torch.allclose(sequence, rows + decoder.positions["audio"](tokens["audio"]), atol=1e-6)


def test_loss_is_half_each_modalitys_masked_mean_of_squared_error_per_value():
    torch.manual_seed(0)
    model = av_mae(**SMALL)
    for head in model.decoder.pred.values():
        torch.nn.init.normal_(head.weight, std=0.1)
    out = model.run_steps(batch_of(), noise=seeded_noise(2))
    losses = model.compute_loss(out)
    expected = 0.0
    for m in ("video", "audio"):
        removed = out.extras["masks"][m].masked.float()
        target = out.extras["tokens"][m].values  # raw patches, no per-patch normalisation
        squared = ((out.pred[m] - target) ** 2).sum(-1) / target.shape[-1]  # summed over features / feature size
        value = (squared * removed).sum() / removed.sum()
        assert torch.allclose(losses[f"{m}_mse"], value, atol=1e-6)
        expected = expected + 0.5 * value
    assert torch.allclose(losses["loss"], expected, atol=1e-6)


def test_inpainting_rebuilds_each_modality_from_the_others_visible_tokens_only():
    torch.manual_seed(0)
    model = av_mae(**SMALL, fusion="late", inpainting=True, audio_mask_ratio=0.75, video_mask_ratio=0.9).eval()
    for head in model.decoder.pred.values():
        torch.nn.init.normal_(head.weight)
    batch = batch_of()
    out = model.run_steps(batch, noise=seeded_noise(3))
    visible_video = VIDEO_TOKENS - int(0.9 * VIDEO_TOKENS)
    audio_mask = out.extras["loss_masks"]["audio"]
    assert audio_mask.masked[:, :visible_video].sum() == 0 and bool(audio_mask.masked[:, visible_video:].all())
    assert torch.equal(out.target["audio"], out.extras["tokens"]["audio"].values)  # slot j ≥ K against patch j
    with torch.no_grad():
        louder = model.run_steps(dict(batch, audio=batch["audio"] * 3.0), noise=seeded_noise(3))
        brighter = model.run_steps(dict(batch, inputs=batch["inputs"] + 1.0), noise=seeded_noise(3))
    assert torch.allclose(louder.pred["audio"], out.pred["audio"], atol=1e-6)  # its own visible audio is not read
    assert not torch.allclose(brighter.pred["audio"], out.pred["audio"], atol=1e-6)  # the video's is


def test_mavil_stage_one_reconstructs_two_views_and_contrasts_across_and_within_modalities():
    torch.manual_seed(0)
    model = mavil(**SMALL, mask_ratio=0.75, weights=dict(inter=0.5, intra_audio=0.25, intra_video=0.25))
    out = model.run_steps(batch_of(4), noise=seeded_noise(4))
    views = out.extras["views"]
    assert not torch.equal(views[0]["video"].masked, views[1]["video"].masked)  # two different masks per clip
    assert out.pred["video"].shape[0] == 8  # both views' predictions, one masked MSE
    losses = model.compute_loss(out)
    # the contrastive parts against a direct computation of the summaries
    tokens = out.extras["tokens"]
    summaries = []
    for view in views:
        enc = model.encoder({m: tokens[m].take(view[m].ids_keep) for m in ("video", "audio")})
        summaries.append({m: F.normalize(enc.unimodal[m].mean(1), dim=-1) for m in ("video", "audio")})
    audio = F.normalize((summaries[0]["audio"] + summaries[1]["audio"]) / 2, dim=-1)
    video = F.normalize((summaries[0]["video"] + summaries[1]["video"]) / 2, dim=-1)
    logits = audio @ video.t() / 0.05
    inter = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.t(), torch.arange(4))) / 2
    assert torch.allclose(losses["inter"], inter, atol=1e-5)
    intra = summaries[0]["audio"] @ summaries[1]["audio"].t() / 0.05
    intra_audio = (F.cross_entropy(intra, torch.arange(4)) + F.cross_entropy(intra.t(), torch.arange(4))) / 2
    assert torch.allclose(losses["intra_audio"], intra_audio, atol=1e-5)
    total = losses["audio_mse"] + losses["video_mse"] + 0.5 * inter + 0.25 * intra_audio + 0.25 * losses["intra_video"]
    assert torch.allclose(losses["loss"], total, atol=1e-5)
    losses["inter"].backward()  # the inter-modal term trains both modalities' encoders
    assert model.encoder.embed["audio"].proj.weight.grad.abs().sum() > 0
    assert model.encoder.embed["video"].proj.weight.grad.abs().sum() > 0


def test_mavil_stage_two_predicts_the_frozen_stage_one_fused_features(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    stage1_cfg = dict(type="mavil", **SMALL, mask_ratio=0.75)
    stage1 = mavil(**SMALL, mask_ratio=0.75)
    checkpoint = tmp_path / "stage1.safetensors"
    save_file({k: v.contiguous() for k, v in stage1.state_dict().items()}, str(checkpoint))
    student = mavil(**SMALL, mask_ratio=0.75, teacher=dict(model=stage1_cfg, checkpoint=str(checkpoint)))
    teacher = student.teacher.module
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), stage1.state_dict().values()))
    assert not any(p.requires_grad for p in teacher.parameters())
    assert student.decoder.pred["audio"].out_features == 32  # the teacher's width, not the patch size
    batch = batch_of()
    out = student.run_steps(batch, noise=seeded_noise(5))
    with torch.no_grad():
        stage1.eval()
        fused = stage1.encoder({m: stage1.patchifiers[m](batch) for m in ("video", "audio")}).fused
    expected = F.layer_norm(fused["audio"], (32,), eps=1e-6)
    assert torch.allclose(out.target["audio"][:3], expected, atol=1e-5)
    before = [p.clone() for p in teacher.parameters()]
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1)
    student.compute_loss(out)["loss"].backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))  # frozen
    with pytest.raises(ValueError, match="checkpoint"):
        mavil(**SMALL, teacher=dict(model=stage1_cfg))


def test_user_errors_name_the_setting():
    with pytest.raises(ValueError, match="fusion must be one of"):
        av_mae(**SMALL, fusion="middle")
    with pytest.raises(ValueError, match="joint_depth"):
        av_mae(**SMALL, fusion="mid", joint_depth=4)
    with pytest.raises(ValueError, match="decoder strategy"):
        av_mae(**SMALL, decoder_strategy="both")
    with pytest.raises(ValueError, match="does not divide"):
        av_mae(**dict(SMALL, audio_frames=30))
    with pytest.raises(ValueError, match="'audio'"):
        av_mae(**SMALL)({"inputs": torch.zeros(2, 3, 4, 16, 16)})
    assert math.isfinite(float(av_mae(**SMALL)(batch_of())["loss"].detach()))


def test_pictures_show_the_first_views_reconstruction_and_refuse_frames_alone():
    from maekit_audiovisual.visualize import av_panels

    torch.manual_seed(0)
    model = mavil(**SMALL, mask_ratio=0.75).eval()
    for head in model.decoder.pred.values():
        torch.nn.init.normal_(head.weight)
    batch = batch_of(2)
    out = model.run_steps(batch, noise=seeded_noise(6))
    rows = av_panels(model, out)
    assert len(rows) == 2 and len(rows[0]) == 6 and all(p.shape == rows[0][0].shape for row in rows for p in row)
    # the reconstruction columns differ from the masked input: the prediction is pasted in
    assert not np.array_equal(rows[0][2], rows[0][1]) and not np.array_equal(rows[0][5], rows[0][4])
    inpainting = av_mae(**SMALL, inpainting=True).eval()
    blank = av_panels(inpainting, inpainting.run_steps(batch, noise=seeded_noise(6)))
    assert blank[0][2].std() < rows[0][2].std()  # slot-ordered predictions are not pasted at the mask
    with pytest.raises(ValueError, match="frames only"):
        model.panels(batch["inputs"])
    with pytest.raises(ValueError, match="maekit av-eval"):
        model.encode(batch)


def test_mavils_projector_carries_the_contrastive_features():
    torch.manual_seed(0)
    model = mavil(**SMALL, mask_ratio=0.75, views=1, projector=dict(hidden_dim=24, out_dim=8))
    out = model.run_steps(batch_of(4), noise=seeded_noise(7))
    tokens, masks = out.extras["tokens"], out.extras["views"][0]
    enc = model.encoder({m: tokens[m].take(masks[m].ids_keep) for m in ("video", "audio")})
    audio = F.normalize(model.projector["audio"](enc.unimodal["audio"].mean(1)), dim=-1)
    video = F.normalize(model.projector["video"](enc.unimodal["video"].mean(1)), dim=-1)
    assert torch.allclose(out.pred["inter"], audio @ video.t(), atol=1e-5)
    assert out.pred["inter"].shape == (4, 4) and "intra_audio" not in out.pred  # one view: no intra-modal term
    assert all(name.startswith("projector.") for name in model.state_dict() if "projector" in name)
    with pytest.raises(ValueError, match="projector takes hidden_dim, out_dim, layers"):
        mavil(**SMALL, projector=dict(width=8))


@pytest.mark.parametrize("contrast_on,fusion", [("unimodal", "mid"), ("fused", "mid"), ("unimodal", "early")])
def test_retrieval_reads_mavils_contrast_space_and_av_maes_pooled_tokens_each_modality_alone(contrast_on, fusion):
    torch.manual_seed(0)
    model = mavil(**SMALL, mask_ratio=0.75, views=1, contrast_on=contrast_on, fusion=fusion,
                  projector=dict(hidden_dim=24, out_dim=8))
    model.eval()
    batch = batch_of(4)
    with torch.no_grad():
        found = model.retrieval_features(batch)
        for m in ("audio", "video"):
            # the modality encoded without its pair, read where training's contrast reads it: for early
            # fusion (no per-modality blocks) the modality through the joint blocks alone
            alone = model.encoder({m: model.patchifiers[m](batch)}, unimodal=True)
            tokens = alone.unimodal[m] if contrast_on == "unimodal" else alone.fused[m]
            if fusion == "early":  # not the bare embeddings an encoder call without unimodal=True gives
                bare = model.encoder({m: model.patchifiers[m](batch)}).unimodal[m]
                assert not torch.allclose(tokens, bare, atol=1e-3)
            assert found[m].shape == (4, 8)
            assert torch.allclose(found[m], model.projector[m](tokens.mean(1)), atol=1e-5)
        # the audio side does not move when the video changes: no leak across the pair
        other = dict(batch, inputs=torch.randn_like(batch["inputs"]))
        assert torch.allclose(model.retrieval_features(other)["audio"], found["audio"], atol=1e-6)
    plain = av_mae(**SMALL)
    plain.eval()
    with torch.no_grad():
        pooled = plain.retrieval_features(batch)
        alone = plain.encoder({"audio": plain.patchifiers["audio"](batch)}).fused["audio"].mean(1)
    assert torch.allclose(pooled["audio"], alone, atol=1e-6) and pooled["video"].shape == (4, 32)


def test_targets_are_raw_or_mae_norm_pix_per_patch_and_pictures_undo_them():
    torch.manual_seed(0)
    batch = batch_of(2)
    normed = mavil(**SMALL, mask_ratio=0.75)  # MAViL's default: per-patch normalised targets
    out = normed.run_steps(batch, noise=seeded_noise(3))
    raw = av_mae(**SMALL).run_steps(batch, noise=seeded_noise(3))
    for m in ("audio", "video"):
        values = out.extras["tokens"][m].values
        expected = (values - values.mean(-1, keepdim=True)) / (values.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
        assert torch.allclose(out.target[m][:2], expected, atol=1e-5) and out.target[m].shape[0] == 4  # two views
        assert torch.allclose(normed.target_makers[m].to_values(expected, out.extras["tokens"][m]), values, atol=1e-4)
        assert torch.equal(raw.target[m], raw.extras["tokens"][m].values)
