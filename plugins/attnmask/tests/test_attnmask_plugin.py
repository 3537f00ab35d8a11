"""maekit-attnmask: registration, AMT's attention schedule and resume, configs and the demo smoke test.
Run alone with: MAEKIT_PLUGINS=maekit-attnmask python -m pytest plugins/attnmask/tests"""
from __future__ import annotations

import textwrap
from pathlib import Path

import maekit_attnmask
import pytest
import torch
from maekit_attnmask import plugin

from maekit.authoring.testing import Interrupted, check_registers_only_its_names, interrupt_after

ENCODER = ('size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1, '
           'encoder=dict(embed_dim=32, depth=1, num_heads=2)')
AMT_HOOK = 'dict(type="AMTAttentionHook", random_epochs=2, refresh_epochs=2, iters_per_epoch=1, batch_size=16)'


def amt_config(folder: Path, iters: int = 6, batch: int = 8, extra: str = "") -> Path:
    path = folder / "amt_tiny.py"
    path.write_text(textwrap.dedent(f"""
        model = dict(type="amt", {ENCODER}, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
        data = dict(dataset=dict(type="digits", split="test", size=16, channels=1, fraction=0.1),
                    transform=dict(type="mae_augment", size=16, scale=(0.4, 1.0), flip=True, track_geometry=True),
                    batch_size={batch})
        schedule = dict(max_iters={iters}, warmup_iters=1, blr=1e-3)
        checkpoint_interval = 3
        log_interval = 1
        custom_hooks = [{AMT_HOOK}]
    """) + extra)
    return path


def test_attnmask_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-attnmask", maekit_attnmask.__version__, plugin,
                                   prefixes=("amt", "attmask", "mra"))


def test_amt_switches_to_attention_after_its_random_epochs_and_resumes_exactly(tmp_path):
    """Random masking for 2 epochs (of 1 iteration), maps after iterations 2 and 4 (not after the
    last); a run killed after iteration 3 resumes with the maps of iteration 2 and ends bit-identical."""
    from maekit.engine import train
    from maekit.engine.hooks import method_of
    from maekit.io.checkpoint import load_state_dict

    config = amt_config(tmp_path)
    runner = train(config, tmp_path / "straight", device="cpu")
    hook = next(h for h in runner.hooks if type(h).__name__ == "AMTAttentionHook")
    assert hook.maps is not None and hook.maps.shape == (len(runner.train_dataloader.dataset), 4, 4)
    assert (hook.maps >= 0).all() and (hook.maps <= 1).all()
    # nothing thrown while masking at random (iterations 1-2), then 6 of 16 (int(0.85·16) − int(0.45·16))
    thrown = list(runner.message_hub.get_scalar("train/thrown_share").data[0])
    assert thrown == [0.0, 0.0] + [6 / 16] * 4
    # the maps travel with every checkpoint from the first refresh on
    assert torch.load(tmp_path / "straight" / "iter_3.pth", weights_only=False)["amt_attention"].shape == hook.maps.shape
    with pytest.raises(Interrupted):
        train(config, tmp_path / "resumed", device="cpu", overrides={"custom_hooks": [
            dict(type="AMTAttentionHook", random_epochs=2, refresh_epochs=2, iters_per_epoch=1, batch_size=16),
            interrupt_after(3)]})
    resumed = train(config, tmp_path / "resumed", device="cpu", resume="auto")
    straight_state = load_state_dict(tmp_path / "straight" / "iter_6.pth")
    resumed_state = load_state_dict(tmp_path / "resumed" / "iter_6.pth")
    for key in straight_state:
        assert torch.equal(straight_state[key], resumed_state[key]), key
    resumed_hook = next(h for h in resumed.hooks if type(h).__name__ == "AMTAttentionHook")
    assert torch.equal(resumed_hook.maps, hook.maps)
    assert method_of(resumed).attention_refresh == (2, 2)


def test_amt_two_processes_match_one_with_the_maps_summed_over_ranks(tmp_path):
    """Two gloo processes of batch 4 against one of batch 8 through a refresh (after iteration 2):
    the maps each rank scores half of are summed, so masks, and weights, are the same."""
    from maekit.authoring.testing import one_and_two_processes

    sgd = 'optim_wrapper = dict(type="MaekitOptimWrapper", optimizer=dict(type="SGD", lr=0.5))\n'
    configs = {}
    for name, batch in (("one", 8), ("two", 4)):
        (tmp_path / name).mkdir()
        configs[name] = amt_config(tmp_path / name, iters=4, batch=batch, extra=sgd)
    a, b = one_and_two_processes(configs["one"], configs["two"], tmp_path, iters=4)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=1e-5), (key, (a[key] - b[key]).abs().max())
    assert (a["model.encoder.norm.weight"] - 1).abs().max() > 1e-3


