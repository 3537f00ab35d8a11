"""Core's contracts: ForwardPass, the masker noise contract, Target.to_values, intermediate
features with attention maps, no_weight_decay declarations, plugin hygiene."""
from pathlib import Path

import pytest
import torch

from maekit.nn.base import Masker
from maekit.nn.masking import RandomMasker
from maekit.structures import ForwardPass
from tests.conftest import tiny_mae

ROOT = Path(__file__).resolve().parents[1]


def test_run_steps_returns_a_forward_pass_that_the_loss_and_pictures_consume_without_tokenizing_again(monkeypatch):
    model = tiny_mae().eval()
    images = torch.randn(2, 3, 32, 32)
    out = model.run_steps(images, torch.rand(2, 16))
    assert isinstance(out, ForwardPass) and out.batch is images and out.extras == {}
    assert out.pred.shape == out.target.shape == (2, 16, 192) and out.latents.shape == (2, 5, 64)
    torch.testing.assert_close(model.compute_loss(out)["loss"], model.loss(out.pred, out.target, out.mask)["loss"])
    calls = []
    original = type(model.patchifier).forward
    monkeypatch.setattr(type(model.patchifier), "forward", lambda self, batch: calls.append(1) or original(self, batch))
    rows = model.panels(images, mean=(0.5,) * 3, std=(0.5,) * 3, seed=3)
    assert len(rows) == 2 and len(rows[0]) == 4 and calls == [1]


def test_a_masker_draws_noise_of_the_shape_it_declares_from_a_callable_source():
    class PerSample(Masker):
        def noise_shape(self, tokens):
            return (tokens.batch_size, 1)

        def forward(self, tokens, noise=None):
            from maekit.nn.masking import draw_noise

            self.seen = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
            return RandomMasker(0.5)(tokens, self.seen.expand(-1, tokens.num_tokens))

    model = tiny_mae()
    tokens = model.tokenize(torch.randn(3, 3, 32, 32))
    asked = []
    masker = PerSample()
    masker(tokens, lambda shape, device: asked.append(shape) or torch.rand(shape))
    assert asked == [(3, 1)] and masker.seen.shape == (3, 1)
    assert RandomMasker().noise_shape(tokens) == (3, 16)
    with pytest.raises(ValueError, match=r"noise must have shape \(batch, tokens\) = \(3, 16\)"):
        RandomMasker()(tokens, torch.rand(3, 15))


def test_targets_turn_a_prediction_back_into_token_values():
    model = tiny_mae(norm_pix_loss=True)
    tokens = model.tokenize(torch.randn(2, 3, 32, 32))
    target = model.target(tokens)
    torch.testing.assert_close(model.target.to_values(target, tokens), tokens.values, atol=1e-5, rtol=1e-5)
    pixels = tiny_mae(norm_pix_loss=False)
    assert pixels.target.to_values(tokens.values, tokens) is tokens.values


def test_forward_intermediates_taps_blocks_before_the_final_norm_and_their_attention():
    model = tiny_mae(encoder=dict(embed_dim=64, depth=3, num_heads=4)).eval()
    tokens = model.tokenize(torch.randn(2, 3, 32, 32))
    encoder = model.encoder
    # independently: the blocks one by one
    x = encoder.block_inputs(tokens)
    states = [x]
    for block in encoder.blocks:
        states.append(block(states[-1]))
    found = encoder.forward_intermediates(tokens, taps=[0, 2, -1], attention=True)
    assert sorted(found.features) == [0, 2, 3] and sorted(found.attention) == [2, 3]
    for tap in (0, 2, 3):
        torch.testing.assert_close(found.features[tap], states[tap])
    torch.testing.assert_close(encoder.norm(found.features[3]), encoder(tokens))
    # the attention map is what the block's attention applies: map @ v, heads merged, projected
    block = encoder.blocks[1]
    x = block.norm1(states[1])
    v = block.attn.qkv(x).reshape(2, 17, 3, 4, 16).permute(2, 0, 3, 1, 4)[2]
    weights = found.attention[2]
    assert weights.shape == (2, 4, 17, 17) and torch.allclose(weights.sum(-1), torch.ones(2, 4, 17))
    mixed = (weights @ v).transpose(1, 2).reshape(2, 17, 64)
    torch.testing.assert_close(block.attn.proj(mixed), block.attn(block.norm1(states[1])), atol=1e-5, rtol=1e-5)
    assert sorted(encoder.forward_intermediates(tokens, taps=[1]).features) == [1]
    with pytest.raises(ValueError, match="tap 4 is outside an encoder of 3 blocks"):
        encoder.forward_intermediates(tokens, taps=[4])


