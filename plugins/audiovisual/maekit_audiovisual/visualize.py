"""Pictures of an audio-visual reconstruction: per clip one row — the middle frame of the clip
(input | masked | reconstruction) and the spectrogram (input | masked | reconstruction, time along
the width, low frequencies at the bottom), each panel resized to the frame's size. A model whose
prediction is not its tokens' values in place (cross-modal inpainting, MAViL's stage 2) gets a
blank reconstruction panel."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from maekit.eval.visualize import PanelTitles
from maekit.structures import ForwardPass

__all__ = ["av_panels", "AV_TITLES"]

AV_TITLES = PanelTitles(columns=("frame", "masked", "reconstruction", "spectrogram", "masked", "reconstruction"))


def _images(model: Any, modality: str, values: torch.Tensor, out: ForwardPass) -> torch.Tensor:
    tokens = out.extras["tokens"][modality]
    images = model.patchifiers[modality].unpatchify(values, tokens.meta).float()
    if modality == "video":  # B×C×T×H×W in [−1, 1] → the middle frame in [0, 1]
        return ((images[:, :, images.shape[2] // 2] + 1) / 2).clamp(0, 1)
    # the input spectrogram's range for all three panels, so that they share one grey scale
    spectrogram = model.patchifiers[modality].unpatchify(tokens.values, tokens.meta).float()
    low, high = spectrogram.amin((1, 2, 3), keepdim=True), spectrogram.amax((1, 2, 3), keepdim=True)
    grey = ((images - low) / (high - low + 1e-12)).clamp(0, 1).transpose(2, 3).flip(2)  # bins × frames, low at the bottom
    return grey.expand(-1, 3, -1, -1)


@torch.no_grad()
def av_panels(model: Any, out: ForwardPass) -> list[list[np.ndarray]]:
    """One row of six H×W×3 uint8 panels per clip of one pass (``model.run_steps``)."""
    columns = []
    size = None
    for modality in ("video", "audio"):
        tokens, mask = out.extras["tokens"][modality], out.extras["masks"][modality]
        removed = mask.masked.unsqueeze(-1).to(tokens.values.dtype)
        # the first view's rows (MAViL stacks its views); no reconstruction is drawn where the prediction
        # is not these tokens' values in place (inpainting's slot order, a stage-2 teacher's features)
        pred = out.pred[modality][: tokens.batch_size]
        drawn = not getattr(model, "inpainting", False) and getattr(model, "teacher", None) is None
        rebuilt = model.target_makers[modality].to_values(pred.float(), tokens) if drawn else \
            torch.full_like(tokens.values, float(tokens.values.amin()))
        # removed patches drawn black in the frame, mid-grey in the spectrogram
        blank = -1.0 if modality == "video" else (tokens.values.amin() + tokens.values.amax()) / 2
        shown = [tokens.values, tokens.values * (1 - removed) + blank * removed,
                 tokens.values * (1 - removed) + rebuilt * removed]
        for values in shown:
            images = _images(model, modality, values, out)
            size = size or images.shape[-2:]
            images = F.interpolate(images, size=tuple(size), mode="nearest")
            columns.append([(image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8) for image in images])
    return [list(row) for row in zip(*columns)]
