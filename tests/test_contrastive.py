"""Views of one sample, grid-block masking, projectors, InfoNCE (in-batch, gathered across two gloo
processes, with a memory bank) and a teacher whose BatchNorm uses batch statistics — each checked
against a direct computation."""
from __future__ import annotations

import re

import pytest
import torch
from torch.nn import functional as F

from maekit.authoring.testing import free_port, one_distributed_launch_at_a_time
from maekit.data.multiview import MultiView
from maekit.data.views import AugmentedView, mix_seed
from maekit.nn.contrastive import InfoNCE, MLPProjector, gather_features, symmetric_info_nce
from maekit.nn.masking import GridBlockMasker
from maekit.nn.teachers import ema_teacher
from maekit.structures import Tokens


class Ramp(torch.utils.data.Dataset):
    """Images whose pixel values say where they came from (a crop's offset is readable)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        y, x = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
        return {"inputs": ((y * 40 + x) / 2000 + index / 100).expand(3, 40, 40).clone(), "label": index}


def shift_views(max_shift: int = 7) -> MultiView:
    return MultiView(views=dict(online=[dict(type="crop", size=32, position="top_left")],
                                target=[dict(type="crop", size=32, position="shift", max_shift=max_shift),
                                        dict(type="color_jitter", p=0.0)]),
                     mean=(0.0,) * 3, std=(1.0,) * 3)


def test_views_are_named_shift_as_cmae_and_travel_in_the_batch():
    views = AugmentedView(Ramp(), shift_views(), seed=3)
    sample = views[5]
    assert list(sample["views"]) == ["online", "target"]
    assert torch.equal(sample["inputs"], sample["views"]["online"])
    image = Ramp()[5 % 4]["inputs"]
    assert torch.equal(sample["views"]["online"], image[:, :32, :32])  # the unshifted top-left crop
    target = sample["views"]["target"]
    # the target is the same image shifted by (dy, dx) in 0..7: find the offset from its corner
    corner = (target[0, 0, 0] - (5 % 4) / 100) * 2000
    dy, dx = int(round(corner.item())) // 40, int(round(corner.item())) % 40
    assert 0 <= dy <= 7 and 0 <= dx <= 7
    assert torch.equal(target, image[:, dy:dy + 32, dx:dx + 32])
    offsets = set()
    for index in range(40):
        corner = int(round(((views[index]["views"]["target"][0, 0, 0] - (index % 4) / 100) * 2000).item()))
        offsets.add((corner // 40, corner % 40))
    assert len(offsets) > 10 and all(0 <= dy <= 7 and 0 <= dx <= 7 for dy, dx in offsets)
    # seeded per (seed, virtual index): the same item again is the same; a resumed run sees it
    assert torch.equal(views[5]["views"]["target"], target)
    batch = torch.utils.data.default_collate([views[i] for i in range(3)])
    assert batch["views"]["target"].shape == (3, 3, 32, 32)


def test_views_share_the_shared_steps_and_draw_their_own_independently():
    shared = [dict(type="resized_crop", size=36, scale=(0.3, 1.0)), dict(type="hflip")]
    plain = MultiView(views=dict(a=[dict(type="crop", size=32, position="random")], b=[dict(type="crop", size=32, position="random")]),
                      shared=shared, mean=(0.0,) * 3, std=(1.0,) * 3)
    # b's draws do not depend on a's: a view that draws more (noise) leaves b as it was
    noisy = MultiView(views=dict(a=[dict(type="crop", size=32, position="random"), dict(type="noise", std=0.1)],
                                 b=[dict(type="crop", size=32, position="random")]),
                      shared=shared, mean=(0.0,) * 3, std=(1.0,) * 3)
    image = torch.rand(3, 48, 48)
    # two views with no steps of their own are the shared crop itself, the same for both
    bare = MultiView(views=dict(a=[], b=[]), shared=shared, mean=(0.0,) * 3, std=(1.0,) * 3)
    torch.manual_seed(mix_seed(0, 11))
    both = bare(image)
    assert torch.equal(both["a"], both["b"]) and both["a"].shape == (3, 36, 36)
    torch.manual_seed(mix_seed(0, 11))
    first = plain(image)
    torch.manual_seed(mix_seed(0, 11))
    second = noisy(image)
    assert torch.equal(first["b"], second["b"])
    assert not torch.equal(first["a"], second["a"])


@pytest.mark.parametrize("spec, message", [
    (dict(online=[dict(type="croop", size=8)]), "unknown view step 'croop' (did you mean 'crop'?)"),
    (dict(online=[dict(type="crop", size=8, positon="random")]), "crop has no argument 'positon' (did you mean 'position'?)"),
    (dict(online=[dict(type="crop", size=8, position="left")]), "views.online[0]: crop position must be one of"),
    (dict(online=dict(type="crop", size=8)), "views.online: a view is a list of steps"),
    (dict(online=[dict(type="crop", size=(8, 6))]), "views.online[0]: crop size is one side in pixels"),
])
def test_view_errors_name_the_step(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MultiView(views=spec)


def test_the_evaluation_transform_takes_the_first_views_size():
    from maekit.data.multiview import first_view_size
    from maekit.data.views import EvalTransform

    config = dict(type="views", shared=[dict(type="resized_crop", size=36)],
                  views=dict(online=[dict(type="crop", size=32, position="top_left")], other=[]), mean=(0.5,), std=(0.5,))
    assert first_view_size(config) == 32
    assert first_view_size(dict(type="views", shared=[dict(type="resized_crop", size=(20, 24))], views=dict(a=[]))) == (20, 24)
    assert first_view_size(dict(type="views", shared=[dict(type="resize", size=36)], views=dict(a=[]))) is None
    evaluation = EvalTransform.matching(Ramp(), config)  # Ramp's images are 40×40
    assert evaluation.size == (32, 32) and evaluation.mean == (0.5,)
    with pytest.raises(ValueError, match="first view has no fixed size"):
        EvalTransform.matching(Ramp(), dict(type="views", shared=[dict(type="resize", size=36)], views=dict(a=[])))


def test_a_shift_without_max_shift_is_an_error():
    with pytest.raises(ValueError, match=r"views.t\[0\]: crop position='shift' needs max_shift >= 1"):
        MultiView(views=dict(t=[dict(type="crop", size=32, position="shift")]))


def test_a_memory_bank_needs_every_processs_keys():
    with pytest.raises(ValueError, match="gather='keys' with queue > 0"):
        InfoNCE(gather="none", queue=8, dim=4)


def test_a_shift_larger_than_the_image_allows_is_an_error():
    views = MultiView(views=dict(t=[dict(type="crop", size=32, position="shift", max_shift=31)]))
    with pytest.raises(ValueError, match="needs an image of at least 63 px a side, got 40×40"):
        views(torch.rand(3, 40, 40))


def test_grid_block_mask_removes_whole_blocks_at_the_reference_count():
    grid = (14, 14)
    tokens = Tokens(torch.zeros(3, 196, 1), torch.zeros(3, 196, 2), {"grid_size": grid})
    masker = GridBlockMasker(0.65, block=2)
    noise = torch.rand(3, 49)
    mask = masker(tokens, noise=noise)
    assert mask.num_visible == 68 and int(mask.masked[0].sum()) == 128  # int(49·0.35) = 17 blocks
    blocks = mask.masked.view(3, 7, 2, 7, 2).permute(0, 1, 3, 2, 4).reshape(3, 49, 4)
    assert torch.all((blocks.sum(-1) == 0) | (blocks.sum(-1) == 4))  # every 2×2 block whole
    # the 17 blocks of lowest noise are the visible ones (the reference's argsort rule)
    expected = torch.ones(3, 49)
    expected.scatter_(1, torch.argsort(noise, dim=1)[:, :17], 0.0)
    torch.testing.assert_close(blocks[..., 0], expected)
    assert torch.equal(torch.gather(mask.masked, 1, mask.ids_keep), torch.zeros(3, 68))
    with pytest.raises(ValueError, match="does not divide into 3×3 blocks"):
        GridBlockMasker(0.5, block=3)(tokens)


def test_projector_layouts_match_the_references():
    cmae = MLPProjector(768, 1536, 256, layers=2, bias=True, last_bias=False, last_bn=False, bn_eps=1e-6)
    assert [type(m).__name__ for m in cmae] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert cmae[0].bias is not None and cmae[3].bias is None and cmae[1].eps == 1e-6
    sdmae = MLPProjector(768, 4096, 768, layers=3, bias=False, last_bn=True, last_bn_affine=False)
    assert [type(m).__name__ for m in sdmae] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU",
                                                 "Linear", "BatchNorm1d"]
    assert sdmae[-1].weight is None and all(m.bias is None for m in sdmae if isinstance(m, torch.nn.Linear))
    assert cmae(torch.randn(4, 1, 768)).shape == (4, 256)


def direct_info_nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    rows = [-(torch.exp(q[i] @ k[i] / tau) / torch.exp(q[i] @ k.t() / tau).sum()).log() for i in range(len(q))]
    return torch.stack(rows).mean()


def test_info_nce_is_the_direct_formula_and_scales_by_two_tau():
    torch.manual_seed(0)
    q, k = torch.randn(6, 5), torch.randn(6, 5)
    out = InfoNCE(tau=0.07, scale_2tau=True, gather="none")(q, k)
    torch.testing.assert_close(out["loss"], 2 * 0.07 * direct_info_nce(q, k, 0.07))
    both = symmetric_info_nce(InfoNCE(tau=1.0, gather="none"), (q, k), (k.flip(0), q.flip(0)))
    torch.testing.assert_close(both["loss"], direct_info_nce(q, q.flip(0), 1.0) + direct_info_nce(k.flip(0), k, 1.0))


def test_memory_bank_negatives_and_wraparound():
    torch.manual_seed(0)
    loss = InfoNCE(tau=0.2, queue=5, dim=4)  # one process: "keys" gathers just its own
    bank = loss.bank.clone()
    q, k = torch.randn(3, 4), torch.randn(3, 4)
    out = loss(q, k)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ bank.t()], dim=1) / 0.2
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits, torch.zeros(3, dtype=torch.long)))
    torch.testing.assert_close(loss.bank[:3], kn)  # the keys took the oldest places
    loss(q, k)  # 3 more: two at the end, one wrapping to the start
    torch.testing.assert_close(loss.bank[3:], kn[:2])
    torch.testing.assert_close(loss.bank[0], kn[2])
    assert int(loss.bank_pointer) == 1
    loss.eval()
    before = loss.bank.clone()
    loss(q, k)
    assert torch.equal(loss.bank, before)  # evaluation leaves the bank alone


def _two_process_info_nce(rank: int, port: int, q: torch.Tensor, k: torch.Tensor, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        half = len(q) // 2
        local_q = q[rank * half:(rank + 1) * half].clone().requires_grad_(True)
        out = InfoNCE(tau=0.1, scale_2tau=True)(local_q, k[rank * half:(rank + 1) * half])
        out["loss"].backward()
        gathered = gather_features(local_q.detach())
        results[rank] = (out["loss"].item(), local_q.grad.clone(), gathered)
    finally:
        dist.destroy_process_group()


def test_each_of_two_processes_reports_the_global_batch_loss_and_ddp_gets_its_gradient():
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    q, k = torch.randn(8, 5), torch.randn(8, 5)
    whole = q.clone().requires_grad_(True)
    expected = InfoNCE(tau=0.1, scale_2tau=True)(whole, k)["loss"]
    expected.backward()
    results = mp.Manager().dict()
    with one_distributed_launch_at_a_time(True):  # not beside another test's distributed job
        mp.spawn(_two_process_info_nce, args=(free_port(), q, k, results), nprocs=2, join=True)
    for rank in range(2):
        # every rank reports the loss of the global batch (its own queries against all 8 keys,
        # averaged with the other rank's)
        assert results[rank][0] == pytest.approx(expected.item(), rel=1e-6)
        # and each rank's gradient is that of its own queries' mean: DDP's average of the ranks'
        # parameter gradients is then the global batch's gradient
        torch.testing.assert_close(results[rank][1] / 2, whole.grad[rank * 4:(rank + 1) * 4])
        torch.testing.assert_close(results[rank][2], q)  # gathered in rank order


def test_batch_stats_teacher_normalises_with_the_batch_and_stays_out_of_gradients():
    torch.manual_seed(0)
    student = MLPProjector(4, 8, 3, layers=2)
    teacher = ema_teacher(MLPProjector(4, 8, 3, layers=2), momentum=0.9, student="projector", batch_stats=True)
    teacher.copy_from(student)
    assert teacher.module[1].training  # from construction on, not only after .train()
    x = torch.randn(16, 4) * 3 + 2
    student.train()
    torch.testing.assert_close(teacher(x), student(x))  # train-mode BN on both: batch statistics
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.eval()
    student.eval()
    torch.testing.assert_close(teacher(x), student(x))
    frozen = ema_teacher(MLPProjector(4, 8, 3, layers=2), student="projector")
    frozen.train()
    assert not frozen.module[1].training  # without batch_stats every layer stays in eval


def test_ddp_two_processes_see_the_views_one_process_sees(tmp_path):
    """Views are seeded per sample: 2 processes × 8 train exactly as 1 × 16 (MAE reading the first view)."""
    from maekit.authoring.testing import one_and_two_processes
    from tests.test_training import write_tiny_config

    views = ('data["dataset"]["size"] = 20\n'
             'data["transform"] = dict(_delete_=True, type="views", '
             'shared=[dict(type="resized_crop", size=18, scale=(0.5, 1.0))], '
             'views=dict(online=[dict(type="crop", size=16, position="shift", max_shift=2), dict(type="noise", std=0.1)], '
             'other=[dict(type="crop", size=16, position="random")]))\n'
             'optim_wrapper = dict(type="MaekitOptimWrapper", optimizer=dict(type="SGD", lr=0.5))\n')
    configs = {}
    for name, batch in (("one", 16), ("two", 8)):
        (tmp_path / name).mkdir()
        configs[name] = write_tiny_config(tmp_path / name, batch=batch, iters=3, interval=3)
        configs[name].write_text(configs[name].read_text() + views)
    a, b = one_and_two_processes(configs["one"], configs["two"], tmp_path, iters=3)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=1e-5), (key, (a[key] - b[key]).abs().max())
    assert (a["model.encoder.norm.weight"] - 1).abs().max() > 1e-3  # it trained


@pytest.mark.parametrize("directions", ["sum", "mean", "rows", "columns"])
def test_pair_contrast_is_the_direct_cross_entropy_of_each_direction(directions):
    from maekit.nn.contrastive import PairContrastiveLoss

    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_()
    b = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_()
    similarity = a @ b.t()
    found = PairContrastiveLoss(0.1, directions, name="pair")(similarity)
    # row i's softmax over the columns picks column i; column j's softmax over the rows picks row j
    rows = -sum(torch.log(torch.exp(similarity[i] / 0.1)[i] / torch.exp(similarity[i] / 0.1).sum()) for i in range(5)) / 5
    columns = -sum(torch.log(torch.exp(similarity[:, j] / 0.1)[j] / torch.exp(similarity[:, j] / 0.1).sum())
                   for j in range(5)) / 5
    expected = {"sum": rows + columns, "mean": (rows + columns) / 2, "rows": rows, "columns": columns}[directions]
    assert torch.allclose(found["pair"], expected, atol=1e-5) and torch.equal(found["loss"], found["pair"])
    found["loss"].backward()  # both sides of the pair are trained (no side is detached)
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    assert 0 <= float(found["pair_accuracy"]) <= 1


def test_pair_contrast_errors_name_the_setting():
    from maekit.nn.contrastive import PairContrastiveLoss

    with pytest.raises(ValueError, match="directions must be one of"):
        PairContrastiveLoss(0.1, "both")
    with pytest.raises(ValueError, match="temperature must be positive"):
        PairContrastiveLoss(0.0)
    with pytest.raises(ValueError, match="square similarity matrix"):
        PairContrastiveLoss()(torch.zeros(2, 3))
