"""AU datasets in their real on-disk layouts: BP4D, DISFA and a BP4D+ manifest, with the 3-fold
subject-exclusive splits, and the face-crop cache (``maekit face-crop``).

Every sample is ``{"inputs": C×H×W float in [0, 1], "label": K floats (1, 0, or -1 unknown)}``.
Readers check the files and raise one ``ValueError`` naming the file (and line) that is wrong.
"""
from __future__ import annotations

import csv
import json
import logging
from io import BytesIO
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.images import IMAGE_EXTENSIONS, read_image
from maekit_face.aus import BP4D_AUS, BP4D_PARTS, DISFA_AUS, DISFA_PARTS, UNKNOWN, fold_subjects

__all__ = ["read_bp4d_occurrence", "read_disfa_intensities", "frames_by_number", "AUFrames", "BP4D", "DISFA",
           "BP4DPlus", "detect_face", "write_face_crops", "CROP_MANIFEST"]

LOG = logging.getLogger("maekit")
#: The crop cache's record of how every frame was cropped (and which had no face found).
CROP_MANIFEST = "face_crops.json"


def read_bp4d_occurrence(path: str | Path, aus: Sequence[int] = BP4D_AUS) -> dict[int, np.ndarray]:
    """One ``AUCoding/AU_OCC/<subject>_<task>.csv``: ``{frame: labels}`` over ``aus``. The header's
    first column is the frame number (named "0"), then one column per AU number; cells are 0/1
    and 9 = not coded, read as unknown (-1)."""
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty file; expected a header '0,1,2,...' (frame, then AU numbers)")
    header = [cell.strip() for cell in rows[0]]
    if header[0] != "0":
        raise ValueError(f"{path}: the header's first column must be '0' (the frame number), got {header[0]!r}")
    missing = [au for au in aus if str(au) not in header]
    if missing:
        raise ValueError(f"{path}: no column for AU {', '.join(map(str, missing))} in the header")
    columns = [header.index(str(au)) for au in aus]
    labels: dict[int, np.ndarray] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            frame = int(row[0])
            cells = [int(float(row[c])) for c in columns]
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{line}: expected a frame number and 0/1/9 for every AU column, got {row!r}") from None
        bad = [c for c in cells if c not in (0, 1, 9)]
        if bad:
            raise ValueError(f"{path}:{line}: AU occurrence must be 0, 1 or 9 (not coded), got {bad[0]}")
        if frame in labels:
            raise ValueError(f"{path}:{line}: frame {frame} appears twice")
        labels[frame] = np.array([UNKNOWN if c == 9 else c for c in cells], dtype=np.int64)
    if not labels:
        raise ValueError(f"{path}: a header but no frames")
    return labels


def read_disfa_intensities(folder: str | Path, aus: Sequence[int] = DISFA_AUS) -> dict[int, np.ndarray]:
    """One subject's ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` files (lines ``frame,intensity``,
    frames 1-based, intensity 0–5): ``{frame: intensities}`` over ``aus``. Every AU's file must
    list the same frames."""
    folder = Path(folder)
    per_au: list[dict[int, int]] = []
    for au in aus:
        path = folder / f"{folder.name}_au{au}.txt"
        if not path.is_file():
            raise ValueError(f"{path}: missing (DISFA keeps one file per AU: {folder.name}_au<k>.txt)")
        values: dict[int, int] = {}
        for line, text in enumerate(path.read_text().splitlines(), start=1):
            if not text.strip():
                continue
            try:
                frame_text, intensity_text = text.split(",")
                frame, intensity = int(frame_text), int(float(intensity_text))
            except ValueError:
                raise ValueError(f"{path}:{line}: expected 'frame,intensity', got {text!r}") from None
            if not 0 <= intensity <= 5 or frame < 1:
                raise ValueError(f"{path}:{line}: expected a frame >= 1 and an intensity 0-5, got {text!r}")
            values[frame] = intensity
        per_au.append(values)
    frames = sorted(per_au[0])
    for au, values in zip(aus, per_au):
        if sorted(values) != frames:
            raise ValueError(f"{folder / f'{folder.name}_au{au}.txt'}: lists {len(values)} frames, "
                             f"{folder.name}_au{aus[0]}.txt lists {len(frames)}: the AU files must cover the same frames")
    return {frame: np.array([values[frame] for values in per_au], dtype=np.int64) for frame in frames}


