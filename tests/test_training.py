"""Training through mmengine's Runner: resume equivalence, safe and atomic checkpoints, the NaN
guard, the optimisation recipe and DDP."""
import json
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import maekit
from maekit.authoring.testing import Interrupted, interrupt_after, one_and_two_processes, train_processes
from maekit.configs import CONFIG_DIR
from maekit.engine import load_config, runner_config, train
from maekit.io.checkpoint import CheckpointError, load_state_dict

TINY = """
_base_ = [{base!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
             decoder_num_heads=2, img_size=16)
data = dict(dataset=dict(size=16), transform=dict(size=16), batch_size={batch})
schedule = dict(max_iters={iters}, warmup_iters=2)
checkpoint_interval = {interval}
log_interval = 1
probe = dict(train=dict(type="digits", split="train", size=16, channels=1),
             test=dict(type="digits", split="test", size=16, channels=1))
finetune = dict(num_classes=10, drop_path_rate=0.1,
                data=dict(dataset=dict(type="digits", split="train", size=16, channels=1),
                          transform=dict(type="mae_augment", size=16, scale=(0.6, 1.0), flip=False), batch_size=32),
                test=dict(type="digits", split="test", size=16, channels=1),
                schedule=dict(max_iters=4, warmup_iters=1, blr=1e-3, betas=(0.9, 0.999), layer_decay=0.65))
"""


def write_tiny_config(folder: Path, batch: int = 16, iters: int = 6, interval: int = 3) -> Path:
    path = folder / "tiny_digits.py"
    path.write_text(TINY.format(base=str(CONFIG_DIR / "mae_demo_digits.py"), batch=batch, iters=iters, interval=interval))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_tiny_config(tmp_path)


def final_weights(work_dir: Path, iters: int) -> dict[str, torch.Tensor]:
    return load_state_dict(work_dir / f"iter_{iters}.pth")


def test_resume_ends_with_weights_identical_to_an_uninterrupted_run(tmp_path, tiny_config):
    train(tiny_config, tmp_path / "straight", device="cpu")
    with pytest.raises(Interrupted):
        train(tiny_config, tmp_path / "resumed", device="cpu", overrides={"custom_hooks": [interrupt_after(3)]})
    assert (tmp_path / "resumed" / "iter_3.pth").exists() and not (tmp_path / "resumed" / "iter_6.pth").exists()
    # the killed run left its loss curve up to the checkpoint
    assert json.loads((tmp_path / "resumed" / "loss_history.json").read_text())["iterations"] == [1, 2, 3]
    assert (tmp_path / "resumed" / "loss_curve.png").is_file()
    train(tiny_config, tmp_path / "resumed", device="cpu", resume="auto")
    straight, resumed = final_weights(tmp_path / "straight", 6), final_weights(tmp_path / "resumed", 6)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # the optimiser state came back too (its step count continued from 3)
    checkpoint = torch.load(tmp_path / "resumed" / "iter_6.pth", weights_only=True)
    assert checkpoint["meta"]["iter"] == 6
    assert all(state["step"] == 6 for state in checkpoint["optimizer"]["state"].values())


def test_checkpoints_hold_only_tensors_and_plain_containers(tmp_path, tiny_config):
    train(tiny_config, tmp_path / "run", device="cpu")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "run" / "iter_6.pth") == []
    # and resuming with an explicit path works as well as auto
    train(tiny_config, tmp_path / "run", device="cpu", resume=str(tmp_path / "run" / "iter_3.pth"))


def test_a_malicious_checkpoint_is_refused_on_resume_without_running(tmp_path, tiny_config):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    work = tmp_path / "run"
    work.mkdir()
    torch.save({"meta": {"iter": 3, "epoch": 0}, "state_dict": {}, "payload": Exploit()}, work / "iter_3.pth")
    (work / "last_checkpoint").write_text(str(work / "iter_3.pth"))
    with pytest.raises(CheckpointError, match="refused to load"):
        train(tiny_config, work, device="cpu", resume="auto")
    assert not marker.exists()


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    import maekit.engine
    maekit.engine.install()  # weights-only loaders and the atomic backend
    from mmengine.fileio import get_file_backend

    backend = get_file_backend(str(tmp_path / "x.pth"))
    assert type(backend).__name__ == "AtomicLocalBackend"
    target = tmp_path / "latest.pth"
    backend.put(b"good checkpoint", target)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b"half-written", target)
    assert target.read_bytes() == b"good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pth"]