def test_modules_declare_what_takes_no_weight_decay_and_the_optimiser_asks_them():
    from mmengine.optim import build_optim_wrapper

    import maekit.engine
    from maekit.engine.optim import no_weight_decay_names

    model = tiny_mae()
    declared = no_weight_decay_names(model)
    assert declared == {"encoder.cls_token", "encoder.pos_embed", "decoder.mask_token", "decoder.pos_embed"}
    wrapper = build_optim_wrapper(model, dict(type="OptimWrapper", constructor="MaekitNoDecayConstructor",
                                              optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05)))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, not_decayed = wrapper.optimizer.param_groups  # two groups, no per-parameter ones
    assert decayed["weight_decay"] == 0.05 and not_decayed["weight_decay"] == 0.0
    no_decay = {names[id(p)] for p in not_decayed["params"]}
    assert "encoder.cls_token" in no_decay and "decoder.mask_token" in no_decay
    assert "encoder.pos_embed" not in no_decay  # frozen sin-cos table: not trained at all
    assert all(names[id(p)].endswith((".bias", "norm.weight", "norm1.weight", "norm2.weight")) or names[id(p)] in declared
               for p in not_decayed["params"])
    assert all(p.ndim == 2 or p.ndim == 4 for p in decayed["params"])
    assert maekit.engine  # the constructor is registered by importing the engine


def test_no_plugin_imports_a_private_name_of_core():
    from maekit.authoring.plugin_check import private_core_imports

    offenders = [place for folder in sorted((ROOT / "plugins").iterdir()) if folder.is_dir()
                 for place in private_core_imports(folder)]
    assert offenders == []


def test_the_private_import_check_finds_each_spelling(tmp_path):
    from maekit.authoring.plugin_check import private_core_imports

    source = tmp_path / "cli.py"
    source.write_text("from maekit.cli.main import _fail\nimport maekit._secret\nfrom maekit._x import y\n"
                      "from maekit.ops import gather\nfrom other import _fine\n")
    found = private_core_imports(tmp_path)
    assert [place.split(": ")[1] for place in found] == ["maekit.cli.main._fail", "maekit._secret", "maekit._x",
                                                          "maekit._x.y"]
    assert found[0].startswith(f"{source}:1")


def test_a_misspelt_hook_is_a_warning_when_the_plugin_loads(register_plugin):
    def maekit_regster(registry):
        registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="never")

    import types

    record = register_plugin(name="maekit-fine", maekit_register=lambda registry: None)
    assert record.status == "loaded" and record.warning == ""
    plugin = types.ModuleType("maekit_typo")  # a module with a hook-looking function that is no hookspec
    plugin.maekit_regster = maekit_regster
    with pytest.warns(UserWarning, match="maekit_regster look like maekit hooks but are not"):
        record = register_plugin(plugin, name="maekit-typo")
    assert record.status == "loaded" and "maekit never calls them" in record.warning


def test_check_plugin_reports_a_private_core_import(tmp_path):
    from maekit.authoring.plugin_check import check_plugin

    plugin = tmp_path / "leaky.py"
    plugin.write_text("import maekit\nfrom maekit.plugins import _import_file  # noqa: F401\n\n\n"
                      "@maekit.hookimpl\ndef maekit_register(registry):\n    pass\n")
    errors = [f.message for f in check_plugin(plugin) if f.level == "error"]
    assert any("maekit.plugins._import_file" in e and "public names" in e for e in errors), errors
