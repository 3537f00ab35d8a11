"""maekit-face: a maekit plugin."""
__version__ = "0.1.0"
