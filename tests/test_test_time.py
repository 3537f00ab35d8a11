"""Core's test-time training loop (maekit.eval.test_time): reset per sample, the trainable set,
batched == one at a time, online carrying over, the functional optimisers against torch.optim,
and the probe heads."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.test_time import FunctionalOptimizer, TestTimeSettings, adapt_and_predict, select_trainable
from maekit.nn.attention import attend, explicit_attention
from maekit.nn.heads import LinearProbeHead, ViTProbeHead


class TinyY(nn.Module):
    """A Y: a shared trunk, a classifier head and a self-supervised head (reconstruct the input from
    a randomly dropped copy), the shape of TTT-MAE and TTT, small enough for exact checks."""

    test_time_presets = {"trunk": ("trunk.*",), "trunk_and_ssl": ("trunk.*", "ssl.*"), "all": ("*",)}

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)
        self.ssl = nn.Linear(8, 6)
        self.register_buffer("fixed", torch.ones(1))
        self.fixed_table = nn.Parameter(torch.zeros(6), requires_grad=False)

    def classify(self, batch):
        return self.head(self.trunk(batch["inputs"] + self.fixed_table))

    def test_time_views(self, image, copies, generator):
        return {"images": image.expand(copies, *image.shape), "keep": (torch.rand(copies, 6, generator=generator) > 0.5).float()}

    def test_time_loss(self, views):
        images = views["images"]
        return F.mse_loss(self.ssl(self.trunk(images * views["keep"])) * self.fixed, images)


def tiny(seed: int = 0) -> TinyY:
    torch.manual_seed(seed)
    return TinyY()


def settings(**overrides) -> TestTimeSettings:
    return TestTimeSettings(**{"steps": 4, "copies": 5, "lr": 0.1, "trainable": "trunk", "samples_per_batch": 3, **overrides})


def sequential_reference(model: TinyY, image: torch.Tensor, index: int, s: TestTimeSettings) -> list[torch.Tensor]:
    """The episodic loop written plainly: a deep copy of the model, torch.optim.SGD on the trainable
    set, the views drawn from the sample's own generator; logits after every step."""
    import copy

    from maekit.data.views import mix_seed

    work = copy.deepcopy(model)
    names = set(select_trainable(model, s.trainable))
    params = [p for n, p in work.named_parameters() if n in names]
    optimizer = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    generator = torch.Generator().manual_seed(mix_seed(s.seed, index, 7))
    logits = [work.classify({"inputs": image[None]})[0].detach()]
    for _ in range(s.steps):
        views = work.test_time_views(image, s.copies, generator)
        optimizer.zero_grad()
        work.test_time_loss(views).backward()
        optimizer.step()
        logits.append(work.classify({"inputs": image[None]})[0].detach())
    return logits


