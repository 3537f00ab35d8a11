"""maekit-supmae: what it registers, the classification term against an independent computation,
its configs, and its demo."""
from __future__ import annotations

import json

import pytest
import torch

import maekit_supmae
from maekit.authoring.testing import run_cli
from maekit.registry import KINDS, build, registry_for
from maekit_supmae import plugin


def tiny(**options):
    spec = dict(type="supmae", num_classes=5, cls_hidden=16, size=None, encoder_name="vit_tiny_patch16_224",
                img_size=16, patch_size=4, in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2),
                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    spec.update(options)
    return build("model", spec)


def test_supmae_registers_only_its_own_names(fresh_registries):
    record = fresh_registries.load("maekit-supmae", maekit_supmae.__version__, lambda: plugin)
    assert record.status == "loaded", record.error
    registered = {(kind, entry.name) for kind in KINDS for entry in registry_for(kind).entries.values()}
    assert registered == {(kind, name) for kind, name, _ in plugin.COMPONENTS}
    assert (registry_for("model").get("supmae").__doc__ or "").strip()


def test_supmae_loss_is_mae_plus_weighted_tempered_cross_entropy_on_visible_tokens():
    torch.manual_seed(0)
    model = tiny(cls_loss_ratio=0.3, temperature=4.0)
    images, labels, noise = torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 3, 4, -1]), torch.rand(6, 16)
    pooled = []
    model.classifier.head[0].register_forward_hook(lambda module, args, out: pooled.append(args[0]))
    losses = model({"inputs": images, "label": labels}, noise=noise)
    # independently: MAE's pass (same noise), the mean of the 4 visible patch tokens, the head, CE
    out = model.run_steps({"inputs": images}, noise)
    mask, latents = out.mask, out.latents
    assert mask.num_visible == 4
    reconstruction = model.compute_loss(out)["loss"]
    torch.testing.assert_close(pooled[0], latents[:, 1:].mean(dim=1))  # cls token left out
    logits = model.classifier.head(latents[:, 1:].mean(dim=1))
    labelled = labels >= 0
    log_probs = torch.log_softmax(logits[labelled] / 4.0, dim=1)
    cross_entropy = -log_probs[torch.arange(5), labels[labelled]].mean()  # the unlabelled sample left out
    assert losses["loss_classification"].item() == pytest.approx(cross_entropy.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(reconstruction.item() + 0.3 * cross_entropy.item(), rel=1e-5)


def test_supmae_refuses_batches_without_usable_labels():
    model = tiny()
    images = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="needs class labels"):
        model({"inputs": images})
    with pytest.raises(ValueError, match="no labelled sample"):
        model({"inputs": images, "label": torch.tensor([-1, -1])})
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        model({"inputs": images, "label": torch.tensor([1, 7])})
    with pytest.raises(ValueError, match="at least 2"):
        tiny(num_classes=1)


def test_demo_config_has_the_budget_of_cores_mae_demo_and_the_paper_config_its_recipe():
    from maekit.engine import load_config

    supervised, plain = load_config("supmae_demo_digits"), load_config("mae_demo_digits")
    for key in ("encoder_name", "img_size", "patch_size", "encoder", "decoder_embed_dim", "decoder_depth",
                "mask_ratio", "norm_pix_loss"):
        assert supervised.model[key] == plain.model[key], key
    assert supervised.data == plain.data
    assert {k: supervised.schedule[k] for k in plain.schedule} == dict(plain.schedule)
    paper = load_config("supmae_vit_base_in1k")
    assert paper.data.batch_size * paper._processes == 2048 and paper.schedule.accumulate == 1
    iterations_per_epoch = 1281167 // 2048
    assert paper.schedule.max_iters == 400 * iterations_per_epoch and paper.schedule.warmup_iters == 20 * iterations_per_epoch
    model = build("model", {**paper.model, "img_size": 64})  # the paper's architecture at a small input
    assert len(model.decoder.blocks) == 1 and model.classifier.head[0].out_features == 3072
    assert isinstance(model.classifier.head[1], torch.nn.BatchNorm1d) and model.cls_loss_ratio == 0.01


def test_supmae_demo_compares_with_mae_at_the_same_budget(tmp_path):
    run_cli("demo", "supmae", "--out", str(tmp_path), "--iters", "2", env_extra={"MAEKIT_PLUGINS": "maekit-supmae"})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "mae_probe_accuracy_pretrained",
                "knn_accuracy_pretrained", "mae_knn_accuracy_pretrained"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["iterations"] == 2 and (tmp_path / "supmae" / "reconstructions.png").is_file()
    assert (tmp_path / "mae" / "metrics.json").is_file()
