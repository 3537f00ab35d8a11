"""Evaluation and pictures: probes and k-NN on frozen features, fine-tuning, reconstruction
grids, the demo (the application layer: may use mmengine, scikit-learn)."""
