"""maekit-autoregressive: predicting pixels in an order — iGPT over a colour palette (raster order,
or BERT's hidden pixels) and SAIM (a random order with two attention streams)."""
__version__ = "0.1.0"
