import subprocess
import sys

import pytest
from mmengine.config import Config

import maekit
from maekit import plugins
from maekit.registry import KINDS, DuplicateComponentError, UnknownComponentError, build, entries, get, registry_for

GOOD_PLUGIN = '''
import maekit
from torch import nn


class Doubler(nn.Module):
    """Doubles its input (a toy model for plugin tests)."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


@maekit.hookimpl
def maekit_register(registry):
    registry.register("model", Doubler, name="{name}")
    registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="{name}_l1")
'''


def test_core_components_carry_their_provider(plugin_host):
    core = [e for e in entries() if e.provider.name == "maekit"]
    assert {e.kind for e in core} == {"model", "patchifier", "masker", "encoder", "decoder", "target", "loss", "teacher",
                                      "dataset", "transform"}
    assert all(e.provider.version == maekit.__version__ for e in core)
    assert {"mae", "masked_autoencoder"} <= set(registry_for("model").entries)


def test_the_engine_bridges_our_registries_into_mmengine_so_its_builders_find_our_names(plugin_host):
    from mmengine.registry import MODELS as ROOT
    from mmengine.registry import DefaultScope

    import maekit.engine

    maekit.engine.install()
    assert ROOT.children["maekit"].kind == "model" and ROOT.children["maekit"].scope == "maekit"
    assert ROOT.get("maekit.mae") is get("model", "mae")
    with DefaultScope.overwrite_default_scope("maekit"):
        model = ROOT.build(dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                                encoder=dict(embed_dim=64, depth=1, num_heads=4), decoder_embed_dim=32,
                                decoder_depth=1, decoder_num_heads=4))
    assert type(model).__name__ == "MaskedAutoencoder" and model.encoder.embed_dim == 64


def test_duplicate_names_fail_naming_both_providers(register_plugin):
    hook = maekit.hookimpl(lambda registry: registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="same"))
    first = register_plugin(maekit_register=hook, name="maekit-first", version="1.0")
    second = register_plugin(maekit_register=hook, name="maekit-second", version="2.3")
    assert first.status == "loaded" and second.status == "failed"
    assert "maekit-first 1.0" in second.error and "maekit-second 2.3" in second.error
    assert entries("loss").__next__().provider.name == "maekit-first"
    with pytest.raises(DuplicateComponentError, match="by maekit-first 1.0 and by maekit-second 2.3"):
        registry_for("loss").add(next(entries("loss")).__class__(
            kind="loss", name="same", target="x:y", provider=plugins.Provider("maekit-second", "2.3")))


def test_a_failing_plugin_is_rolled_back_and_the_rest_works(register_plugin):
    def half_then_crash(registry):
        registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="half_registered")
        raise RuntimeError("boom in register")

    record = register_plugin(maekit_register=half_then_crash, name="maekit-crashy", version="0.1")
    assert record.status == "failed" and record.error == "RuntimeError: boom in register"
    assert "half_registered" not in registry_for("loss").entries
    ok = register_plugin(maekit_register=maekit.hookimpl(
        lambda registry: registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="fine")), name="ok")
    assert ok.status == "loaded" and "fine" in registry_for("loss").entries


def test_strict_mode_re_raises(fresh_registries):
    fresh_registries.strict = True
    with pytest.raises(plugins.PluginLoadError, match="plugin maekit-bad 0.1 failed to load: ImportError: nope"):
        fresh_registries.load("maekit-bad", "0.1", lambda: (_ for _ in ()).throw(ImportError("nope")))


def test_registrar_rejects_bad_registrations(register_plugin):
    record = register_plugin(maekit_register=maekit.hookimpl(lambda registry: registry.register("widget", "a:b")))
    assert record.status == "failed" and "unknown component kind 'widget'" in record.error
    record = register_plugin(maekit_register=maekit.hookimpl(lambda registry: registry.register("loss", "no_colon")),
                             name="other")
    assert "must look like 'package.module:Name'" in record.error