def test_attention_maps_are_each_images_attention_whole_and_split_over_processes():
    from maekit_attnmask.amt import attention_maps

    from maekit.data.views import EvalTransform
    from maekit.registry import build

    torch.manual_seed(0)
    model = build("model", dict(type="amt", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1))
    dataset = build("dataset", dict(type="digits", split="test", size=20, channels=1, fraction=0.05))
    transform = EvalTransform(16, mean=[0.5], std=[0.5])
    whole = attention_maps(model, dataset, transform, batch_size=4)
    direct = model.attention(torch.stack([transform(dataset[i]["inputs"]) for i in range(len(dataset))]))
    assert torch.allclose(whole.flatten(1), direct, atol=1e-6)
    shares = [attention_maps(model, dataset, transform, batch_size=4, rank=r, world=3) for r in range(3)]
    assert torch.allclose(sum(shares), whole, atol=1e-6) and (shares[1][0] == 0).all() and (shares[1][1] != 0).any()


def test_amt_refresh_points():
    from maekit_attnmask.amt import AMTAttentionHook

    hook = AMTAttentionHook(random_epochs=40, refresh_epochs=40)
    hook.iters_per_epoch = 10
    due = [i for i in range(1, 4001) if hook.refresh_due(i, 4000)]
    assert due == [400 * k for k in range(1, 10)]  # after epochs 40, 80, ..., 360; never after the last
    with pytest.raises(ValueError, match="random_epochs"):
        AMTAttentionHook(random_epochs=0)


def test_amt_without_its_hook_or_geometry_is_an_error():
    from maekit.registry import build

    model = build("model", dict(type="amt", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1))
    images = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="AMTAttentionHook"):
        model.train()({"inputs": images})
    model.attention_refresh = (1, 1)
    with pytest.raises(ValueError, match="track_geometry=True"):
        model({"inputs": images, "attention_map": torch.rand(2, 4, 4)})


def test_amt_masks_the_attended_patches_and_throws_the_next():
    """With a map that is hot on one quadrant, the masked patches are drawn from it first."""
    from maekit.registry import build

    torch.manual_seed(0)
    model = build("model", dict(type="amt", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
                                in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1))
    maps = torch.full((400, 8, 8), 1e-3)
    maps[:, :4, :4] = 1.0  # the top-left quadrant: 16 of 64 patches
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).expand(400, -1)
    tokens = model.tokenize({"inputs": torch.randn(400, 1, 32, 32), "attention_map": maps, "geometry": whole})
    mask = model.make_mask(tokens, noise=torch.rand(400, 64))
    hot = torch.zeros(8, 8, dtype=torch.bool)
    hot[:4, :4] = True
    hot = hot.flatten()
    masked, thrown = mask.predicted.bool(), mask.thrown
    assert (masked.sum(1) == 28).all() and (thrown.sum(1) == 26).all() and mask.num_visible == 10
    assert masked[:, hot].all()  # 16 hot patches always among the 28 masked (weights 1000× the others)
    assert not (~masked & ~thrown)[:, hot].any()


def test_configs_state_the_recipes_and_match_maes_demo_budget():
    from maekit.engine import load_config

    plain = load_config("mae_demo_digits")
    for name in ("amt_demo_digits", "attmask_demo_digits", "mra_mae_demo_digits"):
        demo = load_config(name)
        assert demo.data.dataset == plain.data.dataset and demo.data.batch_size == plain.data.batch_size, name
        assert demo.schedule.max_iters == plain.schedule.max_iters, name
        assert demo.model.encoder == plain.model.encoder and demo.model.img_size == plain.model.img_size, name
    amt = load_config("amt_vit_base_in1k")
    epoch = 1281167 // 512
    assert amt.schedule.max_iters == 400 * epoch and amt.model.mask_ratio == 0.45 and amt.model.throw_ratio == 0.40
    assert amt.custom_hooks[0]["random_epochs"] == 40 and amt.data.transform.track_geometry
    assert load_config("mra_mae_demo_digits").model.norm_pix_loss is False
    attmask = load_config("attmask_vit_small_in1k")
    assert attmask.model.out_dim == 8192 and len(attmask.data.transform.views) == 12
    assert attmask.data.transform.views.local_1[0] == dict(type="resized_crop", size=96, scale=(0.05, 0.25))


def test_demo_smoke_runs_all_three(tmp_path):
    # two iterations per run and one classifier seed (the full demo is `maekit demo attnmask`)
    from maekit_attnmask.demo import run_amt_demo, run_attmask_demo, run_mra_demo

    quiet = dict(max_iters=2, log=lambda *_: None)
    amt = run_amt_demo(tmp_path / "amt", **quiet)
    assert 0 <= amt["amt_probe_accuracy_pretrained"] <= 1 and 0 <= amt["random_masking_probe_accuracy_pretrained"] <= 1
    attmask = run_attmask_demo(tmp_path / "attmask", **quiet)
    assert (tmp_path / "attmask" / "random_masking" / "metrics.json").is_file()
    assert 0 <= attmask["attmask_probe_accuracy_random_init"] <= 1
    mra = run_mra_demo(tmp_path / "mra", seeds=1, **quiet)
    assert 0 <= mra["with_mra_occluded_accuracy"] <= 1 and Path(mra["picture"]).is_file()
