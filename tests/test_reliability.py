"""Faults during training: non-finite steps, a process killed mid-write or mid-run, a full disk.
What must hold: no checkpoint ever holds a non-finite value; ``last_checkpoint`` always names a
complete file; a failed write leaves the earlier checkpoints in place; resuming after any of these
ends bit-identical to a run that was never interrupted."""
import errno
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from maekit.authoring.testing import run_cli
from maekit.io.checkpoint import load_state_dict
from tests.test_training import write_tiny_config

# A plugin file for the killed subprocesses: it registers a hook that SIGKILLs the run after a
# chosen iteration, and makes the atomic writer die half-way through writing a chosen file.
FAULTS = '''
import os, signal
from pathlib import Path

import maekit
import maekit.io.checkpoint as io
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

KILL_AT_WRITE = os.environ.get("KILL_AT_WRITE")
original = io.atomic_write


def dying_atomic_write(path, write):
    if Path(path).name != KILL_AT_WRITE:
        return original(path, write)

    def half_then_die(tmp):
        write(tmp)
        os.truncate(tmp, os.path.getsize(tmp) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    return original(path, half_then_die)


io.atomic_write = dying_atomic_write


@HOOKS.register_module(name="TestKillAfterIter", force=True)
class KillAfterIter(Hook):
    priority = "LOWEST"

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@maekit.hookimpl
def maekit_register(registry):
    pass
'''


def train_cli(config: Path, work: Path, *extra: str, env: dict | None = None, check: bool = True):
    return run_cli("--plugin", str(config.parent / "faults.py"), "train", str(config), "--work-dir", str(work),
                   "--device", "cpu", *extra, env_extra=env, check=check)


@pytest.fixture
def setup(tmp_path):
    config = write_tiny_config(tmp_path, iters=6, interval=2)
    (tmp_path / "faults.py").write_text(FAULTS)
    train_cli(config, tmp_path / "straight")
    return config, load_state_dict(tmp_path / "straight" / "iter_6.pth")


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def last_named(work: Path) -> Path:
    return Path((work / "last_checkpoint").read_text().strip())


def test_killed_while_writing_a_checkpoint_then_resumed(tmp_path, setup):
    config, straight = setup
    work = tmp_path / "killed_in_write"
    result = train_cli(config, work, env={"KILL_AT_WRITE": "iter_4.pth"}, check=False)
    assert result.returncode == -signal.SIGKILL
    assert last_named(work).name == "iter_2.pth" and not (work / "iter_4.pth").exists()
    assert torch.load(last_named(work), weights_only=True)["meta"]["iter"] == 2  # complete and readable
    assert list(work.glob(".iter_4.pth.*")), "the half-written temporary file is there before the resume"
    train_cli(config, work, "--resume")
    assert not list(work.glob(".*.maekit-tmp")), "the next start removed it"
    assert_identical(straight, load_state_dict(work / "iter_6.pth"))


def test_killed_between_checkpoints_then_resumed(tmp_path, setup):
    config, straight = setup
    work = tmp_path / "killed_in_run"
    result = train_cli(config, work, "--cfg-options", "custom_hooks=[{'type': 'TestKillAfterIter', 'iteration': 5}]",
                       check=False)
    assert result.returncode == -signal.SIGKILL and last_named(work).name == "iter_4.pth"
    train_cli(config, work, "--resume")
    assert_identical(straight, load_state_dict(work / "iter_6.pth"))


def test_a_full_disk_keeps_the_last_checkpoint_and_names_the_file(tmp_path, setup, monkeypatch):
    import maekit.io.checkpoint as io
    from maekit.engine import train

    config, straight = setup
    work = tmp_path / "full_disk"
    original = io.atomic_write

    def no_space_for_iter_4(path, write):
        if Path(path).name == "iter_4.pth":
            def fill_then_fail(tmp):
                Path(tmp).write_bytes(b"partial")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original(path, fill_then_fail)
        return original(path, write)

    monkeypatch.setattr(io, "atomic_write", no_space_for_iter_4)
    with pytest.raises(OSError, match=r"iter_4\.pth: could not be written \(No space left on device\)"):
        train(config, work, device="cpu", overrides={"max_keep_checkpoints": 1})
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_2.pth"]  # not deleted before the new one existed
    assert last_named(work).name == "iter_2.pth" and not list(work.glob(".*"))
    monkeypatch.setattr(io, "atomic_write", original)
    train(config, work, device="cpu", resume="auto", overrides={"max_keep_checkpoints": 1})
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_6.pth"]
    assert_identical(straight, load_state_dict(work / "iter_6.pth"))


def all_checkpoints_finite(work: Path) -> bool:
    from maekit.engine.hooks import nonfinite_tensors

    return all(not nonfinite_tensors({k: v for k, v in torch.load(path, weights_only=True).items()
                                      if k in ("state_dict", "optimizer")})
               for path in work.glob("iter_*.pth"))


def test_an_update_that_makes_weights_nan_is_never_checkpointed(tmp_path):
    from maekit.engine import train

    config = write_tiny_config(tmp_path, iters=6, interval=2)
    # the reproduction: the loss stays finite while the update makes weights non-finite
    huge = {"schedule.blr": 1e10, "schedule.warmup_iters": 1}
    with pytest.raises(FloatingPointError) as stopped:
        train(config, tmp_path / "stop", device="cpu", overrides=huge)
    message = str(stopped.value)
    assert "at iteration" in message and "last good checkpoint" in message
    assert any(what in message for what in ("non-finite loss", "non-finite gradient norm", "made parameters non-finite"))
    assert all_checkpoints_finite(tmp_path / "stop")
    runner = train(config, tmp_path / "skip", device="cpu", overrides={**huge, "schedule.nonfinite": "skip"})
    assert runner.optim_wrapper.skipped_steps > 0
    assert all_checkpoints_finite(tmp_path / "skip") and (tmp_path / "skip" / "iter_6.pth").exists()


