"""Maskers: random (the reference MAE's), block-wise over token coordinates, BEiT's rectangles
topped up with random tokens to an exact count (BootMAE), and a given pattern."""
from __future__ import annotations

import math
import random

import torch

from maekit.nn.base import Masker, NoiseSource
from maekit.ops import gather
from maekit.structures import Mask, Tokens

__all__ = ["RandomMasker", "ScoreGuidedMasker", "TubeMasker", "BlockMasker", "BlockPlusRandomMasker", "BlockwiseMasker", "GridBlockMasker", "GivenMasker", "BernoulliMasker", "beit_block_mask", "block_mask_3d", "masked_folds",
           "check_mask_ratio", "num_visible", "draw_noise", "NoiseSource"]


def check_mask_ratio(mask_ratio: float) -> float:
    if not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")
    return float(mask_ratio)


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """int(N·(1 − ratio)) as the reference (49 of 196 at 0.75), at least one token."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def draw_noise(shape: tuple[int, ...], noise: NoiseSource, device: torch.device,
               names: str = "(batch, tokens)") -> torch.Tensor:
    """Uniform noise of ``shape``: drawn here, given, or made by a callable ``noise(shape, device)``
    (maekit's trainer passes one seeded per sample). ``names`` says what the dims are in errors."""
    if callable(noise):
        noise = noise(shape, device)
    if noise is None:
        return torch.rand(shape, device=device)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise must have shape {names} = {tuple(shape)}, got {tuple(noise.shape)}")
    return noise.to(device)


class RandomMasker(Masker):
    """Per-sample random masking of the reference MAE: argsort of uniform noise, low noise kept."""

    def __init__(self, mask_ratio: float = 0.75, rounding: str = "visible") -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        if rounding not in ("visible", "removed"):
            raise ValueError(f"rounding must be 'visible' or 'removed', got {rounding!r}")
        self.rounding = rounding

    def visible_count(self, num_tokens: int) -> int:
        """How many tokens stay visible: the reference MAE's ``int(N·(1 − ratio))``; with
        ``rounding="removed"`` ``N − int(N·ratio)`` (OmniMAE, VideoMAE: 157 of 1568 at 0.9, not 156)."""
        if self.rounding == "removed":
            return max(1, num_tokens - int(num_tokens * self.mask_ratio))
        return num_visible(num_tokens, self.mask_ratio)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        return Mask.from_order(ids_shuffle, self.visible_count(tokens.num_tokens))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}"