def frames_by_number(folder: Path) -> dict[int, Path]:
    """The image files of a folder by the integer value of their name (zero-padding differs
    between copies of the datasets: ``0001.jpg``, ``1.jpg`` and ``001.png`` are all frame 1)."""
    found: dict[int, Path] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem.isdigit():
                found[int(path.stem)] = path
    return found


def resized(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """``image`` (C×H×W in [0, 1]) at size × size (bilinear, antialiased), or as it is for None."""
    if size is None or tuple(image.shape[-2:]) == (size, size):
        return image
    return torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)[0].clamp(0, 1)


class AUFrames(Dataset):
    """Frames with AU labels: ``items`` of (image path, label row, subject). ``crops``: a
    ``maekit face-crop`` cache of ``image_root`` (read instead of the frames themselves). ``size``:
    resize every frame to size × size (the protocol's aligned 256 × 256 crop), None keeps it."""

    modality = "image"

    def __init__(self, items: Sequence[tuple[Path, np.ndarray, str]], aus: Sequence[int], image_root: Path,
                 crops: str | Path | None = None, size: int | None = 256, channels: int = 3) -> None:
        if not items:
            raise ValueError(f"no labelled frame with an image was found under {image_root}")
        self.paths = [path for path, _, _ in items]
        self.labels = np.stack([labels for _, labels, _ in items])
        self.subjects = [subject for _, _, subject in items]
        self.aus, self.image_root, self.size, self.channels = tuple(aus), Path(image_root), size, channels
        self.crops = None if crops is None else Path(crops)
        if self.crops is not None and not (self.crops / CROP_MANIFEST).is_file():
            raise ValueError(f"{self.crops}: not a face-crop cache (no {CROP_MANIFEST}); make it with "
                             f"'maekit face-crop {self.image_root} --out {self.crops}'")

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, index: int) -> Path:
        path = self.paths[index]
        if self.crops is None:
            return path
        cached = self.crops / path.relative_to(self.image_root).with_suffix(".png")
        if not cached.is_file():
            raise ValueError(f"{cached}: not in the face-crop cache; rerun 'maekit face-crop {self.image_root} "
                             f"--out {self.crops}'")
        return cached

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = read_image(self.image_path(index), self.channels)
        return {"inputs": resized(image, self.size), "label": torch.from_numpy(self.labels[index].astype(np.float32))}


def _resolve(items: list[tuple[int, np.ndarray, str, Path]], missing: str, what: str) -> list[tuple[Path, np.ndarray, str]]:
    """(frame, labels, subject, folder) → (image path, labels, subject), frames matched by integer
    value; frames without an image are an error naming the first, or with ``missing="skip"`` left
    out and counted in a warning."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    listed: dict[Path, dict[int, Path]] = {}
    resolved, absent = [], []
    for frame, labels, subject, folder in items:
        files = listed.setdefault(folder, frames_by_number(folder))
        if frame in files:
            resolved.append((files[frame], labels, subject))
        else:
            absent.append(folder / f"{frame}.<jpg|png>")
    if absent and missing == "error":
        raise ValueError(f"{len(absent)} labelled {what} frames have no image, e.g. {absent[0]} (frames are matched by "
                         f"the integer value of the file name); pass missing='skip' to leave them out")
    if absent:
        LOG.warning("%s: %d labelled frames have no image and are left out, e.g. %s", what, len(absent), absent[0])
    return resolved


class BP4D(AUFrames):
    """BP4D(-Spontaneous) AU occurrence: labels from ``<root>/AUCoding/AU_OCC/<subject>_<task>.csv``,
    frames at ``<images>/<subject>/<task>/<frame>.jpg`` (``images`` defaults to ``root``), the
    subjects of ``fold``'s ``split`` (folds named by their test part)."""

    def __init__(self, root: str | Path, images: str | Path | None = None, fold: int = 1, split: str = "train",
                 aus: Sequence[int] = BP4D_AUS, crops: str | Path | None = None, size: int | None = 256,
                 missing: str = "error", parts: Sequence[Sequence[str]] = BP4D_PARTS) -> None:
        root = Path(root)
        labels_dir = root / "AUCoding" / "AU_OCC"
        if not labels_dir.is_dir():
            raise ValueError(f"{labels_dir}: not found; BP4D keeps its AU occurrence as AUCoding/AU_OCC/<subject>_<task>.csv")
        image_root = Path(images) if images is not None else root
        wanted = set(fold_subjects(parts, fold, split))
        items = []
        for path in sorted(labels_dir.glob("*.csv")):
            subject, _, task = path.stem.partition("_")
            if not task:
                raise ValueError(f"{path}: expected a file named <subject>_<task>.csv (e.g. F001_T1.csv)")
            if subject not in wanted:
                continue
            for frame, labels in read_bp4d_occurrence(path, aus).items():
                items.append((frame, labels, subject, image_root / subject / task))
        found = {subject for _, _, subject, _ in items}
        if wanted - found:
            LOG.warning("BP4D fold %d %s: no labels for %d of its subjects (%s)", fold, split, len(wanted - found),
                        ", ".join(sorted(wanted - found)[:5]))
        super().__init__(_resolve(items, missing, "BP4D"), aus, image_root, crops, size)


