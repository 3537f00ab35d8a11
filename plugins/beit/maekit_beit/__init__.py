"""maekit-beit: BEiT and PeCo — masked image modelling that predicts a tokenizer's ids."""