class ScoreGuidedMasker(Masker):
    """Tokens masked, thrown or kept by a per-token score (B×N, larger = more important: a cls
    attention map, :func:`maekit.nn.scores.cls_attention`), for AMT, AttMask and MRA.

    The tokens are put in an order. ``select="sample"``: successive draws without replacement with
    probability proportional to the score (the law of AMT's ``torch.multinomial(weights, N)``),
    made by the Gumbel-top-k trick from the uniform noise, so seeded noise makes it deterministic;
    ``"rank"``: by score, largest first (AttMask), ties broken by the noise. ``prefer="high"``
    removes from the front of the order, ``"low"`` from the back (AttMask-Low). The first
    ``⌊mask_ratio·N⌋`` are masked (the decoder predicts them), the next up to
    ``⌊(mask_ratio + throw_ratio)·N⌋`` thrown (``Mask.thrown``: in no encoder, decoder or loss), the
    rest stay visible: AMT's 0.45 / 0.40 gives 88 masked, 78 thrown, 30 visible of 196.
    ``hint_ratio`` s (AttMask-Hint): ``⌊s·N⌋`` of the masked tokens, drawn uniformly from the first
    ``⌊hint_pool·N⌋`` of the order (the masked ones among them), are revealed again. Without scores every token scores alike
    (random masking with these counts). Noise: one number per token (B×N); a masker built with
    hints draws a second one per token for them (B×2N), independent of the order.
    """

    def __init__(self, mask_ratio: float = 0.45, throw_ratio: float = 0.0, select: str = "sample", prefer: str = "high",
                 hint_ratio: float = 0.0, hint_pool: float = 0.1) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        if not isinstance(throw_ratio, (int, float)) or throw_ratio < 0 or mask_ratio + throw_ratio >= 1:
            raise ValueError(f"throw_ratio must be >= 0 with mask_ratio + throw_ratio < 1 (one token stays visible), "
                             f"got mask_ratio {mask_ratio!r}, throw_ratio {throw_ratio!r}")
        if select not in ("sample", "rank"):
            raise ValueError(f"score mask select must be 'sample' (in proportion to the score) or 'rank', got {select!r}")
        if prefer not in ("high", "low"):
            raise ValueError(f"score mask prefer must be 'high' or 'low' (which scores are masked), got {prefer!r}")
        if not 0 <= hint_ratio <= hint_pool <= 1:
            raise ValueError(f"need 0 <= hint_ratio <= hint_pool <= 1, got hint_ratio {hint_ratio!r}, hint_pool {hint_pool!r}")
        self.throw_ratio, self.select, self.prefer = float(throw_ratio), select, prefer
        self.hint_ratio, self.hint_pool = float(hint_ratio), float(hint_pool)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        return (tokens.batch_size, tokens.num_tokens * (2 if self.hint_ratio > 0 else 1))

    def counts(self, num_tokens: int, mask_ratio: float | None = None,
               hint_ratio: float | None = None) -> tuple[int, int, int]:
        """(masked, thrown, revealed by hints) for ``num_tokens`` tokens."""
        ratio = self.mask_ratio if mask_ratio is None else check_mask_ratio(mask_ratio)
        hint = self.hint_ratio if hint_ratio is None else float(hint_ratio)
        if not 0 <= hint <= self.hint_pool:
            raise ValueError(f"hint_ratio must be in [0, hint_pool={self.hint_pool}], got {hint!r}")
        masked = int(ratio * num_tokens)
        thrown = min(int((ratio + self.throw_ratio) * num_tokens), num_tokens - 1) - masked
        return masked, max(thrown, 0), min(int(hint * num_tokens), masked)

    def order(self, scores: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Token ids B×N, the ones to remove first at the front."""
        if self.select == "sample":
            # Gumbel-top-k: argsort of log w + Gumbel noise draws without replacement ∝ w
            gumbel = -torch.log(-torch.log(noise.clamp(1e-12, 1 - 1e-7)))
            ids = torch.argsort(torch.log(scores.float().clamp_min(1e-30)) + gumbel, dim=1, descending=True)
        else:
            by_noise = torch.argsort(noise, dim=1)
            ids = gather(by_noise, torch.argsort(gather(scores.float(), by_noise), dim=1, descending=True, stable=True))
        return ids if self.prefer == "high" else ids.flip(1)

    def forward(self, tokens: Tokens, noise: NoiseSource = None, scores: torch.Tensor | None = None,
                mask_ratio: float | None = None, hint_ratio: float | None = None) -> Mask:
        """``scores`` B×N (None: ``tokens.meta["scores"]`` when the tokens carry them, else
        uniform); ``mask_ratio`` and ``hint_ratio`` override the masker's for this batch (AttMask
        draws them once per iteration)."""
        batch, length = tokens.batch_size, tokens.num_tokens
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        if scores is None:
            scores = tokens.meta.get("scores")
        if scores is None:
            scores = torch.ones(batch, length, device=noise.device)
        if tuple(scores.shape) != (batch, length):
            raise ValueError(f"scores must have shape (batch, tokens) = {(batch, length)}, got {tuple(scores.shape)}")
        masked_count, thrown_count, revealed = self.counts(length, mask_ratio, hint_ratio)
        hint_noise = noise[:, length:]
        noise = noise[:, :length]
        ids = self.order(scores.to(noise.device), noise)
        state = torch.zeros(batch, length, dtype=torch.long, device=noise.device)  # 0 visible, 1 masked, 2 thrown
        state.scatter_(1, ids[:, :masked_count], 1)
        state.scatter_(1, ids[:, masked_count: masked_count + thrown_count], 2)
        if revealed:
            if hint_noise.shape[1] != length:
                raise ValueError("hints need noise of their own: build the masker with hint_ratio > 0")
            pool = ids[:, : max(min(int(self.hint_pool * length), masked_count), revealed)]  # masked tokens only
            # the pool's tokens with the lowest hint noise: a uniform draw, independent of the order
            chosen = gather(pool, torch.argsort(gather(hint_noise, pool), dim=1)[:, :revealed])
            state.scatter_(1, chosen, 0)
        mask = Mask.from_masked(state > 0)
        if thrown_count:
            mask.thrown = state == 2
        return mask

    def extra_repr(self) -> str:
        return (f"mask_ratio={self.mask_ratio}, throw_ratio={self.throw_ratio}, select={self.select!r}, "
                f"prefer={self.prefer!r}, hint_ratio={self.hint_ratio}")


class BlockMasker(RandomMasker):
    """Removes contiguous blocks: the tokens nearest (in coordinates) to ``num_blocks`` random seeds.

    Works for any modality with coordinates (image grid, 3-D centres, time). Exactly as many tokens
    are removed as the random masker would remove, so batches keep one visible length; ``noise``
    picks the seeds (lowest noise) and breaks distance ties, which makes it deterministic.
    """

    def __init__(self, mask_ratio: float = 0.75, num_blocks: int = 1) -> None:
        super().__init__(mask_ratio)
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        self.num_blocks = num_blocks

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        seeds = torch.argsort(noise, dim=1)[:, : min(self.num_blocks, tokens.num_tokens)]
        seed_coords = gather(tokens.coords, seeds)
        distance = torch.cdist(tokens.coords.float(), seed_coords.float()).amin(dim=-1)  # B×N
        # Far tokens first (kept), near ones last (removed); noise/1e3 only breaks ties.
        ids_shuffle = torch.argsort(-(distance + noise * 1e-3), dim=1)
        return Mask.from_order(ids_shuffle, self.visible_count(tokens.num_tokens))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, num_blocks={self.num_blocks}"


class GridBlockMasker(Masker):
    """Random masking of ``block``-sized groups of grid tokens (CMAE's 2×2 "block-wise" masking,
    SimMIM's 32-px mask units at patch 16): the h×w grid is cut into (h/bh)×(w/bw) super-patches,
    the reference's ``int(G·(1 − ratio))`` of the G super-patches with the lowest noise stay
    visible (17 of 49 at CMAE's 0.65: 68 of 196 tokens) and every token of the others is removed.
    Noise: one number per super-patch (B×G, row-major). Visible tokens stay in token order (the
    reference's order among them differs, which a permutation-equivariant encoder ignores)."""

    def __init__(self, mask_ratio: float = 0.65, block: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.block = (block, block) if isinstance(block, int) else tuple(block)
        if len(self.block) != 2 or not all(isinstance(b, int) and b >= 1 for b in self.block):
            raise ValueError(f"grid block must be a positive int or (rows, cols), got {block!r}")

    def groups(self, tokens: Tokens) -> tuple[int, int]:
        grid = tokens.meta.get("grid_size")
        if grid is None or len(grid) != 2 or grid[0] * grid[1] != tokens.num_tokens:
            raise ValueError(f"grid block masking needs a 2-D token grid (meta grid_size, e.g. from image_patches), "
                             f"got grid {grid} for {tokens.num_tokens} tokens")
        if grid[0] % self.block[0] or grid[1] % self.block[1]:
            raise ValueError(f"the {grid[0]}×{grid[1]} token grid does not divide into {self.block[0]}×{self.block[1]} "
                             f"blocks (choose an image size whose grid is a multiple of the block)")
        return grid[0] // self.block[0], grid[1] // self.block[1]

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        rows, cols = self.groups(tokens)
        return (tokens.batch_size, rows * cols)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        rows, cols = self.groups(tokens)
        noise = draw_noise((tokens.batch_size, rows * cols), noise, tokens.values.device, "(batch, blocks)")
        keep = num_visible(rows * cols, self.mask_ratio)
        ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)  # each block's place in the noise order
        removed = (ranks >= keep).view(-1, rows, 1, cols, 1)
        removed = removed.expand(-1, rows, self.block[0], cols, self.block[1]).reshape(noise.shape[0], -1)
        return Mask.from_masked(removed)

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, block={self.block}"


class TubeMasker(Masker):
    """VideoMAE's tube masking: one spatial pattern of ``int(ratio·h·w)`` removed positions per
    clip (176 of 196 at 0.9), removed in every time slice, so a cube is never visible through its
    neighbour in time. Tokens must be cubes (meta ``grid_size`` = (t, h, w), time-major order). The
    visible tokens stay in token order (the reference's ``x[~mask]``). Noise: one number per
    spatial position (B×h·w); the lowest are kept."""

    def __init__(self, mask_ratio: float = 0.9) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)

    @staticmethod
    def grid_of(tokens: Tokens) -> tuple[int, int, int]:
        grid = tokens.meta.get("grid_size")
        if grid is None or len(grid) != 3 or grid[0] * grid[1] * grid[2] != tokens.num_tokens:
            raise ValueError(f"tube masking needs space-time cubes (meta grid_size (t, h, w), e.g. from cube_patches), "
                             f"got grid {grid} for {tokens.num_tokens} tokens")
        return tuple(grid)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        _, h, w = self.grid_of(tokens)
        return (tokens.batch_size, h * w)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        frames, h, w = self.grid_of(tokens)
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, "(batch, h·w)")
        removed_count = int(self.mask_ratio * h * w)  # the reference rounds the removed count down
        rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)
        spatial = rank >= h * w - removed_count
        return Mask.from_masked(spatial.repeat(1, frames))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}"


