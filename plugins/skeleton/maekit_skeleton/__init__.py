"""maekit-skeleton: SkeletonMAE, spatial-temporal masked autoencoding of skeleton sequences."""
__version__ = "0.1.0"
