import argparse
import os

import pytest
import timm
import torch
from click.testing import CliRunner

from maekit.cli.main import main
from maekit.io.checkpoint import CheckpointError, load_state_dict, save_state_dict
from maekit.io.convert import convert_state_dict, detect_layout, resize_pos_embeds
from tests.conftest import tiny_mae


def test_official_layout_round_trip_and_names():
    state = tiny_mae().state_dict()
    official = convert_state_dict(state, "maekit", "official")
    for key in ("cls_token", "pos_embed", "mask_token", "decoder_pos_embed", "patch_embed.proj.weight",
                "blocks.0.attn.qkv.weight", "norm.weight", "decoder_embed.weight", "decoder_blocks.0.mlp.fc2.bias",
                "decoder_norm.weight", "decoder_pred.weight"):
        assert key in official
    assert detect_layout(official) == "official"
    back = convert_state_dict(official, "auto", "maekit")
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


def test_official_checkpoint_file_with_training_args_loads(tmp_path):
    model = tiny_mae()
    official = convert_state_dict(model.state_dict(), "maekit", "official")
    path = tmp_path / "checkpoint-399.pth"
    torch.save({"model": official, "epoch": 399, "args": argparse.Namespace(blr=1.5e-4, norm_pix_loss=True)}, path)
    fresh = tiny_mae()
    fresh.load_state_dict(convert_state_dict(load_state_dict(path)))
    assert torch.equal(fresh.encoder.blocks[1].mlp.fc1.weight, model.encoder.blocks[1].mlp.fc1.weight)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_state_dict(path)
    assert not marker.exists()


def test_unreadable_and_missing_files_are_named(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="broken.safetensors: not a readable safetensors file"):
        load_state_dict(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_dict(tmp_path / "missing.pth")
    plain = tmp_path / "numbers.pth"
    torch.save({"epoch": 3}, plain)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict(plain)


def test_exported_encoder_loads_in_timm_as_pretrained(tmp_path):
    model = tiny_mae().eval()
    path = save_state_dict(convert_state_dict(model.state_dict(), "maekit", "timm"), tmp_path / "encoder.safetensors")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                            num_classes=0, img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4).eval()
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(vit.forward_features(images), model.encode(images), atol=1e-5)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    save_state_dict({"w": torch.ones(2)}, tmp_path / "a.pth")
    save_state_dict({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth", "a.safetensors"]


def test_position_tables_are_resampled_for_another_input_size():
    small = tiny_mae(img_size=32)
    large = tiny_mae(img_size=48)
    state = resize_pos_embeds(small.state_dict(), large)
    assert state["encoder.pos_embed"].shape == large.state_dict()["encoder.pos_embed"].shape
    large.load_state_dict(state)


def test_convert_command_end_to_end(tmp_path):
    source = tmp_path / "official.pth"
    state = tiny_mae().state_dict()
    torch.save({"model": convert_state_dict(state, "maekit", "official")}, source)
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(source), str(tmp_path / "mae.safetensors")])
    assert result.exit_code == 0, result.output
    assert "(official," in result.output
    converted = load_state_dict(tmp_path / "mae.safetensors")
    assert all(torch.equal(converted[k], state[k]) for k in state)
    result = runner.invoke(main, ["convert", str(tmp_path / "mae.safetensors"), str(tmp_path / "enc.safetensors"), "--to", "timm"])
    assert result.exit_code == 0 and "blocks.0.attn.qkv.weight" in load_state_dict(tmp_path / "enc.safetensors")
    bogus = tmp_path / "bogus.pth"
    torch.save({"something.else": torch.zeros(1)}, bogus)
    result = runner.invoke(main, ["convert", str(bogus), str(tmp_path / "x.pth")])
    assert result.exit_code != 0 and "cannot tell the checkpoint layout" in result.output


def test_training_checkpoints_and_remote_paths(tmp_path):
    state = {f"model.{k}": v for k, v in tiny_mae().state_dict().items()}
    torch.save({"state_dict": state, "meta": {"iter": 3}}, tmp_path / "iter_3.pth")
    converted = convert_state_dict(load_state_dict(tmp_path / "iter_3.pth"), "auto", "timm")
    assert "blocks.0.attn.qkv.weight" in converted
    import maekit.engine
    maekit.engine.install()  # weights-only loaders and the atomic backend
    from mmengine.runner.checkpoint import CheckpointLoader

    with pytest.raises(CheckpointError, match="local files only"):
        CheckpointLoader.load_checkpoint("https://example.invalid/mae.pth")