class DISFA(AUFrames):
    """DISFA AU presence: intensities from ``<root>/ActionUnit_Labels/<SN>/<SN>_au<k>.txt``, an AU
    present at intensity >= ``threshold`` (2, the protocol; some repositories use 1), frames at
    ``<images>/<SN>/<frame + frame_offset>.png``. ``frame_offset`` is -1 for the usual extraction
    (label frame 1 is image 0.png); 0 when images are numbered from 1."""

    def __init__(self, root: str | Path, images: str | Path | None = None, fold: int = 1, split: str = "train",
                 aus: Sequence[int] = DISFA_AUS, threshold: int = 2, frame_offset: int = -1,
                 crops: str | Path | None = None, size: int | None = 256, missing: str = "error",
                 parts: Sequence[Sequence[str]] = DISFA_PARTS) -> None:
        root = Path(root)
        labels_dir = root / "ActionUnit_Labels"
        if not labels_dir.is_dir():
            raise ValueError(f"{labels_dir}: not found; DISFA keeps its labels as ActionUnit_Labels/<SN>/<SN>_au<k>.txt")
        if not 1 <= int(threshold) <= 5:
            raise ValueError(f"threshold must be an intensity 1-5 (the protocol's is 2), got {threshold!r}")
        image_root = Path(images) if images is not None else root
        items = []
        for subject in fold_subjects(parts, fold, split):
            folder = labels_dir / subject
            if not folder.is_dir():
                LOG.warning("DISFA fold %d %s: no labels for %s (%s)", fold, split, subject, folder)
                continue
            for frame, intensity in read_disfa_intensities(folder, aus).items():
                items.append((frame + int(frame_offset), (intensity >= threshold).astype(np.int64), subject,
                              image_root / subject))
        super().__init__(_resolve(items, missing, "DISFA"), aus, image_root, crops, size)


class BP4DPlus(Dataset):
    """BP4D+ frames as five registered channels [R, G, B, depth, thermal] from a manifest CSV
    ``subject,task,frame,rgb,depth,thermal[,AU1,AU2,...]`` (paths relative to the manifest; AU
    columns 0/1/9 as BP4D's, absent = unlabelled, every label -1). The three images of a frame
    must exist and share H × W (registered to the RGB frame): checked when read, naming the files.
    ``subjects``: keep these only (None: all)."""

    COLUMNS = ("subject", "task", "frame", "rgb", "depth", "thermal")
    modality = "image_depth_thermal"  # five registered channels, not an RGB image

    def __init__(self, manifest: str | Path, aus: Sequence[int] = BP4D_AUS, subjects: Sequence[str] | None = None,
                 size: int | None = 256) -> None:
        self.manifest = Path(manifest)
        if not self.manifest.is_file():
            raise ValueError(f"{self.manifest}: manifest not found")
        with open(self.manifest, newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in self.COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{self.manifest}: the header lacks {', '.join(missing)}; expected "
                                 f"{','.join(self.COLUMNS)}[,AU1,...]")
            present = [au for au in aus if f"AU{au}" in header]
            if present and len(present) != len(aus):
                raise ValueError(f"{self.manifest}: AU columns for {present} but not for "
                                 f"{[au for au in aus if au not in present]}; give every AU's column or none")
            labelled = bool(present)
            rows, labels = [], []
            for line, row in enumerate(reader, start=2):
                if subjects is not None and row["subject"] not in subjects:
                    continue
                for column in ("rgb", "depth", "thermal"):
                    if not (self.manifest.parent / row[column]).is_file():
                        raise ValueError(f"{self.manifest}:{line}: {column} file {row[column]} not found")
                cells = [row[f"AU{au}"] for au in aus] if labelled else ["9"] * len(aus)
                if any(c.strip() not in ("0", "1", "9") for c in cells):
                    raise ValueError(f"{self.manifest}:{line}: AU cells must be 0, 1 or 9, got {cells}")
                labels.append([UNKNOWN if c.strip() == "9" else int(c) for c in cells])
                rows.append(row)
        if not rows:
            raise ValueError(f"{self.manifest}: no frames" + ("" if subjects is None else f" of subjects {list(subjects)}"))
        self.rows, self.labels, self.aus, self.size = rows, np.asarray(labels, dtype=np.int64), tuple(aus), size
        self.subjects = [row["subject"] for row in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        paths = [self.manifest.parent / row[column] for column in ("rgb", "depth", "thermal")]
        rgb, depth, thermal = read_image(paths[0], 3), read_image(paths[1], 1), read_image(paths[2], 1)
        shapes = [tuple(x.shape[-2:]) for x in (rgb, depth, thermal)]
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.manifest}: frame {row['subject']} {row['task']} {row['frame']}: rgb {shapes[0]}, "
                             f"depth {shapes[1]} and thermal {shapes[2]} differ in size; register them to the RGB frame "
                             f"first")
        image = torch.cat([rgb, depth, thermal])
        return {"inputs": resized(image, self.size), "label": torch.from_numpy(self.labels[index].astype(np.float32))}


