"""maekit-ttt: test-time training with masked autoencoders (TTT-MAE) and with rotation prediction
(TTT), and the ImageNet-C corruptions to test them on."""
__version__ = "0.1.0"
