"""maekit-distill: masked autoencoders that learn from a moving teacher (BootMAE, SdAE)."""
__version__ = "0.1.0"
