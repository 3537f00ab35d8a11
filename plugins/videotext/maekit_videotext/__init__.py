"""maekit-videotext: masked video-language pre-training (SimVTP, SMAUG-style) and retrieval."""

__version__ = "0.1.0"
