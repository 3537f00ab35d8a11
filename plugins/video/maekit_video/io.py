"""Reading and writing video with PyAV (its wheel bundles FFmpeg: mp4/H.264, webm/VP9, avi, gif),
optionally reading with torchcodec where it is installed, and MMAction2's frame folders.

Every failure a user's file can cause — missing, empty, not a video, undecodable, fewer frames
than asked — is a ``ValueError`` naming the file, which the datasets' ``on_error`` policy turns
into an error or a skip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["VIDEO_EXTENSIONS", "DECODERS", "VideoInfo", "check_decoder", "probe_video", "read_frames", "write_video",
           "read_frame_folder", "frame_folder_info"]

#: the readers ``read_frames`` can use: PyAV (required) and torchcodec (optional)
DECODERS = ("pyav", "torchcodec")

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".gif")

#: encoder per container suffix when writing (all in PyAV's wheel)
_WRITERS = {".mp4": ("libx264", "yuv420p"), ".mkv": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"),
            ".avi": ("mpeg4", "yuv420p"), ".gif": ("gif", "rgb8")}


@dataclass(frozen=True)
class VideoInfo:
    """What clip sampling needs to know of a video: its frame count and frame rate."""

    num_frames: int
    fps: float


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file")


def _open(path: Path):
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{path}: not a readable video ({error})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: has no video stream")
    return container


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and rate. The container's count where it stores one (mp4, avi); otherwise the
    video packets are counted (webm, gif), which reads the file but decodes nothing."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        count = int(stream.frames or 0)
        if count <= 0:
            count = sum(1 for packet in container.demux(stream) if packet.size)
        fps = _fps(stream)
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: unreadable video ({error})") from None
    finally:
        container.close()
    if count <= 0:
        raise ValueError(f"{path}: no video frames")
    return VideoInfo(count, fps or 30.0)


def check_decoder(decoder: str) -> str:
    """``decoder`` if it names a usable reader, else a ValueError saying what to install: torchcodec
    is an optional dependency and loads FFmpeg's shared libraries from the system."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if decoder == "torchcodec":
        try:
            from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads its FFmpeg libraries)
        except (ImportError, OSError, RuntimeError) as error:
            raise ValueError(f"decoder='torchcodec' needs the torchcodec package (pip install 'maekit-video[torchcodec]') "
                             f"and FFmpeg's shared libraries, versions 4-7 (Debian: apt-get install ffmpeg); "
                             f"loading it failed: {_last_line(error)}"
                             ) from None
    return decoder