def test_episodic_loop_is_an_sgd_loop_per_sample_from_the_trained_weights():
    model, images = tiny(), torch.randn(4, 6)
    s = settings(momentum=0.9, weight_decay=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = adapt_and_predict(model, images, s)
    assert result.logits.shape == (4, 5, 3) and result.losses.shape == (4, 4)
    for i, image in enumerate(images):
        expected = torch.stack(sequential_reference(model, image, i, s))
        assert torch.allclose(result.logits[i], expected, atol=1e-5), i
    # the model itself is untouched, and a sample's result does not depend on what came before it
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    alone = adapt_and_predict(model, images[2:3], s, indices=[2])
    assert torch.allclose(alone.logits[0], result.logits[2], atol=1e-6)


def test_batched_equals_one_at_a_time():
    model, images = tiny(), torch.randn(5, 6)
    batched = adapt_and_predict(model, images, settings(samples_per_batch=5))
    single = adapt_and_predict(model, images, settings(samples_per_batch=1))
    assert torch.allclose(batched.logits, single.logits, atol=1e-6)
    assert torch.allclose(batched.losses, single.losses, atol=1e-6)
    # adaptation did something: logits moved and the self-supervised loss fell on average
    assert not torch.allclose(batched.logits[:, 0], batched.logits[:, -1])
    assert batched.losses[:, -1].mean() < batched.losses[:, 0].mean()


def test_only_the_trainable_set_adapts_and_fixed_tables_never():
    model, images = tiny(), torch.randn(2, 6)
    result, weights = adapt_and_predict(model, images, settings(trainable="trunk"), keep_weights=True)
    assert set(weights[0]) == {"trunk.0.weight", "trunk.0.bias"}
    assert not torch.equal(weights[0]["trunk.0.weight"], model.trunk[0].weight)
    # "all" leaves out the fixed table and the head, which the self-supervised loss never reaches (under
    # torch.func it would get a zero gradient, and weight decay would still move it; torch.optim would not)
    _, weights = adapt_and_predict(model, images, settings(trainable="all", weight_decay=0.5), keep_weights=True)
    assert set(weights[0]) == {"trunk.0.weight", "trunk.0.bias", "ssl.weight", "ssl.bias"}
    with pytest.raises(ValueError, match="reaches none of these parameters"):
        adapt_and_predict(model, images, settings(trainable=("head.*",)))
    _, weights = adapt_and_predict(model, images, settings(trainable=("*", "-trunk.*", "-head.*")), keep_weights=True)
    assert set(weights[0]) == {"ssl.weight", "ssl.bias"}


def test_trainable_patterns_and_settings_that_are_wrong_say_so():
    model = tiny()
    with pytest.raises(ValueError, match="'trnk.*' matches no parameter .* trunk"):
        select_trainable(model, ("trnk.*",))
    with pytest.raises(ValueError, match="not a preset of TinyY \\(trunk, trunk_and_ssl, all\\)"):
        select_trainable(model, "encoder")
    with pytest.raises(ValueError, match="leaves no parameter"):
        select_trainable(model, ("trunk.*", "-trunk.*"))
    with pytest.raises(ValueError, match="ttt.stesp: not a test-time setting \\(did you mean 'steps'"):
        TestTimeSettings.from_config({"stesp": 3})
    with pytest.raises(ValueError, match="reset='sometimes'"):
        TestTimeSettings.from_config({"reset": "sometimes"})
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        TestTimeSettings(optimizer="rmsprop")
    for key, value, expected in (("copies", 2.5, "an integer"), ("lr", "fast", "a number"), ("betas", 0.9, "two numbers"),
                                 ("betas", (True, 0.9), "two numbers"), ("trainable", 5, "a preset name")):
        with pytest.raises(ValueError, match=re.escape(f"{key}={value!r}: expected {expected}")):
            TestTimeSettings.from_config({key: value})
    with pytest.raises(ValueError, match="fixed tables .* never adapt"):
        select_trainable(model, ("fixed_table",))


def test_random_or_in_place_passes_say_what_vmap_cannot_run():
    model = tiny()
    model.trunk.insert(1, nn.Dropout(0.5))
    with pytest.raises(ValueError, match="dropout, drop-path"):
        adapt_and_predict(model, torch.randn(2, 6), settings())
    model = tiny()
    model.trunk.insert(1, nn.BatchNorm1d(8))
    with pytest.raises(ValueError, match="BatchNorm in training mode"):
        adapt_and_predict(model, torch.randn(2, 6), settings())


def test_adapting_under_no_grad_works_and_leaves_buffers_alone():
    model, images = tiny(), torch.randn(2, 6)
    expected = adapt_and_predict(model, images, settings())
    with torch.no_grad():  # an evaluation loop's habit: the loop turns gradients on for its own steps
        found = adapt_and_predict(model, images, settings())
    assert torch.allclose(found.logits, expected.logits)


def test_online_carries_weights_along_the_stream_and_episodic_does_not():
    model, images = tiny(), torch.randn(3, 6)
    online = adapt_and_predict(model, images, settings(reset="online", steps=1))
    episodic = adapt_and_predict(model, images, settings(steps=1))
    assert torch.allclose(online.logits[0], episodic.logits[0], atol=1e-6)  # the first sample sees the trained weights
    assert not torch.allclose(online.logits[1, 0], episodic.logits[1, 0])  # the second starts where the first ended
    # online = one long SGD run over the stream: replay it by hand
    s = settings(reset="online", steps=1)
    import copy

    from maekit.data.views import mix_seed

    work = copy.deepcopy(model)
    optimizer = torch.optim.SGD(work.trunk.parameters(), lr=s.lr, momentum=s.momentum)
    for i, image in enumerate(images):
        generator = torch.Generator().manual_seed(mix_seed(s.seed, i, 7))
        optimizer.zero_grad()
        work.test_time_loss(work.test_time_views(image, s.copies, generator)).backward()
        optimizer.step()
        assert torch.allclose(online.logits[i, 1], work.classify({"inputs": image[None]})[0].detach(), atol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_functional_optimizers_follow_torch_optim(name):
    torch.manual_seed(0)
    start = {"w": torch.randn(4, 3), "b": torch.randn(3)}
    s = TestTimeSettings(optimizer=name, lr=0.05, momentum=0.9, weight_decay=0.1, betas=(0.8, 0.99))
    functional = FunctionalOptimizer(s)
    params, state = dict(start), functional.init_state(start)
    reference = {k: v.clone().requires_grad_() for k, v in start.items()}
    torch_optimizer = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.1),
                       "adam": lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
                       "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)}[name](
        list(reference.values()))
    for count in range(1, 5):
        grads = {k: torch.randn_like(v) for k, v in start.items()}
        params, state = functional.step(params, grads, state, count)
        for k, p in reference.items():
            p.grad = grads[k].clone()
        torch_optimizer.step()
        for k in start:
            assert torch.allclose(params[k], reference[k].detach(), atol=1e-6), (name, count, k)


def test_explicit_attention_is_the_fused_computation():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)
    mask = torch.rand(2, 1, 5, 5) > 0.3
    mask[..., 0] = True
    for kwargs in ({}, {"attn_mask": mask}, {"is_causal": True}):
        fused = attend(q, k, v, **kwargs)
        with explicit_attention():
            written = attend(q, k, v, **kwargs)
        assert torch.allclose(fused, written, atol=1e-6), kwargs


def test_vit_probe_head_reads_the_cls_position_of_every_token_and_linear_head_pools():
    from maekit.nn.pos_embed import sincos_2d_table

    torch.manual_seed(0)
    head = ViTProbeHead(in_dim=16, grid_size=(2, 2), num_classes=5, width=8, depth=1, num_heads=2).eval()
    tokens = torch.randn(3, 5, 16)
    x = head.embed(tokens) + sincos_2d_table((2, 2), 8, 1)
    expected = head.head(head.norm(head.blocks(x))[:, 0])
    assert torch.allclose(head(tokens), expected, atol=1e-6)
    assert torch.equal(head.pos_embed[0, 0], torch.zeros(8))  # the cls row of the fixed table is zero
    with pytest.raises(ValueError, match="cls \\+ 4 patch tokens .* got 2 tokens"):
        head(tokens[:, :2])
    linear = LinearProbeHead(16, 5, pool="mean").eval()
    pooled = tokens[:, 1:].mean(1)
    assert torch.allclose(linear(tokens), linear.head(pooled / torch.sqrt(torch.tensor(1 + 1e-6))), atol=1e-5)