def test_entry_point_plugins_broken_one_reported_rest_loads(make_distribution, fresh_registries, monkeypatch):
    make_distribution("maekit-good", "1.2.0", "maekit_good_hooks", GOOD_PLUGIN.format(name="doubler"))
    make_distribution("maekit-broken", "0.3", "maekit_broken_hooks", "raise ImportError('missing libfoo')\n")
    for variable in ("MAEKIT_PLUGINS", "MAEKIT_DISABLE_PLUGINS", "MAEKIT_PLUGIN_FILES", "MAEKIT_STRICT_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    host = plugins.load_plugins()
    status = {r.name: (r.version, r.status, r.error) for r in host.records}
    assert status["maekit-good"] == ("1.2.0", "loaded", "")
    assert status["maekit-broken"][:2] == ("0.3", "failed")
    assert "ImportError: missing libfoo" in status["maekit-broken"][2]
    doubler = build("model", dict(type="doubler", factor=3))
    assert doubler.factor == 3
    assert registry_for("model").entries["doubler"].provider == plugins.Provider("maekit-good", "1.2.0")
    assert registry_for("model").entries["doubler"].one_line_summary() == "Doubles its input (a toy model for plugin tests)."


def test_allowlist_and_disable_list(make_distribution, fresh_registries, monkeypatch):
    make_distribution("maekit-good", "1.2.0", "maekit_good_hooks", GOOD_PLUGIN.format(name="doubler"))
    monkeypatch.setenv("MAEKIT_PLUGINS", "")
    host = plugins.load_plugins()
    assert [r.status for r in host.records if r.name == "maekit-good"] == ["disabled"]
    assert "doubler" not in registry_for("model").entries and "mae" in registry_for("model").entries
    # asking for a component of a disabled plugin says who provides it
    with pytest.raises(UnknownComponentError, match=r"'doubler' is provided by maekit-good 1.2.0, which is installed but not loaded"):
        build("model", dict(type="doubler"))
    monkeypatch.setenv("MAEKIT_PLUGINS", "maekit_good")  # names are normalised
    plugins.load_plugins()
    assert "doubler" in registry_for("model").entries
    monkeypatch.delenv("MAEKIT_PLUGINS")
    monkeypatch.setenv("MAEKIT_DISABLE_PLUGINS", "maekit_good_hooks")  # the entry point's own name works too
    plugins.load_plugins()
    assert "doubler" not in registry_for("model").entries


def test_unknown_names_list_what_exists(plugin_host):
    with pytest.raises(UnknownComponentError, match=r"unknown masker 'checkerboard'; registered maskers: bernoulli_mask, block_mask, block_plus_random_mask, blockwise_mask, given_mask, grid_block_mask, random_mask, score_mask, tube_mask"):
        build("masker", dict(type="checkerboard"))
    with pytest.raises(ValueError, match="has no 'type' key"):
        build("masker", dict(mask_ratio=0.5))
    with pytest.raises(ValueError, match="unknown component kind 'maskr'"):
        registry_for("maskr")


def test_single_file_plugin_builds_from_a_config(tmp_path, fresh_registries):
    plugin_file = tmp_path / "my_method.py"
    plugin_file.write_text(GOOD_PLUGIN.format(name="my_doubler"))
    config_file = tmp_path / "my_config.py"
    config_file.write_text("model = dict(type='my_doubler', factor=5)\n")
    record = fresh_registries.load_file(plugin_file)
    assert record.status == "loaded", record.error
    model = build("model", Config.fromfile(str(config_file)).model)
    assert model.factor == 5
    entry = registry_for("model").entries["my_doubler"]
    assert entry.provider.origin == "file" and entry.provider.name == str(plugin_file.resolve())
    missing = fresh_registries.load_file(tmp_path / "nope.py")
    assert missing.status == "failed" and "does not exist" in missing.error


def test_fixtures_isolate_registries(register_plugin):
    register_plugin(maekit_register=maekit.hookimpl(
        lambda registry: registry.register("loss", "maekit.nn.losses:MaskedL1Loss", name="temporary")))
    assert "temporary" in registry_for("loss").entries


def test_previous_test_left_nothing_behind():
    plugins.ensure_plugins_loaded()
    assert "temporary" not in registry_for("loss").entries
    assert all(kind in KINDS for kind in ("model", "dataset", "transform"))


def test_the_vocabulary_imports_no_mmengine_and_the_engine_patches_mmengine_only_when_installed():
    code = ("import sys, maekit.model, maekit.nn, maekit.ops, maekit.structures, maekit.io.checkpoint, "
            "maekit.methods.mae, maekit.plugins, maekit.registry as r; list(r.entries()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'click', 'rich', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("from mmengine.runner.checkpoint import CheckpointLoader as L; from mmengine.registry import MODELS; "
            "before = L._schemes['']; import maekit.engine; print(L._schemes[''] is before, 'maekit' in MODELS.children); "
            "maekit.engine.install(); print(L._schemes[''] is before, 'maekit' in MODELS.children)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False", "True"]


def test_listing_imports_no_torch():
    code = "import sys, maekit.registry as r; list(r.entries()); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_demos_hook_collects_demos_and_rejects_a_name_offered_twice(plugin_host, register_plugin):
    register_plugin(name="maekit-one", maekit_demos=lambda: {"one": "cfg_one", "shared": "pkg.mod:run"})
    assert plugins.demos()["one"] == "cfg_one" and plugins.demos()["mae"] == "mae_demo_digits"
    register_plugin(name="maekit-two", maekit_demos=lambda: {"shared": "other_cfg"})
    with pytest.raises(plugins.PluginLoadError, match="'shared' is offered by both maekit-one and maekit-two"):
        plugins.demos()


def test_named_demo_runs_a_function_target_and_unknown_names_list_what_exists(plugin_host, register_plugin, tmp_path):
    from maekit.eval.demo import run_named_demo

    calls = []
    module = type(sys)("maekit_fake_demo")
    module.run = lambda out_dir, **options: calls.append((out_dir, options)) or {"ok": True}
    sys.modules["maekit_fake_demo"] = module
    try:
        register_plugin(name="maekit-fake", maekit_demos=lambda: {"fake": "maekit_fake_demo:run"})
        assert run_named_demo("fake", tmp_path, max_iters=2) == {"ok": True}
        assert calls == [(tmp_path, {"max_iters": 2})]
        with pytest.raises(ValueError, match="no demo named 'nope'; installed plugins offer: fake, mae"):
            run_named_demo("nope", tmp_path)
    finally:
        del sys.modules["maekit_fake_demo"]


def test_commands_hook_adds_subcommands_and_rejects_a_name_offered_twice(plugin_host, register_plugin):
    import click
    from click.testing import CliRunner

    from maekit.cli.main import main

    @click.command("hello")
    @click.argument("who")
    def hello(who: str) -> None:
        click.echo(f"hello {who}")

    register_plugin(name="maekit-one", maekit_commands=lambda: [hello])
    assert plugins.commands() == {"hello": hello}
    result = CliRunner().invoke(main, ["hello", "plugin"])
    assert result.exit_code == 0 and result.output == "hello plugin\n"
    assert "hello" in CliRunner().invoke(main, ["--help"]).output
    register_plugin(name="maekit-two", maekit_commands=lambda: [click.Command("hello")])
    with pytest.raises(plugins.PluginLoadError, match="'hello' is offered by both maekit-one and maekit-two"):
        plugins.commands()


def test_a_plugin_command_may_not_shadow_a_core_command(plugin_host, register_plugin):
    import click
    from click.testing import CliRunner

    from maekit.cli.main import main

    register_plugin(name="maekit-shadow", maekit_commands=lambda: [click.Command("nonexistent-core-name"),
                                                                   click.Command("train")])
    result = CliRunner().invoke(main, ["nonexistent-core-name"])
    assert result.exit_code != 0 and "train clash with maekit's own commands" in result.output


def test_standard_hooks_made_from_data_register_list_and_load_commands_lazily(plugin_host, register_plugin, tmp_path):
    import click

    from maekit.hookspecs import standard_hooks

    module = type(sys)("maekit_fake_commands")
    sys.modules["maekit_fake_commands"] = module
    try:
        plugin = type(sys)("maekit_fake_standard")
        (plugin.maekit_register, plugin.maekit_config_dirs, plugin.maekit_demos,
         plugin.maekit_commands) = standard_hooks([("loss", "fake_standard_loss", "maekit_fake_commands:Loss")],
                                                  config_dir=tmp_path, demos={"fake_std": "cfg"},
                                                  commands=["maekit_fake_commands:hello"])
        module.hello = click.Command("fake-hello", callback=lambda: None)
        register_plugin(plugin, name="maekit-fake-standard")
        entry = next(e for e in entries("loss") if e.name == "fake_standard_loss")
        assert entry.target == "maekit_fake_commands:Loss" and entry.is_lazy  # registered, not imported
        assert tmp_path in plugins.config_dirs()
        assert plugins.demos()["fake_std"] == "cfg"
        assert plugins.commands()["fake-hello"] is module.hello
    finally:
        del sys.modules["maekit_fake_commands"]
