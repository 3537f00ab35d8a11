"""The DALL-E dVAE encoder as BEiT's tokenizer (openai/DALL-E ``dall_e/encoder.py``, the layout
BEiT reads): 112-px images, pixels mapped x → 0.8x + 0.1 (``map_pixels``, ε = 0.1), a 7×7 conv,
four groups of two residual blocks (widths 256, 512, 1024, 2048; max-pool after groups 1–3), a
1×1 conv to 8192 logits on a 14×14 grid; the token is the arg-max.

Weights are read from a state dict with the official names (``blocks.input.w``,
``blocks.group_1.block_1.res_path.conv_1.w``, ..., ``blocks.output.conv.w``) — safetensors or a
weights-only torch file, e.g. MMPretrain's converted ``dalle_encoder.pth``. OpenAI's own
``encoder.pkl`` is a pickled module: maekit refuses it, and :func:`convert_pickled_encoder` (``maekit
dalle-convert``) reads it once, on the user's say-so, with torch's weights-only unpickler and
stand-ins for the ``dall_e`` classes — nothing in the file runs — into a plain state dict.
The encoder is frozen and not saved in training checkpoints (215 MB): the config names its file.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.tokenizers import Tokenizer

__all__ = ["DallEConv", "DallEBlock", "DallEEncoder", "DallETokenizer", "map_pixels", "convert_pickled_encoder",
           "LOGIT_LAPLACE_EPS"]

#: the dVAE's logit-Laplace ε: pixels are mapped into [ε, 1 − ε]
LOGIT_LAPLACE_EPS = 0.1


def map_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """[0, 1] → [ε, 1 − ε]: (1 − 2ε)·x + ε (0.8x + 0.1)."""
    return (1 - 2 * eps) * x + eps


class DallEConv(nn.Module):
    """``dall_e.utils.Conv2d``: weights ``w`` (out × in × k × k) and ``b``, 'same' padding."""

    def __init__(self, n_in: int, n_out: int, kw: int) -> None:
        super().__init__()
        self.kw = kw
        self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw) / (n_in * kw ** 2) ** 0.5)
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)


class DallEBlock(nn.Module):
    """``EncoderBlock``: id_path(x) + post_gain · res_path(x); res_path = 4 × (ReLU, conv) with
    widths n_out/4, n_out/4, n_out/4, n_out (3×3, 3×3, 3×3, 1×1); id_path a 1×1 conv where the width
    changes; post_gain = 1 / n_layers² (1/64 for 8 blocks)."""

    def __init__(self, n_in: int, n_out: int, n_layers: int) -> None:
        super().__init__()
        hidden = n_out // 4
        self.post_gain = 1 / n_layers ** 2
        self.id_path = DallEConv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(OrderedDict([
            ("relu_1", nn.ReLU()), ("conv_1", DallEConv(n_in, hidden, 3)),
            ("relu_2", nn.ReLU()), ("conv_2", DallEConv(hidden, hidden, 3)),
            ("relu_3", nn.ReLU()), ("conv_3", DallEConv(hidden, hidden, 3)),
            ("relu_4", nn.ReLU()), ("conv_4", DallEConv(hidden, n_out, 1))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.id_path(x) + self.post_gain * self.res_path(x)


class DallEEncoder(nn.Module):
    """``dall_e.encoder.Encoder`` (defaults: n_hid 256, 4 groups of 2 blocks, 8192 logits)."""

    def __init__(self, n_hid: int = 256, vocab_size: int = 8192, group_count: int = 4, blocks_per_group: int = 2,
                 in_chans: int = 3) -> None:
        super().__init__()
        n_layers = group_count * blocks_per_group
        groups: list[tuple[str, nn.Module]] = [("input", DallEConv(in_chans, n_hid, 7))]
        width = n_hid
        for group in range(1, group_count + 1):
            out = n_hid * 2 ** (group - 1)
            layers: list[tuple[str, nn.Module]] = []
            for block in range(1, blocks_per_group + 1):
                layers.append((f"block_{block}", DallEBlock(width, out, n_layers)))
                width = out
            if group < group_count:
                layers.append(("pool", nn.MaxPool2d(kernel_size=2)))
            groups.append((f"group_{group}", nn.Sequential(OrderedDict(layers))))
        groups.append(("output", nn.Sequential(OrderedDict([("relu", nn.ReLU()), ("conv", DallEConv(width, vocab_size, 1))]))))
        self.blocks = nn.Sequential(OrderedDict(groups))
        self.downsample = 2 ** (group_count - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.float())


class DallETokenizer(Tokenizer):
    """BEiT's tokenizer: the frozen DALL-E encoder over the batch's ``tokenizer_view`` (112-px,
    pixels in [0, 1], see the ``beit_views`` transform), ids = arg-max of its logits (B×14×14).

    ``weights``: the encoder's state dict file (required to encode; see the module docstring for
    the refused pickle). A prefix ``encoder.`` (MMPretrain's wrapper) is stripped; every other key
    must match exactly. The sizes are the official ones unless the file is a smaller test model.
    """

    view = "tokenizer_view"

    def __init__(self, weights: str | None = None, n_hid: int = 256, vocab_size: int = 8192, group_count: int = 4,
                 blocks_per_group: int = 2, in_chans: int = 3, view: str = "tokenizer_view") -> None:
        super().__init__()
        self.vocab_size, self.in_chans, self.view = vocab_size, in_chans, view
        # kept outside the module tree: frozen, read from its own file, never written into checkpoints;
        # built without storage (its 54M weights come from the file)
        with torch.device("meta"):
            encoder = DallEEncoder(n_hid, vocab_size, group_count, blocks_per_group, in_chans)
        self._encoder = [encoder.requires_grad_(False).eval()]
        self.weights: str | None = None
        if weights is not None:
            self.load_weights(weights)

    @property
    def encoder(self) -> DallEEncoder:
        return self._encoder[0]

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    def check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError("the DALL-E tokenizer has no weights: give tokenizer weights=<dall_e encoder state dict> "
                             "(convert OpenAI's encoder.pkl once with maekit dalle-convert)")

    def fit(self, images: Iterable[torch.Tensor], seed: int = 0) -> None:
        self.check_fitted()  # never trained here: it is OpenAI's tokenizer

    def grid(self, height: int, width: int) -> tuple[int, int]:
        step = self.encoder.downsample
        if height % step or width % step:
            raise ValueError(f"the DALL-E tokenizer's view must be a multiple of {step} pixels, got {height}×{width}")
        return height // step, width // step

    def view_of(self, pixels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The tokenizer view for pictures: the images resized to 8 pixels per id (bicubic with
        antialiasing; training's ``beit_views`` resizes with Lanczos), in [0, 1]."""
        size = (grid[0] * self.encoder.downsample, grid[1] * self.encoder.downsample)
        return F.interpolate(pixels.float(), size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ValueError(f"the DALL-E tokenizer reads B×{self.in_chans}×H×W images in [0, 1] "
                             f"(batch[{self.view!r}]), got {tuple(images.shape)}")
        self.grid(*images.shape[-2:])
        encoder = self.encoder.to(images.device)
        with torch.autocast(images.device.type, enabled=False):
            return encoder(map_pixels(images.float())).argmax(dim=1)

    def load_weights(self, source: str | Path | Mapping[str, torch.Tensor]) -> None:
        """The encoder's weights from a file or a state dict, strictly (see the class)."""
        from maekit.io.checkpoint import CheckpointError, load_state_dict

        name = str(source) if not isinstance(source, Mapping) else "the given state dict"
        if isinstance(source, Mapping):
            state = dict(source)
        else:
            try:
                state = load_state_dict(Path(source))
            except CheckpointError as error:
                raise ValueError(f"{error}. For OpenAI's pickled encoder.pkl, convert it once (nothing in it runs): "
                                 f"maekit dalle-convert {source} --out dall_e_encoder.safetensors") from None
        if any(key.startswith("encoder.") for key in state):  # MMPretrain's DALLEEncoder wraps it as .encoder
            state = {key[len("encoder."):]: value for key, value in state.items() if key.startswith("encoder.")}
        expected = self.encoder.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = [key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)]
        if missing or unexpected or wrong:
            detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected else
                      f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
            raise ValueError(f"{name}: not a DALL-E encoder of these sizes (n_hid, vocab_size, groups): {detail}")
        self._encoder[0] = self.encoder.to_empty(device="cpu")
        self.encoder.load_state_dict({key: value.float() for key, value in state.items()})
        self.weights = name


def _stand_in(qualified: str) -> tuple[type, str]:
    """A module class to rebuild a pickled ``dall_e`` object as: it takes the pickled state (its
    parameters and children) and runs nothing of the original class."""
    return type(qualified.rsplit(".", 1)[-1], (nn.Module,), {}), qualified


#: the classes a pickled DALL-E encoder names, rebuilt as plain modules
DALL_E_CLASSES = ("dall_e.encoder.Encoder", "dall_e.encoder.EncoderBlock", "dall_e.utils.Conv2d")


def convert_pickled_encoder(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside OpenAI's pickled ``encoder.pkl`` (a whole ``dall_e.encoder.Encoder``
    saved with ``torch.save``), read with torch's weights-only unpickler: only tensors, containers,
    torch's own module classes and inert stand-ins for the three ``dall_e`` classes may appear; any
    other object in the file is refused. Keys: ``blocks.input.w``, ...; checked by
    :meth:`DallETokenizer.load_weights`."""
    from maekit.io.checkpoint import CheckpointError, torch_load

    allowed: list[Any] = [_stand_in(name) for name in DALL_E_CLASSES]
    allowed += [nn.Sequential, nn.ReLU, nn.MaxPool2d, nn.Identity, OrderedDict, set]
    try:
        module = torch_load(Path(path), safe_globals=allowed)
    except CheckpointError as error:  # names what the unpickler refused
        raise ValueError(f"not a pickled DALL-E encoder this converter can read safely: {error}") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path}: not a readable torch file ({error})") from None
    if not isinstance(module, nn.Module):
        raise ValueError(f"{path}: holds a {type(module).__name__}, not a pickled DALL-E encoder module "
                         f"(a plain state dict needs no conversion: give it as weights= directly)")
    try:
        return {key: value.detach().clone() for key, value in module.state_dict().items()}
    except (AttributeError, TypeError, RecursionError) as error:  # a module tree the pickle built oddly
        raise ValueError(f"{path}: its module tree is not a DALL-E encoder's ({type(error).__name__}: {error})") from None
