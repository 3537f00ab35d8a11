"""SimVTP (Ma et al. 2022) and a SMAUG-style sparse variant: masked video-language pre-training
with one ViT over video cubes and caption tokens together.

One step of SimVTP, top to bottom (:meth:`SimVTP.run_steps`): cube patchify → tube mask (0.9) →
VideoMAE's norm-pix target → caption ids → text masking (0.75, every chosen token becomes
``[MASK]``) → video alone through the encoder (VTC's video features) → the masked caption alone
(VTC's text features) → [visible cubes; caption] together (MVM through VideoMAE's decoder, MLM
through a vocabulary head) → each caption with its own and with another clip of the batch (VTM) →
core's ``NamedLosses``: mvm + mlm + vtc + vtm, unit weights.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import torch
from maekit_video.model import VideoMAE, videomae
from torch import nn
from torch.nn import functional as F

from maekit.model import seeded_noise
from maekit.nn.attention import attention_weights
from maekit.nn.base import NoiseSource
from maekit.nn.encoder import run_blocks
from maekit.nn.losses import NamedLosses
from maekit.structures import ForwardPass, Mask, Tokens
from maekit_videotext.text import CaptionTokenizer, TextBatch, TextEmbeddings, TextMasker, load_bert_embeddings

__all__ = ["SimVTP", "SMAUG", "TokenSparsifier", "simvtp", "smaug", "rows_of"]


def rows_of(tokens: Tokens, rows: torch.Tensor) -> Tokens:
    """The tokens of the batch rows ``rows`` (a clip paired with another caption)."""
    return replace(tokens, values=tokens.values[rows], coords=tokens.coords[rows])


class SimVTP(VideoMAE):
    """SimVTP: a VideoMAE whose encoder also reads the caption (see the module docstring).

    Besides VideoMAE's six components: ``tokenizer`` (:class:`CaptionTokenizer`), ``text_embeddings``
    (BERT's embedding layer at the encoder width), ``text_masker``, ``mlm_head`` (Linear to the
    vocabulary, xavier), ``vtm_head`` (Linear to 2), and ``loss`` = ``NamedLosses`` over the parts
    ``mvm``, ``mlm``, ``vtc``, ``vtm``. ``text_pool``: the VTC/VTM/retrieval text features average
    the caption's own tokens (``"valid"``) or every position, padding included (``"all"``, the
    reference: a caption's feature then depends on the longest caption of its batch).
    ``contrast_caption``: VTC and VTM read the masked caption (``"masked"``, the reference: the
    ids are masked in place before every pass) or the whole one (``"whole"``).
    """

    #: heads only the pre-training losses read (retrieval needs the text embedding and vocabulary)
    pretraining_only = ("mlm_head.", "vtm_head.")

    def __init__(self, patchifier: Any, masker: Any, encoder: Any, decoder: Any, target: Any, loss: Any,
                 tokenizer: CaptionTokenizer, text_masker: TextMasker, text_pool: str = "valid",
                 contrast_caption: str = "masked") -> None:
        super().__init__(patchifier, masker, encoder, decoder, target, loss)
        if text_pool not in ("valid", "all"):
            raise ValueError(f"text_pool must be 'valid' or 'all', got {text_pool!r}")
        if contrast_caption not in ("masked", "whole"):
            raise ValueError(f"contrast_caption must be 'masked' or 'whole', got {contrast_caption!r}")
        if not isinstance(self.loss, NamedLosses) or set(self.loss.parts) != {"mvm", "mlm", "vtc", "vtm"}:
            raise ValueError("SimVTP's loss is NamedLosses over the parts mvm, mlm, vtc and vtm")
        dim = self.encoder.embed_dim
        self.tokenizer, self.text_masker, self.text_pool = tokenizer, text_masker, text_pool
        self.contrast_caption = contrast_caption
        # BERT's 512 positions (or more), so that bert-base-uncased's embedding layer loads
        self.text_embeddings = TextEmbeddings(tokenizer.vocab_size, dim, max_positions=max(512, tokenizer.max_length))
        self.mlm_head = nn.Linear(dim, tokenizer.vocab_size)
        self.vtm_head = nn.Linear(dim, 2)
        for head in (self.mlm_head, self.vtm_head):
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)

    # -- the encoder over video, text, or both -------------------------------------------------
    def encode_tokens(self, video: Tokens | None = None, text_ids: torch.Tensor | None = None,
                      padding: torch.Tensor | None = None) -> torch.Tensor:
        """The shared encoder over [video tokens; caption tokens] (either may be absent): video
        cubes embedded with their positions, the caption through BERT's embedding layer, padded
        caption positions hidden from every key (SimVTP adds −10000 to them; here they are left
        out of the softmax: the same weights in float32), final LayerNorm."""
        parts = []
        if video is not None:
            parts.append(self.encoder.block_inputs(video))
        if text_ids is not None:
            parts.append(self.text_embeddings(text_ids).to(parts[0].dtype if parts else torch.get_default_dtype()))
        if not parts:
            raise ValueError("encode_tokens needs video tokens, caption ids or both")
        x = torch.cat(parts, dim=1)
        return self.encoder.norm(run_blocks(self.encoder.blocks, x, None, self.key_mask(x, padding)))

    @staticmethod
    def key_mask(x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor | None:
        """B×1×1×(V+L), True where a key may be attended (padding is last in the sequence)."""
        if padding is None or not bool(padding.any()):
            return None
        video = torch.ones(x.shape[0], x.shape[1] - padding.shape[1], dtype=torch.bool, device=x.device)
        return torch.cat([video, ~padding.to(x.device)], dim=1)[:, None, None, :]

    def pool(self, features: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """The mean over tokens (padding at the end of the row left out when ``text_pool="valid"``)."""
        if padding is None or self.text_pool == "all":
            return features.mean(dim=1)
        weights = torch.cat([features.new_ones(features.shape[0], features.shape[1] - padding.shape[1]),
                             (~padding).to(features.dtype)], dim=1)
        return (features * weights[..., None]).sum(dim=1) / weights.sum(dim=1, keepdim=True)

    # -- the steps SimVTP adds -------------------------------------------------------------------
    def captions_of(self, batch: Any) -> list[str]:
        captions = batch.get("caption") if isinstance(batch, dict) else None
        if captions is None:
            raise ValueError("SimVTP trains on clips with captions: the batch has no 'caption' (use a video-caption "
                             "dataset: videotext_captions, videotext_webvid, videotext_msrvtt)")
        return list(captions)

    def mask_text(self, text: TextBatch, noise: torch.Tensor | None) -> TextBatch:
        """The caption ids with their masked copy and labels (module docstring)."""
        special = self.tokenizer.special_ids()
        if noise is not None:
            noise = noise[:, : 2 * text.ids.shape[1]].reshape(*text.ids.shape, 2)
        return self.text_masker(text, special, self.tokenizer.token_id("[MASK]"), self.tokenizer.num_tokens, noise)

    def encode_video_alone(self, visible: Tokens, mask: Mask) -> tuple[torch.Tensor, Tokens, Mask]:
        """VTC's video pass over the visible cubes: its output, and the tokens and mask the joint
        passes then use (the same here; SMAUG drops tokens in this step)."""
        return self.encode_tokens(visible), visible, mask

    def negatives(self, batch_size: int, noise: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """For each caption i a uniformly drawn other clip j ≠ i of the batch (SimVTP's
        ``generate_random``): j = (i + 1 + ⌊u·(B−1)⌋) mod B."""
        if batch_size < 2:
            raise ValueError("video-text matching pairs each caption with another clip of the batch: use batch_size >= 2")
        u = noise.to(device) if noise is not None else torch.rand(batch_size, device=device)
        shift = 1 + (u * (batch_size - 1)).long().clamp(max=batch_size - 2)
        return (torch.arange(batch_size, device=device) + shift) % batch_size

    def contrast_ids(self, text: TextBatch) -> torch.Tensor:
        """The caption ids VTC and VTM read (``contrast_caption``)."""
        assert text.masked_ids is not None
        return text.masked_ids if self.contrast_caption == "masked" else text.ids

    def match(self, visible: Tokens, text: TextBatch, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """VTM: the caption with its own clip and with another one, together through the encoder,
        mean-pooled, the matching head: logits 2B×2 and labels (1 for the own clip)."""
        ids = self.contrast_ids(text)
        batch = visible.batch_size
        other = self.negatives(batch, noise, visible.values.device)
        pairs = rows_of(visible, torch.cat([torch.arange(batch, device=other.device), other]))
        padding = torch.cat([text.padding, text.padding])
        joint = self.encode_tokens(pairs, torch.cat([ids, ids]), padding)
        labels = torch.cat([torch.ones(batch), torch.zeros(batch)]).long().to(joint.device)
        return self.vtm_head(self.pool(joint, padding)), labels

    def split_noise(self, noise: NoiseSource, tokens: Tokens, text_length: int) -> tuple[Any, Any, Any]:
        """One draw per sample from the engine's seeded noise, cut into the video mask's, the text
        masking's (2 per caption position) and the VTM negative's parts (so they never share numbers)."""
        if noise is None or isinstance(noise, torch.Tensor):
            return noise, None, None
        shape = self.masker.noise_shape(tokens)
        video = math.prod(shape[1:])
        drawn = noise((tokens.batch_size, video + 2 * text_length + 1), tokens.values.device)
        return (drawn[:, :video].reshape(shape), drawn[:, video:video + 2 * text_length], drawn[:, -1])

    # -- the pass ------------------------------------------------------------------------------
    def run_steps(self, batch: Any, noise: NoiseSource = None, masker: Any = None) -> ForwardPass:
        tokens = self.tokenize(batch)
        text = self.tokenizer(self.captions_of(batch))
        video_noise, text_noise, pair_noise = self.split_noise(noise, tokens, text.ids.shape[1])
        mask = (masker or self.masker)(tokens, noise=video_noise)
        target = self.make_target(tokens, batch, mask)
        text = self.mask_text(text, text_noise)
        video_alone, visible, mask = self.encode_video_alone(self.encoder_input(batch, tokens, mask), mask)
        text_alone = self.encode_tokens(None, self.contrast_ids(text), text.padding)
        joint = self.encode_tokens(visible, text.masked_ids, text.padding)
        video_latents, text_latents = joint[:, : visible.num_tokens], joint[:, visible.num_tokens:]
        similarity = F.normalize(self.pool(text_alone, text.padding), dim=-1) @ F.normalize(video_alone.mean(1), dim=-1).t()
        match_logits, match_labels = self.match(visible, text, pair_noise)
        pred = {"mvm": self.decode(video_latents, mask, tokens), "mlm": self.mlm_head(text_latents),
                "vtc": similarity, "vtm": match_logits}
        targets = {"mvm": target, "mlm": text.labels, "vtc": None, "vtm": match_labels}
        return ForwardPass(batch=batch, tokens=tokens, target=targets, mask=mask, latents=video_latents, pred=pred,
                           extras={"text": text})

    # -- features for retrieval and probing (nothing masked) ------------------------------------
    def encode_video(self, clips: torch.Tensor) -> torch.Tensor:
        """Mean-pooled video features (B×D) of whole clips, the video encoded alone (the
        encoder's own pass: :meth:`encode`, which probes and classifiers read too)."""
        return self.encode(clips).mean(dim=1)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """Mean-pooled features (B×D) of unmasked captions, encoded alone."""
        text = self.tokenizer(list(captions))
        return self.pool(self.encode_tokens(None, text.ids, text.padding), text.padding)

    def reconstruct_video(self, batch: Any, noise: NoiseSource = None) -> ForwardPass:
        """Only the masked-video reconstruction (the MVM route), with the batch's captions unmasked
        or, without captions, empty ones: what pictures show."""
        tokens = self.tokenize(batch)
        mask = self.make_mask(tokens, noise)
        captions = batch.get("caption") if isinstance(batch, dict) else None
        text = self.tokenizer(list(captions) if captions is not None else [""] * tokens.batch_size)
        _, visible, mask = self.encode_video_alone(self.encoder_input(batch, tokens, mask), mask)
        joint = self.encode_tokens(visible, text.ids, text.padding)
        latents = joint[:, : visible.num_tokens]
        return ForwardPass(batch=batch, tokens=tokens, target=self.make_target(tokens, batch, mask), mask=mask,
                           latents=latents, pred=self.decode(latents, mask, tokens))

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """VideoMAE's frame strips of the masked-video reconstruction (:meth:`reconstruct_video`;
        ``maekit visualize`` passes clips only, so the captions are empty)."""
        from maekit_video.visualize import clip_panels

        from maekit.data.samples import IMAGENET_MEAN, IMAGENET_STD

        self.eval()
        return clip_panels(self, self.reconstruct_video(images, noise=seeded_noise(seed)), mean or IMAGENET_MEAN,
                           std or IMAGENET_STD)


class TokenSparsifier(nn.Module):
    """SMAUG-style space-time token sparsification (no code was released: every rule here is a
    choice, see the README). A token's score is the attention it receives at encoder block
    ``layer`` (1-based: the block whose attention is read; the blocks before it run on every
    visible token), averaged over heads and over the clip's visible tokens as queries. A time
    slice's score is the mean of its tokens'; the ``keep_frames`` share of slices with the highest
    scores is kept, and in each kept slice the ``keep_tokens`` share of its visible tokens with the
    highest scores. The rest leave the sequence. Needs the same visible count in every time slice
    (tube masking gives it)."""

    def __init__(self, layer: int = 6, keep_tokens: float = 0.5, keep_frames: float = 0.75) -> None:
        super().__init__()
        if layer < 1 or not 0 < keep_tokens <= 1 or not 0 < keep_frames <= 1:
            raise ValueError(f"sparsifier needs layer >= 1 and keep shares in (0, 1], got layer={layer}, "
                             f"keep_tokens={keep_tokens}, keep_frames={keep_frames}")
        self.layer, self.keep_tokens, self.keep_frames = int(layer), float(keep_tokens), float(keep_frames)

    def select(self, scores: torch.Tensor, times: torch.Tensor, num_slices: int) -> torch.Tensor:
        """Which visible tokens stay (B×Nv bool) given their scores and time slices (B×Nv)."""
        batch, length = scores.shape
        per_slice = torch.zeros(batch, num_slices, device=scores.device).scatter_add_(1, times, torch.ones_like(scores))
        if not bool((per_slice == per_slice[:, :1]).all()):
            raise ValueError("the token sparsifier needs the same number of visible tokens in every time slice "
                             "(tube masking); this mask leaves different counts")
        slice_scores = torch.zeros_like(per_slice).scatter_add_(1, times, scores) / per_slice
        frames = max(1, round(self.keep_frames * num_slices))
        kept_slices = torch.zeros_like(per_slice, dtype=torch.bool)
        kept_slices.scatter_(1, slice_scores.topk(frames, dim=1).indices, True)
        tokens = max(1, round(self.keep_tokens * int(per_slice[0, 0])))
        # rank of each token within its slice: how many of the slice's tokens score higher (ties by position)
        index = torch.arange(length, device=scores.device)
        same = times[:, :, None] == times[:, None, :]
        above = (scores[:, None, :] > scores[:, :, None]) | ((scores[:, None, :] == scores[:, :, None]) & (index[None, :] < index[:, None])[None])
        rank = (same & above).sum(dim=2)
        return torch.gather(kept_slices, 1, times) & (rank < tokens)

    def extra_repr(self) -> str:
        return f"layer={self.layer}, keep_tokens={self.keep_tokens}, keep_frames={self.keep_frames}"


class SMAUG(SimVTP):
    """SimVTP with SMAUG-style token sparsification (unverified parameters: see
    :class:`TokenSparsifier`). The video-alone pass runs ``layer − 1`` blocks over every visible
    cube, scores them, keeps the selected ones and runs the remaining blocks on those; the joint
    passes (MVM + MLM, VTM) see only the kept cubes. Dropped visible cubes and the masked cubes of
    dropped time slices are *thrown* (core's ``Mask.thrown``): the decoder leaves them out and the
    MVM loss counts the masked cubes of kept slices only. Retrieval features use every token."""

    def __init__(self, *args: Any, sparsifier: TokenSparsifier | dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sparsifier = sparsifier if isinstance(sparsifier, TokenSparsifier) else TokenSparsifier(**(sparsifier or {}))
        if self.sparsifier.layer > len(self.encoder.blocks):
            raise ValueError(f"sparsifier layer {self.sparsifier.layer} is past the encoder's {len(self.encoder.blocks)} blocks")

    def encode_video_alone(self, visible: Tokens, mask: Mask) -> tuple[torch.Tensor, Tokens, Mask]:
        blocks = list(self.encoder.blocks)
        before = self.sparsifier.layer - 1
        x = run_blocks(blocks[:before], self.encoder.block_inputs(visible))
        block: Any = blocks[before]
        with torch.no_grad():  # the choice is not differentiated
            scores = attention_weights(block.attn, block.norm1(x)).mean(dim=(1, 2))  # attention received: B×Nv
        keep = self.sparsifier.select(scores, visible.coords[..., 0].long(), int(visible.meta["grid_size"][0]))
        order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, : int(keep[0].sum())]  # kept, in token order
        x = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))
        video_alone = self.encoder.norm(run_blocks(blocks[before:], x))
        return video_alone, visible.take(order), self.sparsified_mask(mask, order, visible)

    @staticmethod
    def sparsified_mask(mask: Mask, order: torch.Tensor, visible: Tokens) -> Mask:
        """The mask after sparsification: the kept cubes visible; the dropped visible cubes and
        every cube of a dropped time slice thrown; the masked cubes of kept slices predicted."""
        kept_ids = torch.gather(mask.ids_keep, 1, order)
        batch, length = mask.masked.shape
        seen = torch.zeros(batch, length, dtype=torch.bool, device=kept_ids.device).scatter_(1, kept_ids, True)
        ids_shuffle = torch.cat([kept_ids, torch.argsort(seen.to(torch.uint8), dim=1, stable=True)[:, : length - kept_ids.shape[1]]], 1)
        sparse = Mask.from_order(ids_shuffle, kept_ids.shape[1])
        slices = int(visible.meta["grid_size"][0])
        # each cube's time slice, from its index in the time-major token order
        times = (torch.arange(length, device=kept_ids.device) // (length // slices)).expand(batch, -1)
        kept_slices = torch.zeros(batch, slices, dtype=torch.bool, device=kept_ids.device)
        kept_slices.scatter_(1, torch.gather(times, 1, kept_ids), True)
        dropped_visible = (mask.masked == 0) & ~seen
        in_dropped_slice = ~torch.gather(kept_slices, 1, times)
        sparse.thrown = dropped_visible | in_dropped_slice  # a kept cube is never in a dropped slice
        return sparse


def _text_parts(text: dict[str, Any] | None) -> tuple[CaptionTokenizer, TextMasker, str | None]:
    """The tokenizer, the text masker and the BERT checkpoint (loaded once the model exists)."""
    text = dict(text or {})
    bert = text.pop("bert_checkpoint", None)
    if bert is not None and not text.get("vocab_file"):
        raise ValueError("text.bert_checkpoint needs text.vocab_file (that BERT's vocab.txt): BERT's embedding rows "
                         "belong to its own vocabulary's ids, not to one learned from the captions")
    known = {"vocab_size", "max_length", "vocab_file", "fit_samples", "mask_prob", "replace_mask", "replace_random"}
    unknown = sorted(set(text) - known)
    if unknown:
        raise ValueError(f"text: unknown keys {unknown} (known: {', '.join(sorted(known))})")
    masking = {key: text.pop(key) for key in ("mask_prob", "replace_mask", "replace_random") if key in text}
    return CaptionTokenizer(**text), TextMasker(**masking), bert


def simvtp(size: str | None = "base", num_frames: int = 16, img_size: int = 224, patch_size: int = 16,
           tubelet_size: int = 2, mask_ratio: float = 0.9, encoder: dict[str, Any] | None = None,
           decoder_embed_dim: int | None = None, decoder_depth: int = 4, decoder_num_heads: int | None = None,
           text: dict[str, Any] | None = None, temperature: float = 0.05, weights: dict[str, float] | None = None,
           text_pool: str = "valid", contrast_caption: str = "masked", video_checkpoint: str | None = None,
           video_layout: str = "official", drop_path_rate: float = 0.0, method: type[SimVTP] = SimVTP,
           **extra: Any) -> SimVTP:
    """SimVTP: VideoMAE's video branch (ViT-B over 2×16×16 cubes of 16×224² clips, tube mask 0.9,
    decoder 4×384, per-cube norm-pix target), BERT's embedding layer, text masked at 0.75 (all
    ``[MASK]``), VTC at temperature 0.05, VTM with random in-batch negatives, unit weights.

    ``text``: ``vocab_size`` (30522), ``max_length`` (512), ``vocab_file`` (a BERT vocab.txt; none:
    learned from the training captions), ``bert_checkpoint`` (a bert-base-uncased state dict,
    .bin/.safetensors, whose embedding layer initialises the text embedding, as the paper does;
    none: BERT's random init), ``fit_samples``, ``mask_prob`` (0.75), ``replace_mask`` (1.0),
    ``replace_random`` (0.0). ``weights``: per term (mvm, mlm, vtc, vtm). ``text_pool``,
    ``contrast_caption``: see :class:`SimVTP`. ``video_checkpoint``: VideoMAE weights the video
    branch (cube embedding, encoder, decoder) starts from, as the paper starts from VideoMAE's K400
    pre-training — ``video_layout="official"`` (the release's ``checkpoint-1599.pth``) or
    ``"maekit"`` (a ``maekit train`` run of ``videomae`` with the same sizes)."""
    video = videomae(size=size, num_frames=num_frames, img_size=img_size, patch_size=patch_size,
                     tubelet_size=tubelet_size, mask_ratio=mask_ratio, encoder=encoder, decoder_embed_dim=decoder_embed_dim,
                     decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, drop_path_rate=drop_path_rate)
    tokenizer, text_masker, bert = _text_parts(text)
    loss = NamedLosses({"mvm": dict(type="masked_mse", name="mvm"), "mlm": dict(type="videotext_mlm_loss"),
                        "vtc": dict(type="videotext_vtc_loss", temperature=temperature), "vtm": dict(type="videotext_vtm_loss")},
                       weights=weights)
    model = method(video.patchifier, video.masker, video.encoder, video.decoder, video.target, loss,
                   tokenizer=tokenizer, text_masker=text_masker, text_pool=text_pool, contrast_caption=contrast_caption,
                   **extra)
    if video_checkpoint is not None:
        load_video_branch(model, video_checkpoint, video_layout)
    if bert is not None:
        from maekit.io.checkpoint import load_state_dict

        load_bert_embeddings(model.text_embeddings, load_state_dict(bert), source=str(bert))
    return model


def smaug(size: str | None = "base", sparsifier: dict[str, Any] | None = None, **options: Any) -> SMAUG:
    """SMAUG-style (Lin et al., ICCV 2023; no code released, parameters unverified): SimVTP's
    pipeline (same options as :func:`simvtp`) plus :class:`TokenSparsifier` (``sparsifier``:
    ``layer`` 6, ``keep_tokens`` 0.5, ``keep_frames`` 0.75)."""
    model = simvtp(size=size, method=SMAUG, sparsifier=sparsifier, **options)
    assert isinstance(model, SMAUG)
    return model


def load_video_branch(model: SimVTP, path: str, layout: str = "official") -> None:
    """Load VideoMAE pre-training weights into ``model``'s encoder and decoder, strictly: every
    video weight of the model must be in the file and nothing else of the file may be left."""
    from maekit_video.interop import convert_videomae_checkpoint

    from maekit.io.checkpoint import load_file, load_state_dict
    from maekit.io.convert import strip_runner_prefix

    if layout not in ("official", "maekit"):
        raise ValueError(f"video_layout must be 'official' or 'maekit', got {layout!r}")
    if layout == "official":  # the converter unwraps the release's file itself
        state, _ = convert_videomae_checkpoint(load_file(path), "pretrain")
    else:
        state = strip_runner_prefix(load_state_dict(path))
        state = {key: value for key, value in state.items() if key.startswith(("encoder.", "decoder."))}  # a run's other parts
    video = {key for key in model.state_dict() if key.startswith(("encoder.", "decoder."))}
    missing, extra = sorted(video - set(state)), sorted(set(state) - video)
    if missing or extra:
        raise ValueError(f"video_checkpoint {path}: does not fit the video branch (missing {missing[:3] or 'none'}, "
                         f"not ours {extra[:3] or 'none'}; sizes and layout {layout!r} must match)")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(f"video_checkpoint {path}: {str(error).splitlines()[-1].strip()}") from None
