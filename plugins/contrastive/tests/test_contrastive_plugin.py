"""maekit-contrastive: registration, training through core's engine (resume with teachers and the
memory bank, DDP), configs and the demo.
Run alone with: MAEKIT_PLUGINS=maekit-contrastive python -m pytest plugins/contrastive/tests"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import maekit_contrastive
import pytest
import torch
from maekit_contrastive import plugin

from maekit.authoring.testing import check_registers_only_its_names, free_port, straight_and_resumed

TINY = ('size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1, '
        'encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2')
MODELS = {
    "cmae": f'dict(type="cmae", {TINY}, projector_dim=8, projector_hidden=16)',
    "macrl": f'dict(type="macrl", {TINY}, projector_dim=8, projector_hidden=16, queue=20)',
    "sdmae": f'dict(type="sdmae", {TINY}, contrastive_heads=2, mlp_dim=16)',
}
VIEWS = {
    "cmae": 'online=[dict(type="crop", size=16, position="top_left")], '
            'target=[dict(type="crop", size=16, position="shift", max_shift=2), dict(type="noise", std=0.05)]',
    "macrl": 'strong=[dict(type="resized_crop", size=16, scale=(0.4, 1.0)), dict(type="noise", std=0.05)], '
             'weak=[dict(type="resized_crop", size=16, scale=(0.7, 1.0))]',
    "sdmae": 'first=[dict(type="crop", size=16, position="top_left")], '
             'second=[dict(type="crop", size=16, position="random"), dict(type="color_jitter", p=0.8)]',
}


def tiny_config(folder: Path, method: str, iters: int = 6, batch: int = 8) -> Path:
    path = folder / f"{method}_tiny.py"
    path.write_text(textwrap.dedent(f"""
        model = {MODELS[method]}
        data = dict(dataset=dict(type="digits", split="train", size=18, channels=1),
                    transform=dict(type="views", views=dict({VIEWS[method]})), batch_size={batch})
        schedule = dict(max_iters={iters}, warmup_iters=1, blr=1e-3)
        checkpoint_interval = 3
        log_interval = 1
    """))
    return path


def test_contrastive_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-contrastive", maekit_contrastive.__version__, plugin,
                                   prefixes=("cmae", "macrl", "sdmae"))


@pytest.mark.parametrize("method", ["cmae", "macrl"])
def test_resume_in_the_middle_is_bit_identical_with_teachers_and_the_bank(tmp_path, method):
    straight, resumed = straight_and_resumed(tiny_config(tmp_path, method), tmp_path, iters=6, interrupt_at=3)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    if method == "cmae":  # both EMA copies moved at every step and came back with the checkpoint
        assert int(straight["model.teacher_encoder.updates"]) == 6 and int(straight["model.teacher_projector.updates"]) == 6
    else:  # 6 steps × 2 branches × 8 keys into a bank of 20 (at the interruption it stood at 48 % 20 = 8)
        assert int(straight["model.contrastive.bank_pointer"]) == (6 * 2 * 8) % 20 == 16


def test_two_process_ddp_keeps_the_ema_branch_equal_on_every_rank(tmp_path):
    config = tiny_config(tmp_path, "cmae", iters=3, batch=4)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys, torch
        from maekit.engine import train
        from maekit.engine.hooks import method_of
        runner = train(sys.argv[1], sys.argv[2], device="cpu", launcher="pytorch")
        method = method_of(runner)
        state = {**method.teacher_encoder.state_dict(prefix="encoder."), **method.teacher_projector.state_dict(prefix="projector.")}
        torch.save(state, f"{sys.argv[2]}/teacher_rank{runner.rank}.pt")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(script), str(config), str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "work" / f"teacher_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert int(ranks[0]["encoder.updates"]) == 3
    # EMA weights are equal; the projector's BatchNorm running statistics are each rank's own batches
    # (per-process BatchNorm; the reference's SyncBN needs CUDA)
    for key in ranks[0]:
        if "running_" not in key:
            assert torch.equal(ranks[0][key], ranks[1][key]), key


def test_configs_state_the_references_recipes_and_the_demos_match_maes_budget():
    from maekit.engine import load_config
    from maekit.plugins import demos

    assert {name: demos()[name].rsplit(":", 1)[1] for name in ("cmae", "macrl", "sdmae", "contrastive")} == {
        "cmae": "run_cmae_demo", "macrl": "run_macrl_demo", "sdmae": "run_sdmae_demo", "contrastive": "run_contrastive_demo"}
    plain = load_config("mae_demo_digits")
    for name in ("cmae_demo_digits", "macrl_demo_digits", "sdmae_demo_digits"):
        demo = load_config(name)
        assert demo.data.dataset == plain.data.dataset and demo.data.batch_size == plain.data.batch_size, name
        assert {k: demo.schedule[k] for k in plain.schedule} == dict(plain.schedule), name
        assert demo.model.encoder == plain.model.encoder and demo.model.img_size == plain.model.img_size, name
        assert demo.data.transform.type == "views"
    cmae = load_config("cmae_vit_base_in1k")
    epoch = 1281167 // 4096
    assert cmae.schedule.max_iters == 1600 * epoch and cmae.schedule.warmup_iters == 40 * epoch
    assert cmae.data.batch_size == 256 and cmae.model.mask_ratio == 0.65 and cmae.model.momentum == 0.996
    target = cmae.data.transform.views.target
    assert target[0] == dict(type="crop", size=224, position="shift", max_shift=31)
    assert cmae.data.transform.shared[0]["size"] == 256
    sdmae = load_config("sdmae_vit_base_folder")
    assert sdmae.schedule.blr == 1e-3 and sdmae.data.batch_size == 64 and sdmae.data.transform.shared[0]["size"] == 256
    assert load_config("macrl_vit_base_folder").model.queue == 4096


def test_demo_runs_sdmae_and_mae_on_all_and_on_a_tenth_of_the_digits(tmp_path):
    # the smoke test: two iterations and a small probe (the full demo is `maekit demo sdmae`)
    from maekit_contrastive.demo import run_contrastive_demo

    from maekit.configs import find_config

    probe = ("probe = dict(train=dict(type='digits', split='test', size=32, channels=1),\n"
             "             test=dict(type='digits', split='test', size=32, channels=1), pools=('mean',))\n")
    config = tmp_path / "sdmae.py"
    config.write_text(f"_base_ = [{str(find_config('sdmae_demo_digits'))!r}]\n" + probe)
    metrics = run_contrastive_demo(tmp_path / "out", max_iters=2, log=lambda *_: None, methods={"sdmae": str(config)})
    for run in ("sdmae", "mae", "sdmae_small", "mae_small"):
        assert 0 <= metrics[f"{run}_probe_accuracy_pretrained"] <= 1, run
        assert (tmp_path / "out" / run / "metrics.json").is_file()
    # the small setting: pre-training and probe on the same stratified tenth of the training split
    from maekit_contrastive.demo import SMALL_DATA

    from maekit.engine import load_config
    from maekit.registry import build

    small = load_config("sdmae_demo_digits", SMALL_DATA)
    pretraining, labelled = build("dataset", small.data.dataset), build("dataset", small.probe.train)
    assert len(pretraining) == len(labelled) == 143 and torch.equal(pretraining.labels, labelled.labels)
