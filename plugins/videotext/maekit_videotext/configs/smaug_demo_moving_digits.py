# The SimVTP demo with SMAUG-style sparsification: after the first of the 4 encoder blocks the video pass
# keeps the 3 of 4 time slices and, in each, the half of the visible cubes that receive the most attention;
# the joint passes see only those (README: every choice, and what it saves).
_base_ = ["./simvtp_demo_moving_digits.py"]
model = dict(type="smaug", sparsifier=dict(layer=2, keep_tokens=0.5, keep_frames=0.75))
