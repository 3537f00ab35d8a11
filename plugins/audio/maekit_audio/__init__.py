"""maekit-audio: Audio-MAE (Huang et al., 2022) on real audio files — front end, datasets, model,
fine-tuning and evaluation, official checkpoint conversion."""
__version__ = "0.1.0"
