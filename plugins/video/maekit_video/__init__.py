"""maekit-video: VideoMAE, OmniMAE and MaskFeat on real video files (PyAV decoding, the field's
dataset formats, official checkpoint conversion, multi-view fine-tuning)."""

__version__ = "0.1.0"