class BernoulliMasker(Masker):
    """Each token removed on its own with ``probability`` (iGPT's BERT objective: 0.15), so counts
    vary per sample: for an encoder that sees every token (:class:`~maekit.model.MaskTokenModel`).
    Token i is removed when its noise u_i < ``probability``; 0 removes nothing (iGPT's
    autoregressive objective, which hides nothing and predicts every token)."""

    def __init__(self, probability: float = 0.15) -> None:
        super().__init__()
        if not isinstance(probability, (int, float)) or not 0.0 <= probability < 1.0:
            raise ValueError(f"bernoulli_mask probability must be in [0, 1), got {probability!r}")
        self.probability = float(probability)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        return Mask.from_masked(noise < self.probability)


class GivenMasker(Masker):
    """A fixed pattern ``masked`` (N or B×N, 1 = removed); each row must remove the same count."""

    masked: torch.Tensor

    def __init__(self, masked: torch.Tensor | list) -> None:
        super().__init__()
        masked = torch.as_tensor(masked).bool()
        if masked.dim() not in (1, 2):
            raise ValueError(f"masked must have shape (N,) or (B, N), got {tuple(masked.shape)}")
        counts = masked.reshape(-1, masked.shape[-1]).sum(dim=1)
        if (counts != counts[0]).any():
            raise ValueError(f"every row of masked must remove the same number of tokens, got {counts.tolist()}")
        if int(counts[0]) >= masked.shape[-1]:
            raise ValueError(f"masked removes all {masked.shape[-1]} tokens; at least one must stay visible")
        self.register_buffer("masked", masked, persistent=False)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        if self.masked.shape[-1] != tokens.num_tokens:
            raise ValueError(f"given mask covers {self.masked.shape[-1]} tokens, batch has {tokens.num_tokens}")
        if self.masked.dim() == 2 and self.masked.shape[0] not in (1, tokens.batch_size):
            raise ValueError(f"given mask has {self.masked.shape[0]} rows for a batch of {tokens.batch_size}")
        masked = self.masked.expand(tokens.batch_size, -1).to(torch.uint8)
        ids_shuffle = torch.argsort(masked, dim=1, stable=True)  # kept tokens first, in order
        return Mask.from_order(ids_shuffle, tokens.num_tokens - int(masked[0].sum()))