def detect_face(image: np.ndarray, min_size: int = 24) -> tuple[int, int, int, int] | None:
    """The largest frontal face (top, left, height, width) that scikit-image's bundled LBP cascade
    finds in an H×W×3 or H×W image in [0, 1], or None."""
    from skimage import color, data, feature

    grey = color.rgb2gray(image) if image.ndim == 3 else image
    detector = feature.Cascade(data.lbp_frontal_face_cascade_filename())
    found = detector.detect_multi_scale(img=grey, scale_factor=1.2, step_ratio=1, min_size=(min_size, min_size),
                                        max_size=tuple(grey.shape), min_neighbor_number=2)
    if not found:
        return None
    best = max(found, key=lambda box: box["width"] * box["height"])
    return int(best["r"]), int(best["c"]), int(best["height"]), int(best["width"])


def square_crop_box(box: tuple[int, int, int, int] | None, shape: tuple[int, int], margin: float) -> tuple[int, int, int]:
    """(top, left, side) of a square around ``box`` widened by ``margin`` of its side on each side,
    kept inside the image; without a box the centre square."""
    height, width = shape
    if box is None:
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side
    top, left, box_h, box_w = box
    side = min(int(round(max(box_h, box_w) * (1 + 2 * margin))), height, width)
    centre_r, centre_c = top + box_h / 2, left + box_w / 2
    top = int(min(max(centre_r - side / 2, 0), height - side))
    left = int(min(max(centre_c - side / 2, 0), width - side))
    return top, left, side


def write_face_crops(images: str | Path, out: str | Path, size: int = 256, margin: float = 0.25,
                     log: Any = print) -> dict[str, Any]:
    """Detect the face in every image under ``images`` (scikit-image's LBP frontal-face cascade,
    offline), crop a square around it (``margin`` of the face's side added on each side), resize to
    ``size`` and write it to ``out`` at the same relative path (``.png``). Frames where no face is
    found get the centre square, and are listed in ``out/face_crops.json`` with every crop box.
    Existing crops are kept (an interrupted run continues)."""
    from PIL import Image

    from maekit.io.checkpoint import write_bytes, write_json

    images, out = Path(images), Path(out)
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{images}: no image files found")
    manifest_path = out / CROP_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"boxes": {}, "no_face": []}
    for number, path in enumerate(files):
        relative = path.relative_to(images).with_suffix(".png")
        target = out / relative
        if target.is_file() and str(relative) in manifest["boxes"]:
            continue
        image = read_image(path, 3).permute(1, 2, 0).numpy()
        box = detect_face(image)
        top, left, side = square_crop_box(box, image.shape[:2], margin)
        crop = np.asarray(Image.fromarray((image[top:top + side, left:left + side] * 255).round().astype(np.uint8))
                          .resize((size, size), Image.Resampling.BICUBIC))
        buffer = BytesIO()
        Image.fromarray(crop).save(buffer, format="PNG")
        write_bytes(target, buffer.getvalue())  # atomic: a killed run leaves no half file
        manifest["boxes"][str(relative)] = [top, left, side]
        if box is None:
            manifest["no_face"].append(str(relative))
        if number % 500 == 499:
            write_json(manifest_path, manifest)
            log(f"{number + 1}/{len(files)} cropped")
    manifest.update(size=size, margin=margin, detector="skimage lbp_frontal_face cascade")
    write_json(manifest_path, manifest)
    return manifest