@pytest.fixture
def nan_model(plugin_host, register_plugin):
    """A model that turns its loss into NaN from a given iteration on."""
    from mmengine.logging import MessageHub

    from maekit.registry import build

    class NaNFrom(torch.nn.Module):
        def __init__(self, model: dict, start: int):
            super().__init__()
            self.inner, self.start = build("model", model), start

        def forward(self, batch, noise=None):
            losses = self.inner(batch, noise=noise)
            if MessageHub.get_current_instance().get_info("iter", 0) >= self.start:
                losses["loss"] = losses["loss"] * float("nan")
            return losses

    register_plugin(maekit_register=maekit.hookimpl(lambda registry: registry.register("model", NaNFrom, name="nan_from")))


def _nan_config(tiny_config: Path, nonfinite: str) -> Config:
    cfg = load_config(tiny_config)
    cfg.model = dict(type="nan_from", model=cfg.model, start=4)
    cfg.merge_from_dict({"schedule.nonfinite": nonfinite, "checkpoint_interval": 2})
    return cfg


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config, nan_model):
    with pytest.raises(FloatingPointError, match="non-finite loss .* at iteration 4"):
        train(_nan_config(tiny_config, "stop"), tmp_path / "run", device="cpu")
    last = Path((tmp_path / "run" / "last_checkpoint").read_text().strip())
    assert last.name == "iter_4.pth"
    weights = load_state_dict(last)
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_nan_guard_can_skip_and_count(tmp_path, tiny_config, nan_model):
    runner = train(_nan_config(tiny_config, "skip"), tmp_path / "run", device="cpu")
    assert runner.optim_wrapper.skipped_steps == 2 and runner.message_hub.get_info("skipped_steps") == 2
    weights = load_state_dict(tmp_path / "run" / "iter_6.pth")
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_recipe_lr_scaling_param_groups_and_overrides(tiny_config, tmp_path):
    cfg = load_config(tiny_config, {"schedule.accumulate": 4, "schedule.blr": 1e-3, "data.batch_size": 32,
                                    "schedule.clip_grad": 3.0})
    full = runner_config(cfg, tmp_path, amp="bf16")
    assert full.optim_wrapper.optimizer.lr == pytest.approx(1e-3 * 32 * 4 / 256)
    assert full.optim_wrapper.optimizer.betas == (0.9, 0.95) and full.optim_wrapper.accumulative_counts == 4
    assert full.optim_wrapper.clip_grad == dict(max_norm=3.0)
    assert full.optim_wrapper.autocast_dtype == "bfloat16"
    (schedule,) = full.param_scheduler
    assert (schedule.type, schedule.warmup_iters, schedule.max_iters) == ("MaekitWarmupCosineLR", 2, 6)

    from mmengine.optim import build_optim_wrapper

    from maekit.engine.model import RunnerModel

    model = RunnerModel(cfg.model)
    wrapper = build_optim_wrapper(model, full.optim_wrapper)
    decay = {name: group["weight_decay"] for group in wrapper.optimizer.param_groups
             for name, param in model.named_parameters() if any(param is p for p in group["params"])}
    assert decay["model.encoder.blocks.0.attn.qkv.weight"] == 0.05
    for exempt in ("model.encoder.cls_token", "model.decoder.mask_token", "model.encoder.blocks.0.norm1.weight",
                   "model.encoder.blocks.0.attn.qkv.bias", "model.decoder.pred.bias"):
        assert decay[exempt] == 0.0, exempt
    assert "model.encoder.pos_embed" not in decay  # frozen table: not optimised at all
    assert wrapper.optimizer.defaults["fused"] is True  # one fused AdamW kernel by default
    assert runner_config(load_config(tiny_config, {"schedule.fused": False}), tmp_path).optim_wrapper.optimizer.fused is False