#: rounds the exact-count variant of :func:`beit_block_mask` may take before giving up (the
#: reference loops without bound; a round nearly always adds tokens, this only rules out a hang)
EXACT_BLOCK_ROUNDS = 10_000


def beit_block_mask(grid_size: tuple[int, int], num_masking: int, rng: random.Random, min_patches: int = 16,
                    max_patches: int | None = None, min_aspect: float = 0.3, attempts: int = 10,
                    exact: bool = False) -> torch.Tensor:
    """BEiT's blockwise masking (``MaskingGenerator``): rectangles of ``min_patches`` to
    ``max_patches`` tokens with log-uniform aspect ratio in [min_aspect, 1/min_aspect], placed at
    random and merged until ``num_masking`` tokens are covered or a round of ``attempts`` tries adds
    none (so the count may fall short, never over). Draws from ``rng`` in the reference's order.
    ``exact``: MMPretrain's ``BEiTMaskGenerator`` — rounds go on until exactly ``num_masking``
    are covered, and a block's corner is drawn with numpy's exclusive bound (``randint(0, H − h)``
    never reaches H − h, so a block never touches the last row or column).
    Returns a bool h×w grid (True = masked)."""
    height, width = grid_size
    if exact and num_masking > (height - 1) * (width - 1):
        raise ValueError(f"the exact blockwise masker never covers the last row or column: at most "
                         f"{(height - 1) * (width - 1)} of a {height}×{width} grid, asked for {num_masking}")
    max_patches = num_masking if max_patches is None else max_patches
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    mask = torch.zeros(height, width, dtype=torch.bool)
    count, rounds = 0, 0
    last = 1 if exact else 0  # the corner's bound: exclusive (numpy) or inclusive (python's randint)
    while count < num_masking:
        budget = min(num_masking - count, max_patches)
        delta = 0
        rounds += 1
        for _ in range(attempts):
            area = rng.uniform(min_patches, budget)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top, left = rng.randint(0, height - h - last), rng.randint(0, width - w - last)
                block = mask[top: top + h, left: left + w]
                new = h * w - int(block.sum())
                if 0 < new <= budget:
                    block.fill_(True)
                    delta = new
            if delta > 0:
                break
        if delta == 0 and not exact:
            break
        if exact and rounds >= EXACT_BLOCK_ROUNDS:
            raise ValueError(f"the exact blockwise masker found no block to add after {rounds} rounds ({count} of "
                             f"{num_masking} covered): lower num_masking or min_block")
        count += delta
    return mask


