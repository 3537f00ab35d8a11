"""TTT-MAE (Gandelsman, Sun, Chen, Efros, NeurIPS 2022): an MAE (encoder f, decoder g) with a
classifier h on every token f gives for the whole image, a Y with f shared. h is trained with f
frozen ("ViT probing"); at test time f adapts to each test image by the MAE loss through the frozen
g, then h reads the adapted f."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from maekit.methods.mae import mae
from maekit.model import MaskedAutoencoder
from maekit.nn.heads import LinearProbeHead, ViTProbeHead

__all__ = ["TTTMAE", "ttt_mae"]

STAGES = ("pretrain", "probe")


class TTTMAE(MaskedAutoencoder):
    """MAE plus ``classifier`` (h). ``stage="pretrain"``: the MAE loss, as core's MAE. ``stage="probe"``:
    cross-entropy of h on f's tokens of the whole (unmasked) image, label smoothing 0.1 (the
    reference's ``main_prob.py`` default), f under no_grad and everything but h frozen, as the
    reference; the decoder is kept for test time (a model built for test time is ``pretrain``).

    Test-time presets (the reference's ``--finetune_mode``, its names mapped to maekit's): ``encoder``
    adapts every parameter outside the decoder and the classifier, plus the decoder's mask token
    (the reference's ``mask_token`` lacks the ``decoder`` prefix its test reads); ``encoder_no_cls_no_msk``
    also keeps the cls and mask tokens; ``all`` adds the decoder. Fixed tables (sin-cos position
    embeddings) never adapt."""

    test_time_presets = {
        "encoder": ("*", "-decoder.*", "decoder.mask_token", "-classifier.*"),
        "encoder_no_cls_no_msk": ("*", "-decoder.*", "-classifier.*", "-encoder.cls_token"),
        "all": ("*", "-classifier.*"),
    }

    def __init__(self, classifier: nn.Module, stage: str = "pretrain", label_smoothing: float = 0.1,
                 **components: Any) -> None:
        super().__init__(**components)
        if stage not in STAGES:
            raise ValueError(f"ttt_mae stage must be one of {', '.join(STAGES)}, got {stage!r}")
        self.classifier, self.stage, self.label_smoothing = classifier, stage, label_smoothing
        # how many probe-stage steps trained the classifier: a pre-training checkpoint (0) is refused for evaluation
        self.register_buffer("probe_iterations", torch.zeros((), dtype=torch.long))
        if stage == "probe":  # as the reference: only the classifier is trainable (DDP sees no unused parameter)
            for name, parameter in self.named_parameters():
                parameter.requires_grad_(name.startswith("classifier."))

    def forward(self, batch: Any, noise: Any = None) -> dict[str, torch.Tensor]:
        if self.stage == "pretrain":
            return super().forward(batch, noise)
        labels = batch.get("label") if isinstance(batch, dict) else None
        if labels is None or (torch.as_tensor(labels) < 0).any():
            raise ValueError("ttt_mae stage='probe' trains the classifier on labelled images: the dataset gives no label "
                             "for some samples")
        with torch.no_grad():  # f frozen: h learns to read f as g was trained against it
            tokens = self.encode(batch)
        logits = self.classifier(tokens)
        labels = torch.as_tensor(labels, device=logits.device)
        if self.training:
            self.probe_iterations += 1
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean()}

    def train(self, mode: bool = True) -> "TTTMAE":
        super().train(mode)
        if self.stage == "probe":
            self.encoder.eval()  # frozen means its forward too (drop-path off)
        return self

    def classify(self, batch: Any) -> torch.Tensor:
        """h ∘ f on the whole image (no mask)."""
        return self.classifier(self.encode(batch))

    def test_time_views(self, image: torch.Tensor, copies: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``copies`` identical copies of the image, each with its own masking noise."""
        num_tokens = self.tokenize(image[None]).num_tokens
        return {"images": image.expand(copies, *image.shape), "noise": torch.rand(copies, num_tokens, generator=generator)}

    def test_time_loss(self, views: dict[str, torch.Tensor]) -> torch.Tensor:
        """The MAE loss (the configured target, norm-pix by default) over the masked patches of every copy."""
        noise = views["noise"]

        def given(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
            if tuple(shape) != tuple(noise.shape):
                raise ValueError(f"the masker asked for noise of shape {tuple(shape)}, the views carry {tuple(noise.shape)}")
            return noise

        return super().forward(views["images"], noise=given)["loss"]


def ttt_mae(num_classes: int, head: dict[str, Any] | None = None, stage: str = "pretrain",
            checkpoint: str | list[str] | None = None, label_smoothing: float = 0.1, **mae_options: Any) -> TTTMAE:
    """TTT-MAE on core's MAE (every option of ``mae``: size, img_size, patch_size, mask_ratio,
    norm_pix_loss, encoder, decoder sizes). ``head``: ``{"type": "vit", "width", "depth", "num_heads"}``
    (the reference's ViT probe; 768/12/12 on ViT-L by default) or ``{"type": "linear"}`` (BatchNorm +
    Linear on cls). ``checkpoint``: weights to start from, the decoder included (see
    :func:`load_mae_with_decoder`): a ``maekit train`` checkpoint before the probe stage, or the
    reference's released MAE and probe files."""
    base = mae(**mae_options)
    encoder: Any = base.encoder
    head = dict(head or {})
    kind = head.pop("type", "vit")
    if kind == "vit":
        classifier: nn.Module = ViTProbeHead(encoder.embed_dim, encoder.grid_size, num_classes, **head)
    elif kind == "linear":
        classifier = LinearProbeHead(encoder.embed_dim, num_classes, **head)
    else:
        raise ValueError(f"ttt_mae head type must be 'vit' or 'linear', got {kind!r}")
    model = TTTMAE(classifier, stage, label_smoothing, patchifier=base.patchifier, masker=base.masker, encoder=base.encoder,
                   decoder=base.decoder, target=base.target, loss=base.loss)
    if checkpoint is not None:
        load_mae_with_decoder(model, checkpoint)
    return model


#: The reference's (models_mae_shared.py) ViT-probe names → maekit's; its fixed sin-cos table is rebuilt here.
OFFICIAL_CLASSIFIER = (("classifier_embed.", "classifier.embed."), ("classifier_blocks.", "classifier.blocks."),
                       ("classifier_norm.", "classifier.norm."), ("classifier_pred.", "classifier.head."))


def classifier_to_maekit(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a state dict into (classifier weights in maekit's names, everything else): the
    reference's ``classifier_*`` keys are renamed, maekit's ``classifier.*`` kept."""
    classifier, rest = {}, {}
    for key, value in state.items():
        if key == "classifier_pos_embed":
            continue
        renamed = next((new + key[len(old):] for old, new in OFFICIAL_CLASSIFIER if key.startswith(old)), None)
        if renamed is not None or key.startswith("classifier.") or key == "probe_iterations":
            classifier[renamed or key] = value
        else:
            rest[key] = value
    return classifier, rest


def load_mae_with_decoder(model: TTTMAE, checkpoint: str | list[str], require_classifier: bool = False) -> None:
    """Load pre-trained weights into ``model``: one file or several in order (the reference keeps the
    MAE, ``--resume_model``, and the probe head, ``--resume_finetune``, apart), in maekit's layout or
    the official one (``classifier_*`` names included). The decoder must come with them: test-time
    training adapts through it. A classifier may be absent (the probe stage trains it) unless
    ``require_classifier``."""
    from maekit.eval.probe import load_weights
    from maekit.io.checkpoint import CheckpointError, load_state_dict
    from maekit.io.convert import convert_state_dict, strip_runner_prefix

    files = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            classifier, rest = classifier_to_maekit(strip_runner_prefix(load_state_dict(path)))
            if any(k.startswith("classifier.") for k in classifier) and "probe_iterations" not in classifier:
                state.pop("probe_iterations", None)  # a later (reference) probe file replaces an earlier count
            state.update({**(convert_state_dict(rest) if rest else {}), **classifier})
        except CheckpointError as error:  # e.g. a TTT rotation checkpoint given to a TTT-MAE config
            raise ValueError(f"{path}: not an MAE checkpoint this TTT-MAE config can read ({error})") from error
    if not any(key.startswith("decoder.") for key in state):
        raise ValueError(f"{', '.join(map(str, files))}: no decoder weights; TTT-MAE adapts through the MAE decoder, so it "
                         f"needs a full pre-training checkpoint (maekit train's, or the official *_full file), not an "
                         f"encoder export")
    untrained = "probe_iterations" in state and int(state["probe_iterations"]) == 0  # maekit's files say; the reference's do not
    if require_classifier and (untrained or not any(key.startswith("classifier.") for key in state)):
        raise ValueError(f"{', '.join(map(str, files))}: no trained classifier (a pre-training checkpoint?); test-time "
                         f"evaluation reads the probe head: give ttt-probe's checkpoint (or the reference's probe file "
                         f"beside its MAE)")
    load_weights(model, state, ", ".join(map(str, files)), may_lack=("classifier.", "probe_iterations"))