def read_frames(path: str | Path, indices: Sequence[int], seek: bool = True, decoder: str = "pyav") -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) as a uint8 tensor (len(indices), H, W, 3).

    ``decoder="torchcodec"`` reads with torchcodec (frames numbered by its exact scan of the
    stream; the same pixels as PyAV's, tested); the rest of this describes PyAV's read.

    With ``seek`` (and a stream with a frame rate and timestamps) decoding starts at the key frame
    before the first wanted frame and frames are numbered by their timestamps, as torchvision's
    reader does; otherwise every frame is decoded from the start and counted. The two agree on
    constant-frame-rate files (tested on H.264 with B-frames, VP9, MPEG-4); where timestamps leave
    a wanted frame unnumbered (variable frame rate) the read falls back to counting."""
    import av

    path = Path(path)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"{path}: frame indices must be non-negative, got {list(indices)[:5]}")
    if check_decoder(decoder) == "torchcodec":
        return _read_with_torchcodec(path, [int(i) for i in indices])
    container = _open(path)
    found: dict[int, np.ndarray] = {}
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, base = _fps(stream), stream.time_base
        # numbering by timestamps needs ticks much finer than frames (GIF's 1/100 s ticks round
        # 12 fps durations to 8 or 9: counted instead)
        timed = seek and fps > 0 and base is not None and wanted[0] > 0 and 1 / float(base) >= 10 * fps
        start = stream.start_time or 0
        if timed:
            container.seek(int(start + wanted[0] / fps / base), stream=stream, backward=True, any_frame=False)
        number = -1
        for frame in container.decode(stream):
            if timed and frame.pts is not None:
                number = int(round(float((frame.pts - start) * base) * fps))
            else:
                number += 1
            if number in wanted and number not in found:
                # reformat first: to_ndarray(format=...) builds a converter per frame (14× slower, PyAV 18)
                found[number] = frame.reformat(format="rgb24").to_ndarray()
            if number >= wanted[-1]:
                break
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: undecodable video ({error})") from None
    finally:
        container.close()
    missing = [i for i in wanted if i not in found]
    if missing and timed:  # timestamps did not number every frame (variable frame rate): count instead
        return read_frames(path, indices, seek=False)
    if missing:
        raise ValueError(f"{path}: has fewer frames than needed (frame {missing[0]} asked, {number + 1} decoded)")
    if len({frame.shape for frame in found.values()}) > 1:
        raise ValueError(f"{path}: the frame size changes inside the video; re-encode it at one size")
    return torch.from_numpy(np.stack([found[int(i)] for i in indices]))


def _read_with_torchcodec(path: Path, indices: list[int]) -> torch.Tensor:
    from torchcodec.decoders import VideoDecoder

    _check_file(path)
    try:
        reader = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable video ({_last_line(error)})") from None
    count = int(reader.metadata.num_frames or 0)
    if max(indices) >= count:
        raise ValueError(f"{path}: has fewer frames than needed (frame {max(indices)} asked, {count} decoded)")
    try:
        return reader.get_frames_at(indices).data
    except RuntimeError as error:
        raise ValueError(f"{path}: undecodable video ({_last_line(error)})") from None


def _last_line(error: Exception) -> str:
    """The last line of an error's message (torchcodec prefixes its C++ source position), or its type."""
    return (str(error).splitlines() or [type(error).__name__])[-1]


def write_video(path: str | Path, frames: np.ndarray | torch.Tensor, fps: float = 25.0, crf: int = 18,
                audio: np.ndarray | torch.Tensor | None = None, sample_rate: int = 16000) -> Path:
    """Write uint8 frames (T, H, W, 3) with the encoder of the file's suffix (.mp4/.mkv H.264,
    .webm VP9, .avi MPEG-4, .gif); H.264/VP9 need even sizes. ``audio``: a (channels, samples)
    float waveform in [−1, 1] at ``sample_rate`` muxed beside the video as AAC (.mp4/.mkv/.avi).
    For tests and demos: the files are real, read back through the same decoder users' files go
    through."""
    import av

    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3) uint8, got shape {frames.shape}")
    if path.suffix.lower() not in _WRITERS:
        raise ValueError(f"{path}: can write {', '.join(_WRITERS)}, not {path.suffix!r}")
    codec, pixel_format = _WRITERS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        from fractions import Fraction

        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        # every stream is added before the first packet: the container's header is written then
        sound = None if audio is None else _audio_stream(container, np.asarray(audio, dtype=np.float32), sample_rate)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _mux_audio(container, *sound)
    return path


def _audio_stream(container: Any, waveform: np.ndarray, sample_rate: int) -> tuple[Any, np.ndarray, int]:
    """An AAC stream for a (channels, samples) float waveform, added to an open output container."""
    if waveform.ndim != 2 or waveform.shape[0] not in (1, 2):
        raise ValueError(f"expected audio (channels 1 or 2, samples), got shape {waveform.shape}")
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono" if waveform.shape[0] == 1 else "stereo"
    return stream, waveform, sample_rate


def _mux_audio(container: Any, stream: Any, waveform: np.ndarray, sample_rate: int) -> None:
    """Encode the waveform into its stream, in AAC-frame-sized chunks."""
    import av

    chunk = 1024  # AAC's frame size
    for start in range(0, waveform.shape[1], chunk):
        part = np.ascontiguousarray(waveform[:, start:start + chunk])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts = sample_rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def frame_folder_info(folder: str | Path, template: str = "img_{:05d}.jpg", start_index: int = 1,
                      num_frames: int | None = None) -> VideoInfo:
    """A frame folder's frame count (as listed, or counted from ``template`` files on disk)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: frame folder not found")
    if num_frames is None:
        num_frames = 0
        while (folder / template.format(start_index + num_frames)).is_file():
            num_frames += 1
    if num_frames <= 0:
        raise ValueError(f"{folder}: no frames named like {template.format(start_index)}")
    return VideoInfo(num_frames, 30.0)


def read_frame_folder(folder: str | Path, indices: Sequence[int], template: str = "img_{:05d}.jpg",
                      start_index: int = 1) -> torch.Tensor:
    """Frames ``indices`` (0-based) of an MMAction2 rawframes folder (``img_00001.jpg``, ...) as
    uint8 (len(indices), H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    frames = []
    for index in indices:
        path = folder / template.format(start_index + int(index))
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except FileNotFoundError:
            raise ValueError(f"{path}: frame not found (the folder has fewer frames than listed)") from None
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path}: unreadable frame ({error})") from None
    if len({frame.shape for frame in frames}) > 1:
        raise ValueError(f"{folder}: frames differ in size")
    return torch.from_numpy(np.stack(frames))
