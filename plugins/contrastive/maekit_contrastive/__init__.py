"""maekit-contrastive: masked autoencoders with a contrastive term between views (CMAE, MACRL,
SDMAE)."""
__version__ = "0.1.0"
