"""NTU RGB+D skeletons: the raw ``.skeleton`` text format (read and write), the fields of its file
names, the standard benchmark splits, and the preprocessing every skeleton pipeline starts from
(noisy-body removal, up to two bodies, spine centring, optional view alignment)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NUM_JOINTS", "SPINE", "BONES", "SkeletonBody", "read_skeleton", "write_skeleton", "parse_ntu_name",
           "in_split", "BENCHMARKS", "XSUB_TRAIN_PERFORMERS", "sequence_array", "select_bodies", "centre_on_spine",
           "align_view", "valid_frames"]

NUM_JOINTS = 25
SPINE = 1  # joint 2 of the NTU layout ("middle of the spine"), 0-based
BODY_FIELDS = ("clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence", "handRightState",
               "isResticted", "leanX", "leanY", "trackingState")
JOINT_FIELDS = ("x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW", "orientationX",
                "orientationY", "orientationZ", "trackingState")
# The 24 bones of the NTU layout (0-based joint pairs), for drawing stick figures.
BONES = ((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9), (11, 10),
         (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 22), (22, 7),
         (23, 24), (24, 11))

# Cross-subject training performers: the NTU-120 list; its members up to 40 are exactly NTU-60's 20.
XSUB_TRAIN_PERFORMERS = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45,
                                   46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84,
                                   85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103))
BENCHMARKS = {
    "xsub": "cross-subject: performers in XSUB_TRAIN_PERFORMERS train (NTU-60 and NTU-120)",
    "xview": "cross-view: cameras 2 and 3 train, camera 1 tests (NTU-60)",
    "xset": "cross-setup: even setup numbers train, odd ones test (NTU-120)",
}
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass
class SkeletonBody:
    """One tracked body in one frame: its Kinect id (a 64-bit number, kept as text), the 9 body
    fields after it, and ``joints`` (25 × 12, in :data:`JOINT_FIELDS` order)."""

    body_id: str
    info: np.ndarray
    joints: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SkeletonBody) and self.body_id == other.body_id
                and np.array_equal(self.info, other.info) and np.array_equal(self.joints, other.joints))


@dataclass
class SkeletonSequence:
    """A whole ``.skeleton`` file: per frame, the bodies seen (possibly none)."""

    frames: list[list[SkeletonBody]] = field(default_factory=list)


class _Lines:
    """The file's lines with their numbers, for errors that say where."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = path.read_text().splitlines()
        self.number = 0

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.path} line {self.number}: {message}")

    def fields(self, count: int, what: str) -> list[str]:
        if self.number >= len(self.lines):
            raise ValueError(f"{self.path}: file ends after line {self.number}, expected {what} (truncated file?)")
        line = self.lines[self.number]
        self.number += 1
        parts = line.split()
        if len(parts) != count:
            raise self.fail(f"expected {count} field(s) for {what}, got {len(parts)}: {line.strip()!r}")
        return parts

    def numbers(self, count: int, what: str) -> np.ndarray:
        parts = self.fields(count, what)
        try:
            return np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError:
            raise self.fail(f"non-numeric field in {what}: {' '.join(parts)!r}") from None

    def rows(self, rows: int, count: int, what: str) -> np.ndarray:
        """``rows`` lines of ``count`` numbers as one array, parsed in one go (the files hold millions
        of numbers); line by line, for the error's line number, only when that fails."""
        block = self.lines[self.number:self.number + rows]
        try:
            values = np.array(" ".join(block).split(), dtype=np.float64)
        except ValueError:
            values = None
        if len(block) == rows and values is not None and values.size == rows * count and all(
                len(line.split()) == count for line in block):
            self.number += rows
            return values.reshape(rows, count)
        return np.stack([self.numbers(count, what) for _ in range(rows)])

    def count(self, what: str) -> int:
        text = self.fields(1, what)[0]
        if not text.isdigit():
            raise self.fail(f"{what} must be a non-negative integer, got {text!r}")
        return int(text)