def test_compile_is_opt_in_and_keeps_state_dict_keys_and_losses(tiny_config, tmp_path):
    from maekit.engine.model import RunnerModel

    cfg = load_config(tiny_config)
    assert runner_config(cfg, tmp_path).model.compile is False
    cfg.compile = dict(backend="eager")  # the plumbing, without a C++ toolchain; `--compile` uses inductor
    expanded = runner_config(cfg, tmp_path).model
    torch.manual_seed(0)
    plain = RunnerModel(cfg.model)
    torch.manual_seed(0)
    compiled = RunnerModel(cfg.model, compile=expanded.compile)
    assert list(compiled.state_dict()) == list(plain.state_dict())  # no "_orig_mod." in checkpoints
    images = torch.randn(2, 1, 16, 16)
    noise = torch.rand(2, compiled.model.tokenize(images).num_tokens)
    torch.testing.assert_close(compiled.model(images, noise=noise)["loss"], plain.model(images, noise=noise)["loss"])


def test_bf16_autocast_trains_on_cpu_and_warns_where_bf16_is_emulated(tmp_path, tiny_config, monkeypatch):
    import importlib

    training = importlib.import_module("maekit.engine.train")  # the module (maekit.engine.train is also the function)

    def logged(run: str) -> str:
        return "\n".join(path.read_text() for path in (tmp_path / run).rglob("*.log"))

    assert isinstance(training.cpu_has_native_bf16(), bool)  # the real probe of this machine
    overrides = {"schedule.max_iters": 2, "schedule.warmup_iters": 1, "checkpoint_interval": 2}
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    runner = train(tiny_config, tmp_path / "emulated", device="cpu", amp="bf16", overrides=overrides)
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
    assert "CPU without native bf16" in logged("emulated")
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    train(tiny_config, tmp_path / "native", device="cpu", amp="bf16", overrides=overrides)
    assert "native bf16" not in logged("native")


def test_bad_configs_are_named(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="neither a file nor a known config name"):
        load_config("no_such_config")
    with pytest.raises(ValueError, match=r"warmup_iters must be >= 0, got -1"):
        runner_config(load_config(tiny_config, {"schedule.warmup_iters": -1}), tmp_path)
    # a warm-up longer than a shortened run is clipped (documented), not an error
    assert runner_config(load_config(tiny_config, {"schedule.warmup_iters": 9}), tmp_path).param_scheduler[0].warmup_iters == 5
    with pytest.raises(ValueError, match="amp must be off, bf16 or fp16"):
        runner_config(load_config(tiny_config), tmp_path, amp="fp8")
    with pytest.raises(ValueError, match="strategy must be 'ddp' or 'fsdp'"):
        runner_config(load_config(tiny_config, {"strategy": "zero3"}), tmp_path)
    fsdp = runner_config(load_config(tiny_config, {"strategy": "fsdp"}), tmp_path, launcher="pytorch")
    assert fsdp.model_wrapper_cfg == dict(type="MaekitFullyShardedModel")


def test_ddp_two_processes_and_two_loopback_nodes_match_one_process(tmp_path):
    # Plain SGD, so the weights show the averaged gradient directly (Adam would magnify float
    # noise in near-zero gradients into lr-sized steps).
    sgd = 'optim_wrapper = dict(type="MaekitOptimWrapper", optimizer=dict(type="SGD", lr=0.5))\n'
    configs = {}
    for name, batch in (("one", 16), ("two", 8)):
        (tmp_path / name).mkdir()
        configs[name] = write_tiny_config(tmp_path / name, batch=batch, iters=3, interval=3)
        configs[name].write_text(configs[name].read_text() + sgd)
    a, b = one_and_two_processes(configs["one"], configs["two"], tmp_path, iters=3)
    # the same two processes as two torchrun "nodes" of one process each, rendezvous on loopback
    train_processes(configs["two"], tmp_path / "nodes", processes=1, nodes=2)
    c = load_state_dict(tmp_path / "nodes" / "iter_3.pth")
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=1e-5), (key, (a[key] - b[key]).abs().max())
        assert torch.allclose(a[key], c[key], atol=1e-6, rtol=1e-5), (key, (a[key] - c[key]).abs().max())
    # the runs did train: LayerNorm weights start at exactly 1 and SGD moved them well past the tolerance
    assert (a["model.encoder.norm.weight"] - 1).abs().max() > 1e-3


