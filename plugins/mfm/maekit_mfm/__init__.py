"""maekit-mfm: Masked Frequency Modeling (Xie et al., ICLR 2023) for timm ViT and CNN encoders."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("maekit-mfm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