def test_saved_files_get_the_usual_permissions(tmp_path):
    path = save_state_dict({"w": torch.ones(1)}, tmp_path / "w.pth")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_layout_detection_knows_maekit_checkpoints_of_any_encoder():
    assert detect_layout(tiny_mae().state_dict()) == "maekit"
    # a plugin's CNN encoder and head, as a training checkpoint stores them
    cnn = {"model.encoder.network.conv1.weight": torch.zeros(1), "model.decoder.pred.0.weight": torch.zeros(1)}
    assert detect_layout(cnn) == "maekit"
    # transformers' bare ViTMAEModel also has "encoder." keys; its "embeddings." keys decide
    bare = {"embeddings.cls_token": torch.zeros(1), "encoder.layer.0.attention.attention.query.weight": torch.zeros(1)}
    assert detect_layout(bare) == "transformers"


def test_rename_keys_applies_the_first_matching_rule_and_names_unknown_keys():
    from maekit.io.convert import rename_keys, strip_module_prefix

    state = strip_module_prefix({"module.net.layers.3.w": torch.zeros(1), "module.head.b": torch.ones(1),
                                 "module.unused.x": torch.zeros(2)})
    rules = [(r"net\.layers\.(\d+)\.", r"encoder.blocks.\1."), (r"head\.", "decoder.pred.")]
    renamed = rename_keys(state, rules, "toy", skip=r"unused\.")
    assert set(renamed) == {"encoder.blocks.3.w", "decoder.pred.b"} and renamed["decoder.pred.b"].item() == 1
    with pytest.raises(CheckpointError, match=r"1 keys are not part of the toy layout: \['unused.x'\]"):
        rename_keys(state, rules, "toy")
    assert strip_module_prefix({"a": torch.zeros(1), "module.b": torch.zeros(1)}).keys() == {"a", "module.b"}


def official_finetuned(keep_norm: bool) -> dict[str, torch.Tensor]:
    """A fine-tuned checkpoint in the official ``models_vit`` layout, from a tiny MAE's encoder."""
    encoder = convert_state_dict(tiny_mae().state_dict(), "maekit", "official")
    state = {k: v for k, v in encoder.items() if not k.startswith(("decoder", "mask_token"))}
    if not keep_norm:  # global-pool fine-tuning deletes the final norm
        state = {k: v for k, v in state.items() if not k.startswith("norm.")}
    width = state["cls_token"].shape[-1]
    return {**state, "fc_norm.weight": torch.full((width,), 2.0), "fc_norm.bias": torch.zeros(width),
            "head.weight": torch.zeros(7, width), "head.bias": torch.zeros(7)}


@pytest.mark.parametrize("keep_norm", [False, True])
def test_probe_and_export_accept_official_finetuned_checkpoints_and_say_what_was_dropped(tmp_path, caplog, keep_norm):
    from maekit.eval.probe import load_trained_model

    path = tmp_path / "checkpoint-best.pth"
    torch.save({"model": official_finetuned(keep_norm), "epoch": 99}, path)
    with caplog.at_level("WARNING", logger="maekit"):
        model = load_trained_model(dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32,
                                        patch_size=8, encoder=dict(embed_dim=64, depth=2, num_heads=4),
                                        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4), path)
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "dropped the classification head (head.bias, head.weight: 7 classes)" in said
    if keep_norm:
        assert "dropped fc_norm" in said and not torch.equal(model.encoder.norm.weight, torch.full_like(model.encoder.norm.weight, 2.0))
    else:
        assert "used fc_norm as the encoder's final norm" in said
        assert torch.equal(model.encoder.norm.weight, torch.full_like(model.encoder.norm.weight, 2.0))


def test_forward_says_an_encoder_only_file_has_no_decoder(tmp_path):
    from maekit.io.convert import maekit_to_timm
    from maekit.registry import build

    model = build("model", dict(type="mae", size="tiny", img_size=32))  # what `forward --size tiny` builds
    save_state_dict(maekit_to_timm(model.state_dict()), tmp_path / "encoder.safetensors")
    result = CliRunner().invoke(main, ["forward", "--size", "tiny", "--img-size", "32", "--checkpoint",
                                       str(tmp_path / "encoder.safetensors")])
    assert result.exit_code == 1
    assert "has no decoder (an encoder-only checkpoint" in result.output and "decoder.blocks.* (" in result.output


def test_convert_to_official_writes_the_model_key_the_official_scripts_read(tmp_path):
    from maekit.io.checkpoint import torch_load

    save_state_dict(tiny_mae().state_dict(), tmp_path / "mae.safetensors")
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "mae.safetensors"), str(tmp_path / "official.pth"),
                                       "--to", "official"])
    assert result.exit_code == 0, result.output
    written = torch_load(tmp_path / "official.pth")
    assert set(written) == {"model"} and "decoder_pred.weight" in written["model"]