def read_skeleton(path: str | Path) -> SkeletonSequence:
    """Parse a raw NTU RGB+D ``.skeleton`` file: the frame count; per frame the body count (may be
    0); per body its id line (10 fields), the joint count (must be 25) and 25 joint lines of 12
    fields. Any deviation raises ``ValueError`` naming the file and line."""
    lines = _Lines(Path(path))
    sequence = SkeletonSequence()
    for _ in range(lines.count("the number of frames")):
        bodies = []
        for _ in range(lines.count("the number of bodies in a frame")):
            parts = lines.fields(10, "a body line (bodyID and " + " ".join(BODY_FIELDS) + ")")
            try:
                info = np.array([float(p) for p in parts[1:]], dtype=np.float64)
            except ValueError:
                raise lines.fail(f"non-numeric body field after the id: {' '.join(parts)!r}") from None
            joint_count = lines.count("the number of joints")
            if joint_count != NUM_JOINTS:
                raise lines.fail(f"a body has {joint_count} joints; NTU RGB+D skeletons have {NUM_JOINTS}")
            joints = lines.rows(NUM_JOINTS, 12, "a joint line (" + " ".join(JOINT_FIELDS) + ")")
            bodies.append(SkeletonBody(parts[0], info, joints))
        sequence.frames.append(bodies)
    extra = [n for n in range(lines.number, len(lines.lines)) if lines.lines[n].strip()]
    if extra:
        lines.number = extra[0] + 1
        raise lines.fail("content after the last frame the header announced (wrong frame count?)")
    return sequence


