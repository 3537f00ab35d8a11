"""maekit-contrastive: masked autoencoders with a contrastive term between views (CMAE, MACRL,
SDMAE)."""