def test_a_skipped_update_leaves_weights_and_optimiser_state_as_before(monkeypatch):
    from mmengine.logging import MessageHub

    from maekit.engine.optim import GuardedOptimWrapper

    MessageHub.get_instance("reliability-test")
    model = torch.nn.Linear(3, 2)
    wrapper = GuardedOptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3), nonfinite="skip")
    wrapper.update_params(model(torch.randn(4, 3)).pow(2).mean())  # one good step: Adam state exists
    before = [p.detach().clone() for p in model.parameters()]
    state = {k: v.clone() for k, v in wrapper.optimizer.state[model.weight].items()}
    with torch.no_grad():
        model.weight.grad = None
    real_step = torch.optim.AdamW.step

    def poisoning_step(self, *args, **kwargs):  # an update that turns a weight into inf
        real_step(self, *args, **kwargs)
        with torch.no_grad():
            model.weight[0, 0] = math.inf

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoning_step)
    wrapper.update_params(model(torch.randn(4, 3)).pow(2).mean())
    assert wrapper.skipped_steps == 1
    for kept, now in zip(before, model.parameters()):
        assert torch.equal(kept, now)
    for key, value in state.items():
        assert torch.equal(value, wrapper.optimizer.state[model.weight][key]), key


def test_saving_refuses_a_checkpoint_with_a_non_finite_tensor():
    from types import SimpleNamespace

    from maekit.engine.hooks import SafeCheckpointHook

    hook = SafeCheckpointHook(interval=1, by_epoch=False)
    hub = SimpleNamespace(get_info=lambda key: "work/iter_2.pth")
    runner = SimpleNamespace(iter=3, message_hub=hub)
    good = {"state_dict": {"w": torch.ones(2)}, "optimizer": {"state": {0: {"exp_avg": torch.zeros(2)}}}}
    hook.before_save_checkpoint(runner, good)
    bad = {"state_dict": {"w": torch.tensor([1.0, float("nan")])}, "optimizer": {"state": {0: {"exp_avg": torch.full((2,), math.inf)}}}}
    with pytest.raises(FloatingPointError, match=r"iteration 4: 2 tensor\(s\) are non-finite \(state_dict.w, "
                                                 r"optimizer.state.0.exp_avg\); the last good checkpoint is work/iter_2.pth"):
        hook.before_save_checkpoint(runner, bad)


def test_the_schedule_is_the_references_warm_up_then_cosine_and_resumes_exactly():
    from maekit.engine.schedule import WarmupCosineLR, mae_lr

    for warmup, total in ((0, 6), (1, 6), (4, 10)):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([{"params": [param], "lr": 2.0}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.5}])
        scheduler = WarmupCosineLR(optimizer, warmup_iters=warmup, max_iters=total, min_lr=0.2)
        seen = []
        for _ in range(total):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        for t, (lr, scaled) in enumerate(seen):
            # independently: the reference's formula at iteration t, and the second group at its 1/4 share
            expected = 2.0 * t / warmup if t < warmup else 0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
            assert lr == pytest.approx(expected) and scaled == pytest.approx(expected / 4)
        if warmup:
            assert seen[0][0] == 0.0 and seen[warmup][0] == pytest.approx(2.0)  # the peak, exactly at W
        assert mae_lr(total, 2.0, warmup, total, 0.2) == pytest.approx(0.2)


def test_a_non_finite_micro_batch_drops_its_whole_accumulation_window():
    from mmengine.logging import MessageHub

    from maekit.engine.optim import GuardedOptimWrapper

    MessageHub.get_instance("reliability-accumulation")
    model = torch.nn.Linear(3, 1)
    wrapper = GuardedOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), nonfinite="skip", accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 100)
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.update_params(model(torch.randn(2, 3)).pow(2).mean())  # a good micro-batch: gradients accumulate
    wrapper.update_params(model(torch.randn(2, 3)).sum() * float("nan"))  # the window's last: non-finite
    assert wrapper.skipped_steps == 1 and all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no partial-sum step
    wrapper.update_params(model(torch.randn(2, 3)).sum() * float("nan"))  # the next window's first
    wrapper.update_params(model(torch.randn(2, 3)).pow(2).mean())  # its last, good: still dropped
    assert wrapper.skipped_steps == 2 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    for _ in range(2):  # a good window steps
        wrapper.update_params(model(torch.randn(2, 3)).pow(2).mean())
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_resuming_a_checkpoint_of_the_old_two_scheduler_chain_keeps_the_configured_schedule():
    from mmengine.optim.scheduler import LinearLR

    from maekit.engine.schedule import WarmupCosineLR, mae_lr

    old_optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    old = LinearLR(old_optimizer, start_factor=1e-6, by_epoch=False, begin=0, end=3)
    for _ in range(5):  # five iterations into the old run, past its warm-up
        old_optimizer.step()
        old.step()
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = WarmupCosineLR(optimizer, warmup_iters=3, max_iters=10)
    scheduler.load_state_dict(old.state_dict())
    assert (scheduler.warmup_iters, scheduler.max_iters, scheduler.end) == (3, 10, 10)
    for t in range(6, 10):
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(mae_lr(t, 1.0, 3, 10))
