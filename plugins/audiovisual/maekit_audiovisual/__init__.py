"""maekit-audiovisual: audio-visual masked autoencoders (Audiovisual MAE, MAViL) over paired video and audio."""

__version__ = "0.1.0"