class BlockPlusRandomMasker(Masker):
    """BootMAE's masking: a BEiT block mask of ``block_count`` tokens, topped up with random tokens
    to exactly ``N − visible_count`` removed (147 of 196 at the defaults), of which up to
    ``max_roll`` block tokens may stay visible (the reference rolls the order by randint(0, 3)).

    As the reference's ``mask_to_index``: each token gets ``block − u`` (u uniform), the argsort puts
    the unblocked tokens first in random order, then the order is rolled by r ∈ [0, max_roll]. Counts
    are given for the grid the masker sees; ``*_ratio`` ones scale with it (BootMAE at 14×14: block
    120, blocks of 16–60 tokens). Noise: one number per token plus one that seeds the blocks and
    the roll, so a seeded noise source makes it deterministic.
    """

    def __init__(self, mask_ratio: float = 0.75, block_ratio: float = 120 / 196, min_block_ratio: float = 16 / 196,
                 max_block_ratio: float = 60 / 196, min_aspect: float = 0.3, max_roll: int = 3) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        for name, value in (("block_ratio", block_ratio), ("min_block_ratio", min_block_ratio),
                            ("max_block_ratio", max_block_ratio)):
            if not 0 < value <= self.mask_ratio:
                raise ValueError(f"{name} must be in (0, mask_ratio={self.mask_ratio}], got {value!r}")
        if min_block_ratio > max_block_ratio:
            raise ValueError(f"min_block_ratio {min_block_ratio} exceeds max_block_ratio {max_block_ratio}")
        if not isinstance(max_roll, int) or max_roll < 0:
            raise ValueError(f"max_roll must be a non-negative int, got {max_roll!r}")
        self.block_ratio, self.min_block_ratio, self.max_block_ratio = block_ratio, min_block_ratio, max_block_ratio
        self.min_aspect, self.max_roll = min_aspect, max_roll

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        return (tokens.batch_size, tokens.num_tokens + 1)

    def counts(self, num_tokens: int) -> dict[str, int]:
        """Visible count (the reference MAE's rule) and the block mask's target and sizes."""
        return {"visible": num_visible(num_tokens, self.mask_ratio),
                "block": max(1, round(self.block_ratio * num_tokens)),
                "min_block": max(1, round(self.min_block_ratio * num_tokens)),
                "max_block": max(1, round(self.max_block_ratio * num_tokens))}

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        grid = tokens.meta.get("grid_size")
        if grid is None or grid[0] * grid[1] != tokens.num_tokens:
            raise ValueError(f"block-plus-random masking needs tokens on a grid (meta grid_size), got {grid} "
                             f"for {tokens.num_tokens} tokens")
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, "(batch, tokens + 1)")
        n = self.counts(tokens.num_tokens)
        orders = []
        for row in noise.cpu():
            rng = random.Random(int(row[-1].item() * 2**31))
            block = beit_block_mask(tuple(grid), n["block"], rng, n["min_block"], n["max_block"], self.min_aspect)
            order = torch.argsort(block.flatten().float() - row[:-1].float())
            orders.append(order.roll(rng.randint(0, self.max_roll)))
        return Mask.from_order(torch.stack(orders).to(tokens.values.device), n["visible"])

    def extra_repr(self) -> str:
        return (f"mask_ratio={self.mask_ratio}, block_ratio={self.block_ratio:.3f}, "
                f"blocks of {self.min_block_ratio:.3f}-{self.max_block_ratio:.3f}, max_roll={self.max_roll}")


