"""Audio-MAE's front end: read a file, one channel at 16 kHz, Kaldi log-mel filterbank, pad or crop
in the log-mel domain, normalise by the dataset's mean and twice its std (facebookresearch/AudioMAE
``dataset.py``, the AST convention).

Reading: WAV / FLAC / OGG (and anything else libsndfile reads) with soundfile; the audio track of
video and compressed files (mp4, m4a, mkv, webm, avi, mp3, aac) with PyAV. Resampling with
``torchaudio.functional.resample``; the filterbank is ``torchaudio.compliance.kaldi.fbank``, called
with the reference's arguments. Channels: the reference keeps the first (``kaldi.fbank`` reads
channel 0 of what ``torchaudio.load`` returns); ``mono="mean"`` averages them instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SOUNDFILE_EXTENSIONS", "CONTAINER_EXTENSIONS", "AUDIO_EXTENSIONS", "NORM_STATS", "read_audio",
           "load_waveform", "kaldi_fbank", "pad_or_crop", "FbankFrontEnd", "MIN_SAMPLES"]

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au")
CONTAINER_EXTENSIONS = (".mp4", ".m4a", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mp3", ".aac", ".opus")
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + CONTAINER_EXTENSIONS

# (mean, std) of the log-mel fbank over each training set, and its frame count, as the reference.
NORM_STATS: dict[str, tuple[float, float]] = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}
TARGET_LENGTH = {"audioset": 1024, "esc50": 512, "speechcommands": 128}

# One 25 ms frame at 16 kHz: a clip shorter than this has no filterbank frame at all.
MIN_SAMPLES = 400


def _read_with_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # frames × channels
    return data.T, int(rate)


def _read_with_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("it has no audio stream")
        stream = container.streams.audio[0]
        # float planar output whatever the codec stores, so every file gives values in [-1, 1]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        chunks = []
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                chunks.append(converted.to_ndarray())
        chunks.extend(converted.to_ndarray() for converted in resampler.resample(None))
        rate = int(stream.rate)
    if not chunks:
        return np.zeros((1, 0), dtype=np.float32), rate
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """(channels × samples float32 in [−1, 1], sample rate) of an audio or video file; ``ValueError``
    naming the file for a missing, unreadable or empty one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: audio file not found")
    reader = _read_with_pyav if path.suffix.lower() in CONTAINER_EXTENSIONS else _read_with_soundfile
    try:
        data, rate = reader(path)
    except ValueError as error:
        raise ValueError(f"{path}: unreadable audio ({error})") from None
    except Exception as error:  # soundfile and PyAV raise their own error types for a corrupt file
        raise ValueError(f"{path}: unreadable audio ({type(error).__name__}: {error})") from None
    if data.shape[-1] == 0:
        raise ValueError(f"{path}: the file holds no audio samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the audio holds NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(data)), rate


def load_waveform(path: str | Path, sample_rate: int = 16000, mono: str = "first") -> torch.Tensor:
    """A (1, samples) waveform at ``sample_rate``: channel rule ``mono`` ("first" as the reference,
    or "mean"), resampled with torchaudio's band-limited sinc resampler when the file's rate differs.
    A clip shorter than one 25 ms frame is an error naming the file."""
    if mono not in ("first", "mean"):
        raise ValueError(f"mono must be 'first' (the reference: channel 0) or 'mean', got {mono!r}")
    waveform, rate = read_audio(path)
    waveform = waveform[:1] if mono == "first" else waveform.mean(dim=0, keepdim=True)
    if rate != sample_rate:
        from torchaudio.functional import resample

        waveform = resample(waveform, rate, sample_rate)
    needed = MIN_SAMPLES * sample_rate // 16000
    if waveform.shape[-1] < needed:
        raise ValueError(f"{path}: too short: {waveform.shape[-1]} samples at {sample_rate} Hz, the filterbank "
                         f"needs at least {needed} (one 25 ms frame)")
    return waveform


def kaldi_fbank(waveform: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128) -> torch.Tensor:
    """(frames, num_mel_bins) log-mel filterbank exactly as the reference calls it: mean removed,
    Hanning window, 25 ms frames every 10 ms, no energy, no dither (998 frames for 10 s)."""
    from torchaudio.compliance import kaldi

    waveform = waveform.reshape(1, -1)
    if not waveform.is_floating_point():
        waveform = waveform.float()
    return kaldi.fbank(waveform - waveform.mean(), htk_compat=True, sample_frequency=sample_rate, use_energy=False,
                       window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0, frame_shift=10)


def pad_or_crop(fbank: torch.Tensor, target_length: int) -> torch.Tensor:
    """Zero-pad (in the log-mel domain, before normalising, as the reference) or crop to
    ``target_length`` frames."""
    missing = target_length - fbank.shape[0]
    if missing > 0:
        return torch.nn.functional.pad(fbank, (0, 0, 0, missing))
    return fbank[:target_length]


class FbankFrontEnd:
    """Waveform (1, samples) → normalised log-mel spectrogram (1, target_length, num_mel_bins): the
    model's input, time along rows, mel bins along columns. ``stats`` names a reference dataset's
    (mean, std) — audioset, esc50, speechcommands — or give ``mean`` and ``std``."""

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, target_length: int = 1024,
                 stats: str | None = "audioset", mean: float | None = None, std: float | None = None) -> None:
        if stats is not None and stats not in NORM_STATS:
            raise ValueError(f"stats must be one of {', '.join(NORM_STATS)} (or give mean and std), got {stats!r}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (then stats names them)")
        if mean is None:
            if stats is None:
                raise ValueError("give mean and std, or stats naming a reference dataset's")
            mean, std = NORM_STATS[stats]
        if std is None or std <= 0:
            raise ValueError(f"std must be positive, got {std!r}")
        for name, value in (("sample_rate", sample_rate), ("num_mel_bins", num_mel_bins),
                            ("target_length", target_length)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.sample_rate, self.num_mel_bins, self.target_length = sample_rate, num_mel_bins, target_length
        self.mean, self.std = float(mean), float(std)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """(target_length, num_mel_bins), padded or cropped, not yet normalised."""
        return pad_or_crop(kaldi_fbank(waveform, self.sample_rate, self.num_mel_bins), self.target_length)

    def normalise(self, fbank: torch.Tensor) -> torch.Tensor:
        return (fbank - self.mean) / (2 * self.std)

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        return values * (2 * self.std) + self.mean

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.log_mel(waveform)).unsqueeze(0)

    def describe(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "num_mel_bins": self.num_mel_bins,
                "target_length": self.target_length, "mean": self.mean, "std": self.std}


class AudioBytes:
    """``audio_bytes``: an audio (or video) file stored in a WebDataset shard (kept as bytes by
    core's ``shards`` dataset) read as :func:`load_waveform` reads a file — ``sample_rate``,
    ``mono`` — into a (1, samples) waveform. Streamed AudioSet-style shards (``KEY.flac`` +
    ``KEY.cls``)::

        dataset=dict(type="shards", shards="audioset/{000000..000999}.tar", fields=dict(flac="inputs"),
                     field_transforms=dict(inputs=dict(type="audio_bytes")))
    """

    def __init__(self, sample_rate: int = 16000, mono: str = "first") -> None:
        if mono not in ("first", "mean"):
            raise ValueError(f"mono must be 'first' (the reference: channel 0) or 'mean', got {mono!r}")
        self.sample_rate, self.mono = sample_rate, mono

    def __call__(self, member: Any) -> torch.Tensor:
        from maekit.data.shards import RawMember

        if not isinstance(member, RawMember):
            raise ValueError(f"audio_bytes reads a shard member kept as bytes, got a {type(member).__name__}: "
                             f"map the audio's extension to this field in the shards dataset's fields")
        with member.as_file() as path:
            return load_waveform(path, self.sample_rate, self.mono)
