# iGPT's BERT objective on the digits: as igpt_demo_digits, each pixel hidden with probability 0.15
# (its embedding zeroed), full attention, cross-entropy over the hidden pixels per image, then over
# the batch.
_base_ = ["./igpt_demo_digits.py"]
model = dict(objective="bert")
