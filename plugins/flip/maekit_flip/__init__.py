"""maekit-flip: FLIP (Li et al., CVPR 2023), CLIP-style language-image pre-training in which the
image tower sees only a random subset of its patches."""
__version__ = "0.1.0"
