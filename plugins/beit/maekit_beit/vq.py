"""VQ tokenizers trained on the user's own images: a small conv encoder to a grid of one code per
patch, a codebook from vector-quantize-pytorch (``VectorQuantize``: k-means init, EMA updates,
dead codes re-seeded), a conv decoder back to pixels. The codebook index of each grid cell is the
token BEiT predicts. With ``perceptual`` it is PeCo's tokenizer (Dong et al., AAAI 2023): the
reconstruction is also compared in the feature space of a frozen self-supervised ViT — any maekit
encoder checkpoint — at several of its layers.

PeCo released no code; the choices made here are listed in the plugin's README (loss terms and
their norms, layers, conv stack, no adversarial term).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.tokenizers import Tokenizer

__all__ = ["VQTokenizer", "peco_tokenizer", "PERCEPTUAL_KEYS"]

#: the keys of a ``perceptual`` section: a maekit image encoder checkpoint (see
#: ``maekit.nn.teachers.image_mae_teacher``), the layers it is read at and the term's weight
PERCEPTUAL_KEYS = ("checkpoint", "layout", "size", "encoder_name", "encoder", "layers", "weight")


def conv_stack(in_dim: int, hidden: int, out_dim: int, halvings: int) -> nn.Sequential:
    """3×3 conv, then ``halvings`` stride-2 4×4 convs (each halves the side), then a 1×1 conv."""
    layers: list[nn.Module] = [nn.Conv2d(in_dim, hidden, 3, padding=1), nn.ReLU()]
    for _ in range(halvings):
        layers += [nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(hidden, out_dim, 1))


def deconv_stack(in_dim: int, hidden: int, out_dim: int, doublings: int) -> nn.Sequential:
    """The mirror of :func:`conv_stack`: 1×1 conv, ``doublings`` stride-2 transposed convs, 3×3 conv."""
    layers: list[nn.Module] = [nn.Conv2d(in_dim, hidden, 1), nn.ReLU()]
    for _ in range(doublings):
        layers += [nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(hidden, out_dim, 3, padding=1))


class VQTokenizer(Tokenizer):
    """A VQ-VAE tokenizer with one code per ``patch_size``² patch (the ViT's grid: 14×14 for 224
    px and patch 16), ``vocab_size`` codes of ``code_dim`` numbers.

    Trained by :meth:`fit` — before BEiT's first step by the engine, or once by ``maekit
    tokenizer-train`` (then given as ``weights=<file>``) — for ``fit_steps`` Adam steps on batches
    of ``fit_batch`` of up to ``fit_samples`` training images: loss = MSE(x̂, x) + commitment ·
    MSE(E(x), sg[z_q]) (the codebook follows by EMA, vector-quantize-pytorch's default) + the
    perceptual term when set. Frozen otherwise: its weights never take gradients from BEiT's loss
    and never leave eval mode outside :meth:`fit`. Reads the batch's ``view`` in the training
    normalisation; :meth:`decode` returns images in the same normalisation.
    """

    fit_shuffle = True  # fitted on part of the training set: a random part, not the first classes

    def __init__(self, patch_size: int = 16, in_chans: int = 3, vocab_size: int = 8192, code_dim: int = 32,
                 hidden: int = 64, view: str = "inputs", weights: str | None = None, fit_samples: int = 4096,
                 fit_steps: int = 2000, fit_batch: int = 64, lr: float = 1e-3, commitment: float = 0.25,
                 decay: float = 0.8, dead_code_threshold: float = 2.0, perceptual: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        halvings = math.log2(patch_size) if patch_size > 0 else -1
        if halvings != int(halvings) or halvings < 0:
            raise ValueError(f"vq tokenizer patch_size must be a power of 2 (one code per patch), got {patch_size!r}")
        for name, value in (("vocab_size", vocab_size), ("code_dim", code_dim), ("hidden", hidden),
                            ("fit_steps", fit_steps), ("fit_batch", fit_batch), ("fit_samples", fit_samples)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"vq tokenizer {name} must be a positive int, got {value!r}")
        self.patch_size, self.in_chans, self.vocab_size, self.view = patch_size, in_chans, vocab_size, view
        self.fit_samples, self.fit_steps, self.fit_batch, self.lr = fit_samples, fit_steps, fit_batch, lr
        self.perceptual = check_perceptual(perceptual)
        self.encoder = conv_stack(in_chans, hidden, code_dim, int(halvings))
        self.quantizer = VectorQuantize(dim=code_dim, codebook_size=vocab_size, decay=decay, kmeans_init=True,
                                        commitment_weight=commitment, threshold_ema_dead_code=dead_code_threshold)
        self.decoder = deconv_stack(code_dim, hidden, in_chans, int(halvings))
        self.register_buffer("trained", torch.tensor(False))
        self.requires_grad_(False)
        self._fitting = False
        self.fit_report: dict[str, float] = {}
        if weights is not None:
            self.load_weights(weights)

    # -- the contract -----------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self.trained)

    def train(self, mode: bool = True) -> "VQTokenizer":
        # in train mode the codebook would follow every batch it encodes (EMA): only fit trains it
        return super().train(mode and self._fitting)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"the vq tokenizer cuts {self.patch_size}-pixel patches; images of {height}×{width} are "
                             f"not a multiple of it")
        return height // self.patch_size, width // self.patch_size

    def check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ValueError(f"the vq tokenizer reads B×{self.in_chans}×H×W images (batch[{self.view!r}]), got "
                             f"{tuple(images.shape)}")
        self.grid(*images.shape[-2:])

    def quantize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes B×D×h×w (straight-through), ids B×h×w and the commitment loss."""
        latents = self.encoder(images.float())
        batch, dim, height, width = latents.shape
        codes, ids, commitment = self.quantizer(latents.flatten(2).transpose(1, 2))
        return codes.transpose(1, 2).reshape(batch, dim, height, width), ids.view(batch, height, width), commitment

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        self.check_images(images)
        with torch.autocast(images.device.type, enabled=False):  # codes compared in float32
            return self.quantize(images)[1]

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        codes = self.quantizer.get_output_from_indices(ids.flatten(1))  # B×N×D
        batch, (height, width) = ids.shape[0], ids.shape[-2:]
        return self.decoder(codes.transpose(1, 2).reshape(batch, -1, height, width))

    # -- training ---------------------------------------------------------------------------
    def fit(self, images: Iterable[torch.Tensor], seed: int = 0) -> None:
        """Train on the images given (all held in memory: at most ``fit_samples``)."""
        # held in half precision (normalised pixels, ±a few units): 16 384 images of 3×224² are 4.9 GB
        chunks = [batch.detach().to("cpu", torch.float16) for batch in images]
        if not chunks or sum(len(chunk) for chunk in chunks) == 0:
            raise ValueError("the vq tokenizer got no images to fit on")
        data = torch.cat(chunks)
        self.check_images(data[:1])
        device = next(self.parameters()).device
        perceptual = PerceptualLoss(self.perceptual, data.shape[-2:], self.patch_size, self.in_chans) \
            if self.perceptual else None
        if perceptual is not None:
            perceptual.to(device)
        generator = torch.Generator().manual_seed(seed)
        weights = [p for p in self.parameters() if p.dtype.is_floating_point]
        self._fitting = True
        try:
            self.requires_grad_(True).train()
            optimizer = torch.optim.Adam(weights, lr=self.lr)
            history: dict[str, list[float]] = {"reconstruction": [], "commitment": [], "perceptual": []}
            for _ in range(self.fit_steps):
                picked = torch.randint(len(data), (min(self.fit_batch, len(data)),), generator=generator)
                batch = data[picked].to(device, torch.float32)
                codes, _, commitment = self.quantize(batch)
                rebuilt = self.decoder(codes)
                reconstruction = F.mse_loss(rebuilt, batch)
                loss = reconstruction + commitment
                history["reconstruction"].append(reconstruction.item())
                history["commitment"].append(commitment.item())
                if perceptual is not None:
                    term = perceptual(rebuilt, batch)
                    loss = loss + self.perceptual.get("weight", 1.0) * term
                    history["perceptual"].append(term.item())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            self._fitting = False
            self.requires_grad_(False).eval()
            for weight in weights:
                weight.grad = None
        self.trained.fill_(True)
        with torch.no_grad():
            used = torch.unique(torch.cat([self.encode(chunk.to(device, torch.float32)).flatten() for chunk in data.split(256)]))
        tail = max(1, self.fit_steps // 10)  # the last tenth of the steps
        self.fit_report = {f"{name}_loss": sum(values[-tail:]) / len(values[-tail:])
                           for name, values in history.items() if values}
        self.fit_report["codes_used"] = int(used.numel())

    # -- files --------------------------------------------------------------------------------
    def save_fitted(self, folder: Path) -> list[Path]:
        """``vq_tokenizer.safetensors`` in ``folder``: give it as ``weights=`` to reuse this vocabulary."""
        from maekit.io.checkpoint import save_state_dict

        path = Path(folder) / "vq_tokenizer.safetensors"
        save_state_dict({key: value.contiguous() for key, value in self.state_dict().items()}, path)
        return [path]

    def load_weights(self, path: str | Path) -> None:
        """A file :meth:`save_fitted` or ``maekit tokenizer-train`` wrote (safetensors or weights-only
        torch), matched strictly: every key of this tokenizer, no other, same shapes."""
        from maekit.io.checkpoint import load_state_dict

        state = load_state_dict(Path(path))
        try:
            result = self.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise ValueError(f"{path}: does not fit this vq tokenizer (patch_size {self.patch_size}, vocab_size "
                             f"{self.vocab_size}, ...): {str(error).splitlines()[-1].strip()}") from None
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"{path}: not a vq tokenizer of these settings: missing {result.missing_keys[:3] or 'none'}, "
                             f"unexpected {result.unexpected_keys[:3] or 'none'}")
        if not self.fitted:
            raise ValueError(f"{path}: holds an untrained vq tokenizer (written before it was fitted)")


def check_perceptual(section: Mapping[str, Any] | None) -> dict[str, Any]:
    if not section:
        return {}
    unknown = sorted(set(section) - set(PERCEPTUAL_KEYS))
    if unknown:
        raise ValueError(f"vq tokenizer perceptual: unknown key {unknown[0]!r} (expected {', '.join(PERCEPTUAL_KEYS)})")
    if not section.get("checkpoint"):
        raise ValueError("vq tokenizer perceptual needs checkpoint=<a maekit image encoder checkpoint> (PeCo compares "
                         "reconstructions in a frozen self-supervised ViT's features)")
    return dict(section)


class PerceptualLoss(nn.Module):
    """Σ over ``layers`` of mean((f_l(x̂) − f_l(x))²): the squared feature distance of each layer
    divided by its element count (PeCo's (C_l H_l W_l)⁻¹‖·‖²), averaged over the batch, features of
    a frozen maekit ViT (prefix tokens included, before its final norm). ``layers`` default: the
    end of each quarter of its depth (3, 6, 9, 12 for ViT-B, as the paper's ablation)."""

    def __init__(self, section: Mapping[str, Any], image_size: Sequence[int], patch_size: int, in_chans: int) -> None:
        super().__init__()
        from maekit.nn.patchify import ImagePatchifier
        from maekit.nn.teachers import image_mae_teacher

        spec = {key: value for key, value in section.items() if key not in ("layers", "weight")}
        spec.setdefault("layout", "maekit")
        teacher_patch = (spec.get("encoder") or {}).get("patch_size", patch_size)
        self.teacher = image_mae_teacher(spec, tuple(image_size), teacher_patch, in_chans, "vq tokenizer perceptual")
        self.patchify = ImagePatchifier(teacher_patch, in_chans)
        depth = len(self.teacher.module.blocks)
        self.layers = tuple(section.get("layers") or [depth * k // 4 for k in range(1, 5)])
        for layer in self.layers:
            if not isinstance(layer, int) or not 1 <= layer <= depth:
                raise ValueError(f"vq tokenizer perceptual layers must be block numbers 1..{depth} of the teacher, "
                                 f"got {layer!r}")

    def forward(self, rebuilt: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        encoder: Any = self.teacher.module  # frozen weights; the gradient flows to the reconstruction
        with torch.no_grad():
            wanted = encoder.forward_intermediates(self.patchify(images), list(self.layers)).features
        found = encoder.forward_intermediates(self.patchify(rebuilt), list(self.layers)).features
        return sum(F.mse_loss(found[layer], wanted[layer]) for layer in self.layers)


def peco_tokenizer(perceptual: Mapping[str, Any] | None = None, weights: str | None = None, **options: Any) -> VQTokenizer:
    """PeCo's perceptual codebook: :class:`VQTokenizer` whose training adds the perceptual term
    (``perceptual=dict(checkpoint=<maekit encoder run>, size=..., layers=..., weight=...)``); a
    trained one is read from ``weights`` alone."""
    if not perceptual and weights is None:
        raise ValueError("peco tokenizer: give perceptual=dict(checkpoint=<a maekit image encoder checkpoint>, ...) "
                         "to train it, or weights=<a trained tokenizer file>")
    return VQTokenizer(perceptual=perceptual, weights=weights, **options)
