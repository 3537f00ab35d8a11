"""maekit-attnmask: masks chosen by attention — AttMask, AMT and MRA."""
__version__ = "0.1.0"