def _text(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (integers without a decimal point)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def write_skeleton(path: str | Path, sequence: SkeletonSequence) -> Path:
    """Write ``sequence`` in the ``.skeleton`` format :func:`read_skeleton` reads (values read back
    bit for bit; body ids verbatim)."""
    out = [str(len(sequence.frames))]
    for bodies in sequence.frames:
        out.append(str(len(bodies)))
        for body in bodies:
            if body.joints.shape != (NUM_JOINTS, 12) or body.info.shape != (9,):
                raise ValueError(f"body {body.body_id}: joints must be 25×12 and info 9 values, got "
                                 f"{body.joints.shape} and {body.info.shape}")
            out.append(" ".join([body.body_id, *map(_text, body.info)]))
            out.append(str(NUM_JOINTS))
            out.extend(" ".join(map(_text, joint)) for joint in body.joints)
    path = Path(path)
    path.write_text("\n".join(out) + "\n")
    return path


def parse_ntu_name(path: str | Path) -> dict[str, int]:
    """``SsssCcccPpppRrrrAaaa`` of an NTU file name → setup, camera, performer, replication, action."""
    match = _NAME.search(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: file name does not follow NTU's SsssCcccPpppRrrrAaaa pattern "
                         f"(e.g. S001C002P003R002A013.skeleton)")
    return dict(zip(("setup", "camera", "performer", "replication", "action"), map(int, match.groups())))


def in_split(fields: dict[str, int], benchmark: str, split: str) -> bool:
    """Whether a sample (its :func:`parse_ntu_name` fields) belongs to ``split`` of ``benchmark``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {benchmark!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if benchmark == "xsub":
        training = fields["performer"] in XSUB_TRAIN_PERFORMERS
    elif benchmark == "xview":
        training = fields["camera"] in (2, 3)
    else:
        training = fields["setup"] % 2 == 0
    return training == (split == "train")


def _body_tracks(sequence: SkeletonSequence) -> dict[str, np.ndarray]:
    """Per body id, its xyz over the frames that have any body (T × 25 × 3, zeros where absent).
    Frames with no body are dropped here, as every NTU preprocessing does."""
    kept = [bodies for bodies in sequence.frames if bodies]
    tracks: dict[str, np.ndarray] = {}
    for t, bodies in enumerate(kept):
        for body in bodies:
            track = tracks.setdefault(body.body_id, np.zeros((len(kept), NUM_JOINTS, 3)))
            track[t] = body.joints[:, :3]
    return tracks


def _present(track: np.ndarray) -> np.ndarray:
    return np.abs(track).sum(axis=(1, 2)) > 0


def _noisy_by_spread(track: np.ndarray, ratio: float = 0.8, share: float = 0.69754) -> bool:
    """A body wider (x) than ``ratio`` × its height (y) in more than ``share`` of its frames is an
    object, not a person (CTR-GCN's denoising thresholds)."""
    frames = track[_present(track)]
    spread_x = frames[:, :, 0].max(1) - frames[:, :, 0].min(1)
    spread_y = frames[:, :, 1].max(1) - frames[:, :, 1].min(1)
    return bool(np.mean(spread_x > ratio * spread_y) > share)


def _motion(track: np.ndarray) -> float:
    """ST-GCN's body energy: summed standard deviation of x, y, z over the frames it is present."""
    frames = track[_present(track)]
    return float(frames.std(axis=(0, 1)).sum()) if len(frames) else 0.0


def select_bodies(tracks: dict[str, np.ndarray], max_bodies: int = 2, min_frames: int = 11) -> list[np.ndarray]:
    """Remove noisy bodies, keep up to ``max_bodies`` by motion (most first). Noise, as CTR-GCN
    removes it when a sequence has several bodies: tracked for at most ``min_frames`` frames, or
    spread more widely than tall (:func:`_noisy_by_spread`). A sole body is always kept."""
    bodies = list(tracks.values())
    if len(bodies) > 1:
        bodies = [b for b in bodies if _present(b).sum() > min_frames] or bodies
    if len(bodies) > 1:
        bodies = [b for b in bodies if not _noisy_by_spread(b)] or bodies
    return sorted(bodies, key=_motion, reverse=True)[:max_bodies]


def sequence_array(sequence: SkeletonSequence, max_bodies: int = 2, path: str | Path = "") -> np.ndarray:
    """The ``(3, T, 25, max_bodies)`` float32 array of a parsed file: frames without bodies dropped,
    noisy bodies removed, bodies ordered by motion, missing bodies zero."""
    tracks = _body_tracks(sequence)
    if not tracks:
        raise ValueError(f"{path}: no frame has a body; nothing to learn from")
    chosen = select_bodies(tracks, max_bodies)
    length = next(iter(tracks.values())).shape[0]
    data = np.zeros((3, length, NUM_JOINTS, max_bodies), np.float32)
    for m, track in enumerate(chosen):
        data[..., m] = track.transpose(2, 0, 1)
    return data


def valid_frames(data: np.ndarray) -> int:
    """Frames with any non-zero coordinate (zero-padded tails excluded), as the feeders count them."""
    nonzero = np.abs(data).sum(axis=(0, 2, 3)) > 0
    return int(nonzero.sum())


def centre_on_spine(data: np.ndarray) -> np.ndarray:
    """Subtract joint 2 (middle of the spine) of body 1 in its first non-zero frame from every
    present joint of every body (absent bodies stay zero)."""
    data = np.array(data, dtype=np.float32, copy=True)
    first = data[..., 0]
    present = np.abs(first).sum(axis=(0, 2)) > 0
    if not present.any():
        return data
    origin = first[:, int(np.argmax(present)), SPINE]
    body_present = np.abs(data).sum(axis=(0, 2), keepdims=True) > 0  # 1 × T × 1 × M
    return np.where(body_present, data - origin[:, None, None, None], 0.0).astype(np.float32)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation matrix turning direction ``a`` onto ``b`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis, cos = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(axis) < 1e-8:
        return np.eye(3) if cos > 0 else -np.eye(3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.arccos(np.clip(cos, -1, 1))
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def align_view(data: np.ndarray) -> np.ndarray:
    """ST-GCN's view alignment of a centred sequence: rotate so body 1's hip → spine bone (joints
    1 → 2) of the first frame points along z, then its right → left shoulder (joints 9 → 5) along x."""
    data = np.array(data, dtype=np.float32, copy=True)
    first = data[:, 0, :, 0]
    if not np.abs(first).sum():
        return data
    to_z = _rotation_between(first[:, SPINE] - first[:, 0], np.array([0.0, 0.0, 1.0]))
    shoulders = to_z @ (first[:, 4] - first[:, 8])
    shoulders[2] = 0.0  # in the plane orthogonal to z, so the spine stays on z
    to_x = _rotation_between(shoulders, np.array([1.0, 0.0, 0.0])) if np.linalg.norm(shoulders) > 1e-8 else np.eye(3)
    rotation = (to_x @ to_z).astype(np.float32)
    return np.einsum("ij,jtvm->itvm", rotation, data)
