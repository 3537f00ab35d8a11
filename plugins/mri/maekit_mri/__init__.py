"""maekit-mri: a maekit plugin."""
__version__ = "0.1.0"
