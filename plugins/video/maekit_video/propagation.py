"""Label propagation on frozen features, SiamMAE's evaluation, and DAVIS-2017's J&F.

Propagation follows CropMAE's code (videowalk's ``test.py``), the anchor SiamMAE's note names:
- features are the encoder's output after its final norm, prefix (cls) token dropped, each
  token L2-normalised;
- the first frame's labels are one-hot per label and resized bilinearly to the patch grid (soft);
- each later frame reads the first frame (ground truth) and the ``context`` frames before it,
  with the video front-padded by copies of the first frame. The stored labels of those frames
  are the soft propagated maps.
- affinity: dot products / ``temperature``. Keys outside a disk of ``radius`` patches around
  the query are excluded in every context frame but the first. One top-``topk`` runs over all
  context keys, then a softmax over the k.
- the patch-level label map is resized bilinearly to the frame and the argmax taken.

Defaults are SiamMAE's (top-k 7, radius 20, 20 context frames + the first, temperature 0.7).
DINO's evaluation differs (top-k 5, 7 frames, a ±12 square, temperature 0.1, nearest label
downsampling): not implemented.

J&F is DAVIS-2017's semi-supervised evaluation (davis2017-evaluation's ``metrics.py``):
- J is the region IoU, 1 when both masks are empty.
- F is the boundary F-measure. Boundaries come from ``seg2bmap`` and are dilated by a disk of
  ceil(0.008 · image diagonal) pixels.
- scores are per object, over every frame but the first and the last; the global figures
  average over objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from maekit.nn.patchify import as_pair

__all__ = ["PropagationSettings", "frame_features", "first_frame_labels", "propagate_labels", "hard_labels",
           "region_similarity", "boundary_map", "boundary_f_measure", "davis_scores", "DavisSequence",
           "read_davis", "propagate_sequence", "PROPAGATION_KEYS", "propagation_options", "evaluate_propagation"]


@dataclass(frozen=True)
class PropagationSettings:
    """SiamMAE's (and CropMAE's) propagation defaults."""

    topk: int = 7
    radius: float = 20.0  # in patches
    context: int = 20  # preceding frames read besides the first
    temperature: float = 0.7

    def __post_init__(self) -> None:
        for name in ("topk", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"propagation {name} must be a positive int, got {value!r}")
        for name in ("radius", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"propagation {name} must be positive, got {getattr(self, name)!r}")


@torch.no_grad()
def frame_features(model: Any, frames: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """L2-normalised token features (T, h, w, D) of normalised frames (T, C, H, W). The model
    encodes images through ``model.encode({"inputs": ...})`` (a frame-level method: SiamMAE)."""
    encoder = model.encoder
    if not hasattr(encoder, "patch_size") or hasattr(encoder, "cube"):
        raise ValueError(f"label propagation encodes single frames; {type(model).__name__}'s {type(encoder).__name__} "
                         f"encodes clips (use a frame-level model such as siammae or mae)")
    prefix = getattr(encoder, "num_prefix_tokens", 1)
    patch = as_pair(encoder.patch_size, "patch_size")
    height, width = frames.shape[-2:]
    if height % patch[0] or width % patch[1]:
        raise ValueError(f"frames of {height}×{width} are not a multiple of the patch size {patch}")
    grid = (height // patch[0], width // patch[1])
    device = next(model.parameters()).device
    parts = [model.encode({"inputs": chunk.to(device)})[:, prefix:].float().cpu() for chunk in frames.split(batch_size)]
    features = torch.cat(parts).view(len(frames), *grid, -1)
    return F.normalize(features, dim=-1)


def first_frame_labels(labels: torch.Tensor, label_ids: Sequence[int], grid: tuple[int, int]) -> torch.Tensor:
    """Soft labels (L, h, w) on the patch grid: one map per id in ``label_ids`` (background first),
    one-hot at full size and resized bilinearly (CropMAE's ``cv2.resize(..., INTER_LINEAR)``)."""
    onehot = torch.stack([(labels == label).float() for label in label_ids])
    return F.interpolate(onehot[None], size=grid, mode="bilinear", align_corners=False)[0]


def _neighbourhood(grid: tuple[int, int], radius: float) -> torch.Tensor:
    """(h·w keys, h·w queries) True where a key lies within ``radius`` patches of the query."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    places = torch.stack([rows.flatten(), cols.flatten()], -1).float()
    return torch.cdist(places, places) < radius


@torch.no_grad()
def propagate_labels(features: torch.Tensor, first: torch.Tensor,
                     settings: PropagationSettings = PropagationSettings(), chunk: int = 1024) -> torch.Tensor:
    """Soft label maps (T, L, h, w) for every frame of features (T, h, w, D), from the first
    frame's soft labels ``first`` (L, h, w). Queries run ``chunk`` at a time (bounded memory)."""
    frames, h, w, _ = features.shape
    keys = features.flatten(1, 2)  # T, hw, D
    near = _neighbourhood((h, w), settings.radius)
    maps = [first.flatten(1)]  # L, hw per frame
    for t in range(1, frames):
        # the first frame, then the `context` frames before t (copies of the first before the start)
        context = [0] + [max(0, t - settings.context + j) for j in range(settings.context)]
        ctx_keys = keys[context]  # C, hw, D
        ctx_labels = torch.stack([maps[c] for c in context]).transpose(0, 1).flatten(1)  # L, C·hw
        out = []
        for start in range(0, h * w, chunk):
            queries = keys[t, start:start + chunk]  # q, D
            affinity = torch.einsum("chd,qd->chq", ctx_keys, queries)  # C, hw, q
            allowed = near[:, start:start + chunk].expand(len(context), -1, -1).clone()
            allowed[0] = True  # the first frame (long memory) is read everywhere
            affinity = affinity.masked_fill(~allowed, float("-inf")) / settings.temperature
            weights, index = affinity.flatten(0, 1).topk(min(settings.topk, affinity.shape[0] * affinity.shape[1]),
                                                         dim=0)
            weights = weights.softmax(dim=0)  # k, q
            out.append((ctx_labels[:, index] * weights[None]).sum(1))  # L, q
        maps.append(torch.cat(out, dim=1))
    return torch.stack(maps).view(frames, -1, h, w)


def hard_labels(soft: torch.Tensor, size: tuple[int, int], label_ids: Sequence[int]) -> torch.Tensor:
    """(T, H, W) label ids: the soft maps (T, L, h, w) resized bilinearly to ``size``, argmax."""
    ids = torch.as_tensor(list(label_ids))
    # a frame at a time: every frame at once would hold T × L × H × W floats (~1 GB for 100 DAVIS frames)
    return torch.stack([ids[F.interpolate(frame[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)]
                        for frame in soft])


# -- DAVIS-2017 J&F -------------------------------------------------------------------------------

def region_similarity(prediction: np.ndarray, truth: np.ndarray) -> float:
    """J: intersection over union of two boolean masks, 1 when both are empty."""
    union = np.logical_or(prediction, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, truth).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS's ``seg2bmap`` at the mask's own size: pixels that differ from their east, south or
    south-east neighbour (the last row and column compare along the border only)."""
    seg = mask.astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1], south[:-1, :], south_east[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disk of ``radius`` (x² + y² ≤ r², scikit-image's ``disk``)."""
    offsets = np.arange(-radius, radius + 1)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2).astype(np.float32)
    hits = F.conv2d(torch.from_numpy(boundary.astype(np.float32))[None, None], torch.from_numpy(disk)[None, None],
                    padding=radius)
    return hits[0, 0].numpy() > 0


def boundary_f_measure(prediction: np.ndarray, truth: np.ndarray, bound_th: float = 0.008) -> float:
    """F: boundary precision and recall within a tolerance of ceil(bound_th · diagonal) pixels."""
    tolerance = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*truth.shape)))
    predicted, true = boundary_map(prediction), boundary_map(truth)
    n_predicted, n_true = predicted.sum(), true.sum()
    if n_predicted == 0 and n_true == 0:
        return 1.0
    if n_predicted == 0 or n_true == 0:
        return 0.0
    precision = (predicted & _dilate(true, tolerance)).sum() / n_predicted
    recall = (true & _dilate(predicted, tolerance)).sum() / n_true
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def davis_scores(prediction: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    """Per object (ids 1..max of the first true frame): J and F means over every frame but the first
    and the last, as DAVIS's semi-supervised evaluation. ``prediction`` and ``truth``: (T, H, W) ids."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and annotation {truth.shape} differ in shape")
    if len(truth) < 3:
        raise ValueError(f"J&F leaves out the first and last frame: a sequence needs 3 or more, got {len(truth)}")
    scores = []
    for obj in range(1, int(truth[0].max()) + 1):
        j = [region_similarity(p == obj, t == obj) for p, t in zip(prediction[1:-1], truth[1:-1])]
        f = [boundary_f_measure(p == obj, t == obj) for p, t in zip(prediction[1:-1], truth[1:-1])]
        scores.append({"object": obj, "J": float(np.mean(j)), "F": float(np.mean(f))})
    return scores


# -- DAVIS-2017 folders -------------------------------------------------------------------------

@dataclass(frozen=True)
class DavisSequence:
    name: str
    frames: list[Path]
    annotations: list[Path]


def read_davis(root: str | Path, split: str = "val", resolution: str = "480p",
               sequences: Sequence[str] | None = None) -> list[DavisSequence]:
    """The sequences of a DAVIS-2017 folder: ``JPEGImages/<resolution>/<seq>/*.jpg``,
    ``Annotations/<resolution>/<seq>/*.png`` (palette PNGs: pixel = object id, 0 background,
    255 void) and ``ImageSets/2017/<split>.txt``; ``sequences`` picks some by name."""
    root = Path(root)
    listing = root / "ImageSets" / "2017" / f"{split}.txt"
    if sequences is None:
        if not listing.is_file():
            raise ValueError(f"{listing}: not found (a DAVIS-2017 folder has ImageSets/2017/<split>.txt)")
        sequences = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    found = []
    for name in sequences:
        frames = sorted((root / "JPEGImages" / resolution / name).glob("*.jpg"))
        annotations = sorted((root / "Annotations" / resolution / name).glob("*.png"))
        if not frames:
            raise ValueError(f"{root / 'JPEGImages' / resolution / name}: no .jpg frames for sequence {name!r}")
        if not annotations or annotations[0].stem != frames[0].stem:
            raise ValueError(f"{root / 'Annotations' / resolution / name}: sequence {name!r} needs the first "
                             f"frame's annotation {frames[0].stem}.png")
        found.append(DavisSequence(name, frames, annotations))
    if not found:
        raise ValueError(f"{listing}: lists no sequence")
    return found


def _read_labels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(f"{path}: expected a palette (or 8-bit) PNG of object ids, got mode {image.mode}")
        labels = np.array(image)
    labels[labels == 255] = 0  # void counts as background in the semi-supervised evaluation
    return labels


def _read_frames(paths: Sequence[Path], size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    from PIL import Image

    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255)
    x = F.interpolate(torch.stack(frames), size=size, mode="bilinear", align_corners=False)
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def propagate_sequence(model: Any, sequence: DavisSequence, size: tuple[int, int] = (480, 880),
                       settings: PropagationSettings = PropagationSettings(),
                       mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                       out_dir: str | Path | None = None) -> dict[str, Any]:
    """Propagate a sequence's first annotation through its frames (resized to ``size``, CropMAE's
    480×880) and score it against every frame's annotation (J&F per object, then the means). A
    sequence annotated on its first frame only (DAVIS test-dev, one's own videos) is propagated and
    left unscored (``J&F`` None).
    ``out_dir``: the predictions as palette PNGs ``<out_dir>/<seq>/<frame>.png`` (DAVIS's results
    layout) at the annotations' size."""
    from PIL import Image

    first = _read_labels(sequence.annotations[0])
    label_ids = sorted(int(v) for v in np.unique(first))
    if 0 not in label_ids:
        label_ids = [0, *label_ids]
    frames = _read_frames(sequence.frames, size, mean, std)
    features = frame_features(model, frames)
    first_resized = F.interpolate(torch.from_numpy(first)[None, None].float(), size=size, mode="nearest")[0, 0]
    soft = propagate_labels(features, first_frame_labels(first_resized, label_ids, tuple(features.shape[1:3])), settings)
    hard = hard_labels(soft, size, label_ids)
    original = first.shape
    predicted = F.interpolate(hard[:, None].float(), size=original, mode="nearest")[:, 0].to(torch.uint8).numpy()
    if out_dir is not None:
        with Image.open(sequence.annotations[0]) as annotation:
            palette = annotation.getpalette() if annotation.mode == "P" else None
        folder = Path(out_dir) / sequence.name
        folder.mkdir(parents=True, exist_ok=True)
        for frame, labels in zip(sequence.frames, predicted):
            image = Image.fromarray(labels, mode="P" if palette else "L")
            if palette:
                image.putpalette(palette)
            image.save(folder / f"{frame.stem}.png")
    found = {"sequence": sequence.name, "predicted": predicted, "objects": [], "J": None, "F": None, "J&F": None}
    if len(sequence.annotations) == 1:  # the first frame's mask only (test-dev, one's own videos): nothing to score
        return found
    truth_by_name = {path.stem: path for path in sequence.annotations}
    scored = [i for i, frame in enumerate(sequence.frames) if frame.stem in truth_by_name]
    if len(scored) != len(sequence.frames):
        raise ValueError(f"sequence {sequence.name!r}: {len(sequence.frames) - len(scored)} frames have no "
                         f"annotation; J&F needs one per frame (or only the first frame's, to predict unscored)")
    truth = np.stack([_read_labels(truth_by_name[sequence.frames[i].stem]) for i in scored])
    objects = davis_scores(predicted, truth)
    j, f = float(np.mean([o["J"] for o in objects])), float(np.mean([o["F"] for o in objects]))
    return {**found, "objects": objects, "J": j, "F": f, "J&F": (j + f) / 2}


#: the keys of a config's ``propagation`` section (the settings, frame size, DAVIS resolution)
PROPAGATION_KEYS = ("topk", "radius", "context", "temperature", "size", "resolution")


def propagation_options(section: Any) -> tuple[PropagationSettings, tuple[int, int], str]:
    """Settings, frame size and DAVIS resolution from a config's ``propagation`` section; an
    unknown key or a bad value is a ValueError naming it."""
    section = dict(section or {})
    unknown = sorted(set(section) - set(PROPAGATION_KEYS))
    if unknown:
        raise ValueError(f"propagation: unknown key {unknown[0]!r} (expected {', '.join(PROPAGATION_KEYS)})")
    raw = section.get("size", (480, 880))
    size = tuple(raw) if isinstance(raw, (list, tuple)) else ()
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"propagation.size must be (height, width) in pixels, got {section.get('size')!r}")
    settings = PropagationSettings(**{k: section[k] for k in ("topk", "radius", "context", "temperature") if k in section})
    return settings, (int(size[0]), int(size[1])), str(section.get("resolution", "480p"))


def evaluate_propagation(model: Any, sequences: Sequence[DavisSequence], size: tuple[int, int],
                         settings: PropagationSettings = PropagationSettings(), out_dir: str | Path | None = None,
                         log: Any = None) -> dict[str, Any]:
    """J&F over sequences: per sequence, and the global means over objects as DAVIS reports them
    (None where every sequence is annotated on its first frame only; ``unscored`` names those)."""
    results = []
    for sequence in sequences:
        found = propagate_sequence(model, sequence, size, settings, out_dir=out_dir)
        results.append({key: found[key] for key in ("sequence", "J", "F", "J&F", "objects")})
        if log is not None:
            log(f"{sequence.name}: J&F {found['J&F']:.3f} (J {found['J']:.3f}, F {found['F']:.3f})"
                if found["objects"] else f"{sequence.name}: propagated (first-frame annotation only: not scored)")
    objects = [obj for result in results for obj in result["objects"]]
    j, f = (float(np.mean([o[key] for o in objects])) if objects else None for key in ("J", "F"))
    return {"J&F": (j + f) / 2 if objects else None, "J": j, "F": f, "sequences": results, "objects": len(objects),
            "unscored": [r["sequence"] for r in results if not r["objects"]],
            "settings": {**settings.__dict__, "size": list(size)}}
