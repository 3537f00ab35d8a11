"""The front end: reading every supported container, channel and rate rules, the reference's fbank
(parity with transformers' ASTFeatureExtractor on its own NumPy path), padding and normalisation,
and one clear error per broken file."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch
from maekit_audio.frontend import FbankFrontEnd, kaldi_fbank, load_waveform, pad_or_crop, read_audio


def tone(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A rising chirp with a little noise: every mel band gets energy."""
    t = np.arange(int(seconds * rate)) / rate
    chirp = 0.4 * np.sin(2 * np.pi * (100 * t + 1500 * t**2))
    return (chirp + 0.02 * np.random.default_rng(seed).standard_normal(t.shape)).astype(np.float32)


def test_fbank_matches_transformers_ast_feature_extractor_on_its_numpy_path(monkeypatch):
    from transformers.models.audio_spectrogram_transformer import feature_extraction_audio_spectrogram_transformer as ast

    # transformers uses torchaudio's kaldi.fbank when it can import it (the very function we call);
    # its NumPy path is an independent implementation of the same filterbank, so compare with that.
    monkeypatch.setattr(ast, "is_speech_available", lambda: False)
    extractor = ast.ASTFeatureExtractor(num_mel_bins=128, max_length=1024)
    waveform = tone(3.0)
    theirs = extractor(waveform, sampling_rate=16000, return_tensors="np")["input_values"][0]
    ours = FbankFrontEnd(stats="audioset", target_length=1024, num_mel_bins=128)(torch.from_numpy(waveform))[0]
    assert ours.shape == theirs.shape == (1024, 128)
    difference = np.abs(ours.numpy() - theirs)
    # float32 torch against float64 NumPy on values around ±1 (measured: mean 5e-7, 99.9 % below 5e-5; the
    # largest, 6e-4, in the lowest mel bins, whose filters span one or two FFT bins)
    assert difference.mean() < 2e-6 and np.quantile(difference, 0.999) < 1e-4 and difference.max() < 2e-3
    # in float64 the same front end agrees everywhere to ~3e-5 (the remaining gap: theirs rounds its
    # window and filters through float32 tensors)
    front_end = FbankFrontEnd(stats="audioset", target_length=1024, num_mel_bins=128)
    in_float64 = front_end.normalise(pad_or_crop(kaldi_fbank(torch.from_numpy(waveform).double()), 1024))
    assert np.abs(in_float64.numpy() - theirs).max() < 1e-4


def test_ten_seconds_give_998_frames_padded_with_zeros_in_the_log_mel_domain():
    fbank = kaldi_fbank(torch.from_numpy(tone(10.0)))
    assert fbank.shape == (998, 128)  # 25 ms frames every 10 ms, edges snipped
    front_end = FbankFrontEnd(stats="audioset")
    spectrogram = front_end(torch.from_numpy(tone(10.0)))[0]
    padding = (0 + 4.2677393) / (2 * 4.5689974)  # a padded frame is 0 before normalising: 0.467
    assert torch.allclose(spectrogram[998:], torch.full((26, 128), padding))
    assert torch.allclose(spectrogram[:998], (fbank + 4.2677393) / (2 * 4.5689974))
    assert pad_or_crop(fbank, 512).shape == (512, 128) and torch.equal(pad_or_crop(fbank, 512), fbank[:512])


def test_front_end_takes_a_named_dataset_statistic_or_explicit_ones():
    assert (FbankFrontEnd(stats="esc50").mean, FbankFrontEnd(stats="esc50").std) == (-6.6268077, 5.358466)
    assert FbankFrontEnd(stats=None, mean=1.0, std=2.0).normalise(torch.tensor(5.0)) == 1.0  # (5 − 1) / (2·2)
    with pytest.raises(ValueError, match="stats must be one of"):
        FbankFrontEnd(stats="audio_set")
    with pytest.raises(ValueError, match="both mean and std"):
        FbankFrontEnd(mean=1.0)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_24"), (".ogg", "VORBIS")])
def test_reads_wav_flac_and_ogg_as_floats_in_minus_one_to_one(tmp_path, suffix, subtype):
    waveform = tone(0.5)
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, waveform, 16000, subtype=subtype)
    data, rate = read_audio(path)
    assert rate == 16000 and data.shape[0] == 1 and data.dtype == torch.float32
    tolerance = 0.05 if subtype == "VORBIS" else 1e-3  # lossy codec
    if subtype != "VORBIS":  # lossless: every sample back
        assert data.shape[1] == len(waveform)
    assert np.abs(data[0, : len(waveform)].numpy() - waveform[: data.shape[1]]).mean() < tolerance


def test_stereo_keeps_the_first_channel_as_the_reference_or_averages_and_other_rates_are_resampled(tmp_path):
    left, right = tone(1.0, 44100), -0.5 * tone(1.0, 44100, seed=1)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    first = load_waveform(tmp_path / "stereo.wav", 44100, "first")
    mean = load_waveform(tmp_path / "stereo.wav", 44100, "mean")
    assert torch.allclose(first[0], torch.from_numpy(left)) and torch.allclose(mean[0], torch.from_numpy((left + right) / 2))
    resampled = load_waveform(tmp_path / "stereo.wav", 16000)
    assert resampled.shape == (1, 16000)  # 44 100 samples of 1 s → 16 000
    # the band-limited resampler keeps the signal: its spectrum peak stays at the same frequency
    soundfile.write(tmp_path / "a440.wav", np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32), 44100)
    spectrum = np.abs(np.fft.rfft(load_waveform(tmp_path / "a440.wav", 16000)[0].numpy()))
    assert abs(int(spectrum.argmax()) - 440) <= 1


def test_reads_the_audio_track_of_an_mp4_written_by_pyav(tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    samples = tone(1.0, 22050)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=22050, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
        frame.sample_rate = 22050
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data, rate = read_audio(path)
    assert rate == 22050 and data.shape[0] == 1 and abs(data.shape[1] - 22050) < 2048  # AAC frame padding
    waveform = load_waveform(path)
    assert abs(waveform.shape[1] - 16000) < 1500 and waveform.abs().max() > 0.1


def test_broken_files_are_errors_naming_the_file(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    soundfile.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    soundfile.write(tmp_path / "nan.wav", np.full(800, np.nan, np.float32), 16000, subtype="FLOAT")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    (tmp_path / "novideo.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    cases = {"missing.wav": "not found", "empty.wav": "no audio samples", "short.wav": "too short: 100 samples",
             "nan.wav": "NaN", "corrupt.wav": "unreadable audio", "novideo.mp4": "unreadable audio"}
    for name, reason in cases.items():
        with pytest.raises(ValueError) as caught:
            load_waveform(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value) and reason in str(caught.value), (name, caught.value)
    with pytest.raises(ValueError, match="mono must be"):
        load_waveform(tmp_path / "short.wav", mono="left")


def test_gain_adds_twice_its_log_to_the_log_mel_energies():
    # the reference's augmentation scales the waveform; the filterbank sees power, so log-mel + 2 log m
    waveform = torch.from_numpy(tone(1.0))
    plain, louder = kaldi_fbank(waveform), kaldi_fbank(1.3 * waveform)
    # (mel filters too narrow to hold an FFT bin at 128 bins / 16 kHz stay at the log floor either way)
    live = plain > math.log(torch.finfo(torch.float32).eps) + 1
    assert live.float().mean() > 0.9
    assert torch.allclose((louder - plain)[live], torch.tensor(2 * math.log(1.3)), atol=2e-3)