def test_fsdp_two_processes_match_one_process_and_resume_from_sharded_checkpoints(tmp_path):
    # SGD with momentum: the weights show the averaged gradient directly and the optimiser has a
    # state (one momentum buffer per parameter) that the sharded checkpoint must bring back
    sgd = 'optim_wrapper = dict(type="MaekitOptimWrapper", optimizer=dict(type="SGD", lr=0.5, momentum=0.9))\n'
    configs = {}
    for name, batch, extra in (("one", 16, ""), ("fsdp", 8, 'strategy = "fsdp"\n')):
        (tmp_path / name).mkdir()
        configs[name] = write_tiny_config(tmp_path / name, batch=batch, iters=6, interval=3)
        configs[name].write_text(configs[name].read_text() + sgd + extra)
    killed = tmp_path / "fsdp" / "killed.py"
    killed.write_text(configs["fsdp"].read_text() + 'custom_imports = dict(imports=["maekit.authoring.interrupt"])\n'
                                                    'custom_hooks = [dict(type="MaekitTestInterrupt", iteration=3)]\n')
    train(configs["one"], tmp_path / "one_run", device="cpu")
    train_processes(configs["fsdp"], tmp_path / "straight", processes=2)
    assert train_processes(killed, tmp_path / "resumed", processes=2, check=False)[0][0] != 0
    # the sharded checkpoint: each rank's shard of weights and optimiser state in iter_3.dcp (DCP),
    # full weights (their own shapes) and the schedule in iter_3.pth, no temporaries
    shards = tmp_path / "resumed" / "iter_3.dcp"
    assert sorted(p.name for p in shards.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    small = torch.load(tmp_path / "resumed" / "iter_3.pth", weights_only=True)
    assert "optimizer" not in small and small["state_dict"]["model.encoder.cls_token"].shape == (1, 1, 32)
    assert not list((tmp_path / "resumed").glob("*.tmp")) and not (tmp_path / "resumed" / "iter_6.pth").exists()
    # a run of another strategy cannot resume it (its .pth holds no optimiser state): refused, named
    with pytest.raises(ValueError, match="iter_3.pth was written by a sharded \\(strategy='fsdp'\\) run"):
        train(configs["one"], tmp_path / "resumed", device="cpu", resume=str(tmp_path / "resumed" / "iter_3.pth"))
    train_processes(configs["fsdp"], tmp_path / "resumed", processes=2, resume=True)
    one, straight, resumed = (final_weights(tmp_path / run, 6) for run in ("one_run", "straight", "resumed"))
    assert one.keys() == straight.keys() == resumed.keys()
    for key in one:
        assert torch.equal(straight[key], resumed[key]), key  # resumed from the shards: bit for bit
        assert torch.allclose(one[key], straight[key], atol=1e-6, rtol=1e-5), (key, (one[key] - straight[key]).abs().max())
    assert (one["model.encoder.norm.weight"] - 1).abs().max() > 1e-3  # it did train
    # load_from (weights only) into a sharded run: the full weights of a 1-process checkpoint are
    # placed into the shards (a step at lr 0 writes them back unchanged)
    loaded = tmp_path / "fsdp" / "loaded.py"
    loaded.write_text(configs["fsdp"].read_text().replace("lr=0.5", "lr=0.0") + f"load_from = {str(tmp_path / 'one_run' / 'iter_6.pth')!r}\n"
                      "schedule = dict(max_iters=1, warmup_iters=0)\ncheckpoint_interval = 1\n")
    train_processes(loaded, tmp_path / "loaded", processes=2)
    placed = final_weights(tmp_path / "loaded", 1)
    for key in one:
        assert torch.equal(placed[key], one[key]), key