def block_mask_3d(window: tuple[int, int, int], num_masking: int, rng: random.Random, min_patches: int,
                  max_patches: int, min_aspect: float = 0.3, attempts: int = 100) -> torch.Tensor:
    """MaskFeat's ``MaskingGenerator3D`` (SlowFast): cuboids of h×w area in [min, max] patches
    (log-uniform aspect in [min_aspect, 1/min_aspect]) spanning a random number of time slices,
    added while they stay within the remaining count, until ``num_masking`` units are covered or a
    round of ``attempts`` adds none. Draws from ``rng`` in the reference's order. Bool t×h×w."""
    frames, height, width = window
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    mask = torch.zeros(frames, height, width, dtype=torch.bool)
    count = 0
    while count < num_masking:
        budget = num_masking - count
        delta = 0
        for _ in range(attempts):
            area = rng.uniform(min_patches, max_patches)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            t = rng.randint(1, frames)
            if w < width and h < height:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                front = rng.randint(0, frames - t)
                block = mask[front: front + t, top: top + h, left: left + w]
                new = h * w * t - int(block.sum())
                if 0 < new <= budget:
                    block.fill_(True)
                    delta = new  # the reference counts each unit it newly masks
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


class BlockwiseMasker(Masker):
    """Masks of rectangles (images, BEiT's / MaskFeat's ``MaskingGenerator``) or cuboids (video,
    MaskFeat's ``MaskingGenerator3D``) drawn on a mask window and scaled to the token grid by
    nearest neighbour (MaskFeat video: an 8×7×7 window over 8×14×14 cubes). The masked count
    may differ per sample (blocks stop at or below ``round(ratio·window)``), so the mask suits an
    encoder that sees every token (:class:`~maekit.model.MaskTokenModel`).

    ``window`` None: the token grid. Block sizes as MaskFeat: at most ``max_block`` window units
    (None: the count for images; h·w of the window for video), at least ``max // 5`` (images:
    count // 5). Noise: one number per sample seeds the blocks (a seeded noise source makes it
    deterministic).

    BEiT's masker: ``num_masking=75, min_block=16`` (75 of 196 tokens counted directly, not as a
    ratio; blocks of at least 16); ``exact=True`` is MMPretrain's variant, which always masks
    exactly that many (images only)."""

    def __init__(self, mask_ratio: float = 0.4, window: tuple[int, ...] | None = None, max_block: int | None = None,
                 min_block: int | None = None, min_aspect: float = 0.3, num_masking: int | None = None,
                 exact: bool = False) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.window = None if window is None else tuple(window)
        if num_masking is not None and (not isinstance(num_masking, int) or num_masking < 1):
            raise ValueError(f"num_masking must be a positive int (BEiT: 75 of 196), got {num_masking!r}")
        if exact and self.window is not None and len(self.window) == 3:
            raise ValueError("exact=True is MMPretrain's image masker; video (3-D windows) has no exact variant")
        self.max_block, self.min_block, self.min_aspect = max_block, min_block, min_aspect
        self.num_masking, self.exact = num_masking, exact

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        return (tokens.batch_size, 1)

    def pattern(self, grid: tuple[int, ...], rng: random.Random) -> torch.Tensor:
        """One sample's mask on the window (bool, the window's shape)."""
        window = self.window or grid
        units = math.prod(window)
        count = round(units * self.mask_ratio) if self.num_masking is None else self.num_masking
        if count > units:
            raise ValueError(f"num_masking {count} exceeds the {units} units of the mask window {tuple(window)}")
        if self.exact and len(window) != 2:
            raise ValueError("exact=True is MMPretrain's image masker; video tokens (a 3-D grid) have no exact variant")
        if len(window) == 3:
            max_block = self.max_block or window[1] * window[2]
            min_block = self.min_block if self.min_block is not None else max_block // 5
            return block_mask_3d((window[0], window[1], window[2]), count, rng, min_block, max_block, self.min_aspect)
        min_block = self.min_block if self.min_block is not None else count // 5
        return beit_block_mask((window[0], window[1]), count, rng, min_block, self.max_block, self.min_aspect,
                               exact=self.exact)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        grid = tuple(tokens.meta.get("grid_size") or ())
        if len(grid) not in (2, 3) or math.prod(grid) != tokens.num_tokens:
            raise ValueError(f"blockwise masking needs tokens on a 2-D or 3-D grid (meta grid_size), got {grid or None} "
                             f"for {tokens.num_tokens} tokens")
        if self.window is not None and len(self.window) != len(grid):
            raise ValueError(f"mask window {self.window} and token grid {grid} differ in dimensions")
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, "(batch, 1)")
        rows = []
        for value in noise.cpu()[:, 0]:
            window_mask = self.pattern(grid, random.Random(int(value.item() * 2**31)))
            scaled = torch.nn.functional.interpolate(window_mask[None, None].float(), size=grid, mode="nearest")
            rows.append(scaled.flatten().bool())
        return Mask.from_masked(torch.stack(rows).to(tokens.values.device))

    def extra_repr(self) -> str:
        count = f"num_masking={self.num_masking}" if self.num_masking is not None else f"mask_ratio={self.mask_ratio}"
        return f"{count}, window={self.window}" + (", exact" if self.exact else "")


def masked_folds(mask: Mask, num_folds: int, fold_size: int | None = None) -> torch.Tensor:
    """The removed tokens in the masker's order (``ids_shuffle`` after the visible ones), the first
    ``num_folds × fold_size`` of them as B×num_folds×fold_size ids (SdAE's multi-fold: 147 removed
    → 3 folds of 49). ``fold_size`` None: all removed tokens, split evenly."""
    ids_shuffle = torch.argsort(mask.ids_restore, dim=1)
    removed = ids_shuffle[:, mask.num_visible:]
    if not isinstance(num_folds, int) or num_folds < 1:
        raise ValueError(f"num_folds must be a positive int, got {num_folds!r}")
    size = removed.shape[1] // num_folds if fold_size is None else fold_size
    if size < 1 or num_folds * size > removed.shape[1]:
        raise ValueError(f"{num_folds} folds of {size} need {num_folds * size} removed tokens; the mask removes "
                         f"{removed.shape[1]}")
    return removed[:, : num_folds * size].reshape(removed.shape[0], num_folds, size)
