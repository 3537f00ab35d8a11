"""Which frames of a video a clip takes: the samplers of the video references, as pure functions of
the video's frame count (and fps), drawing from torch's global generator — which maekit's training
view seeds per sample position, so a resumed run reads the same frames.

- :func:`consecutive_frames`: N frames at a stride from a random start (VideoMAE pre-training).
- :func:`window_frames`: N frames spread uniformly over a window of seconds (OmniMAE).
- :func:`segment_frames`: one frame from each of N equal segments (TSN; SSv2 fine-tuning).
- :func:`evaluation_starts`: K clip positions spread evenly for multi-view testing.
- :func:`frame_pair`: two frames a random gap apart (SiamMAE).
"""
from __future__ import annotations

import torch

__all__ = ["consecutive_frames", "window_frames", "segment_frames", "evaluation_starts", "frame_pair", "clip_span",
           "ClipTooShort"]


class ClipTooShort(ValueError):
    """The video has fewer frames than the clip needs."""


def _randint(low: int, high: int) -> int:
    """Uniform integer in [low, high] from torch's global generator."""
    return int(torch.randint(low, high + 1, (1,)).item())


def clip_span(num_frames: int, stride: int) -> int:
    """Frames a clip of ``num_frames`` at ``stride`` covers (VideoMAE's ``skip_length``)."""
    return num_frames * stride


def consecutive_frames(total: int, num_frames: int, stride: int, start: int | None = None,
                       pad: bool = False) -> list[int]:
    """``num_frames`` frames ``stride`` apart starting at ``start`` (None: uniform over every start
    that fits, VideoMAE's ``_sample_train_indices`` with one segment). A video too short for the
    clip is an error, or with ``pad`` repeats its last frame (the reference's loader)."""
    span = clip_span(num_frames, stride)
    if total < span - stride + 1 and not pad:
        raise ClipTooShort(f"has {total} frames; a clip of {num_frames} frames at stride {stride} needs "
                           f"{span - stride + 1}")
    if total < 1:
        raise ClipTooShort("has no frames")
    last_start = max(total - span, 0)
    start = _randint(0, last_start) if start is None else min(max(start, 0), last_start)
    return [min(start + i * stride, total - 1) for i in range(num_frames)]


def window_frames(total: int, fps: float, num_frames: int, seconds: float, start: float | None = None) -> list[int]:
    """``num_frames`` frames spread uniformly (end points included) over a window of ``seconds``,
    starting at ``start`` seconds (None: uniform over the starts that fit; the whole video when it
    is shorter than the window) — OmniMAE's 16 frames over 2.7 s."""
    if total < num_frames:
        raise ClipTooShort(f"has {total} frames; a clip of {num_frames} frames needs at least that many")
    window = min(max(int(round(seconds * fps)), num_frames), total)
    last_start = total - window
    first = _randint(0, last_start) if start is None else min(max(int(round(start * fps)), 0), last_start)
    # truncated, as pytorchvideo's UniformTemporalSubsample (linspace(...).long())
    return torch.linspace(first, first + window - 1, num_frames).long().tolist()


def segment_frames(total: int, num_segments: int, train: bool = True) -> list[int]:
    """One frame per equal segment: a random one while training, the middle one otherwise —
    VideoMAE's SSv2 loader (``average_duration = total // num_segments``; test ticks
    ``int(tick/2 + tick·x)``)."""
    if total < num_segments:
        raise ClipTooShort(f"has {total} frames; {num_segments} segments need at least that many")
    if train:
        duration = total // num_segments
        return [i * duration + _randint(0, duration - 1) for i in range(num_segments)]
    tick = total / num_segments
    return [int(tick / 2.0 + tick * i) for i in range(num_segments)]


def evaluation_starts(total: int, span: int, num_clips: int) -> list[int]:
    """Start frames of ``num_clips`` clips of ``span`` frames spread evenly from the first to the
    last possible start (VideoMAE's test views: ``int(chunk · (T − span)/(K − 1))``); one clip:
    the centre."""
    room = max(total - span, 0)
    if num_clips == 1:
        return [room // 2]
    return [int(chunk * room / (num_clips - 1)) for chunk in range(num_clips)]


def frame_pair(total: int, min_gap: int, max_gap: int) -> list[int]:
    """Two frames ``gap`` ∈ [min_gap, max_gap] apart (SiamMAE: U[4, 48]), the first uniform over the
    starts that leave room; a video shorter than the gap gives its first and last frame."""
    if total < 2:
        raise ClipTooShort(f"has {total} frames; a frame pair needs 2")
    gap = min(_randint(min_gap, max_gap), total - 1)
    first = _randint(0, total - 1 - gap)
    return [first, first + gap]
