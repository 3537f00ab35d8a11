"""Evaluation on frozen features: linear probe (logistic regression) and k-NN."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from maekit.registry import build

__all__ = ["load_trained_model", "load_weights", "check_pool", "recalibrate_batchnorm", "pooled_features", "extract_features",
           "linear_probe", "knn_accuracy", "probe", "probe_pools"]


def load_trained_model(model_cfg: dict, checkpoint: str | Path | None) -> torch.nn.Module:
    """Build the method from its config and load a checkpoint: a training checkpoint written by
    ``maekit train`` or weights in any layout ``maekit convert`` reads. None keeps random init."""
    from maekit.io.checkpoint import CheckpointError, load_state_dict
    from maekit.io.convert import convert_state_dict, drop_classifier_head, strip_runner_prefix

    model = build("model", model_cfg)
    if checkpoint is not None:
        try:  # a timm-layout encoder reads as the official layout's encoder part
            raw = load_state_dict(checkpoint)
            own = strip_runner_prefix(raw)
            # a method with neither encoder nor decoder parts (TTT's ResNet Y) is read by its own names
            state = own if own and set(own) <= set(model.state_dict()) else convert_state_dict(raw)
        except CheckpointError as error:  # its message names the file already
            raise ValueError(f"{checkpoint}: {error}" if str(checkpoint) not in str(error) else str(error)) from error
        if not any(key.startswith(("encoder.head.", "encoder.fc_norm.")) for key in model.state_dict()):
            state, notes = drop_classifier_head(state)  # a fine-tuned file read as pre-trained weights
            for note in notes:
                logging.getLogger("maekit").warning("%s: fine-tuned checkpoint: %s", checkpoint, note)
        # an encoder-only file (exported, or the official mae_pretrain_*) leaves the decoder as initialised,
        # a method's teachers (target.* / teacher.*: frozen ones load their own files) and loss state as
        # built, and whatever else the method names in ``pretraining_only`` (heads, EMA copies, banks)
        load_weights(model, state, checkpoint, may_lack=("decoder.", "target.", "loss.", "teacher.",
                                                         *getattr(model, "pretraining_only", ())))
    return model.eval()


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Any, what: str = "model",
                 may_lack: Sequence[str] = ()) -> None:
    """Load ``state`` into ``module`` (position tables resampled to its grid, or left to it where
    they are fixed), or a ValueError naming ``source``: a shape that does not fit, an unexpected
    key, or a missing one other than a position table or a key under ``may_lack`` prefixes."""
    from maekit.io.convert import resize_pos_embeds

    try:
        missing, unexpected = module.load_state_dict(resize_pos_embeds(state, module), strict=False)
    except RuntimeError as error:
        raise ValueError(f"{source}: does not fit the configured {what}: {error}") from None
    missing = [k for k in missing if not k.endswith("pos_embed") and not k.startswith(tuple(may_lack))]
    if unexpected or missing:
        raise ValueError(f"{source}: does not fit the configured {what} (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")


def check_pool(model: torch.nn.Module, pool: str) -> int:
    """The encoder's prefix-token count, after checking that ``pool`` applies to it."""
    if pool not in ("cls", "mean"):
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
    prefix = getattr(model.encoder, "num_prefix_tokens", 1)
    if pool == "cls" and prefix == 0:
        raise ValueError(f"pool='cls' needs an encoder with a class token; {type(model.encoder).__name__} has none "
                         f"(use pool='mean')")
    return prefix


def _batches(dataset: Dataset, transform: Any, batch_size: int, drop_last: bool = False) -> DataLoader:
    """The dataset in order, through ``transform`` per item; ``drop_last`` drops a short last batch."""
    from maekit.data.views import TransformedView

    view = TransformedView(dataset, transform) if transform is not None else dataset
    return DataLoader(view, batch_size=batch_size, shuffle=False, drop_last=drop_last and len(view) > batch_size)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, dataset: Dataset, transform: Any = None, batch_size: int = 128) -> bool:
    """Re-estimate the encoder's BatchNorm statistics on ``dataset`` in place (the running
    buffers change, no weight does); False when it has none. A frozen CNN's stored statistics
    belong to other inputs — the corrupted images of pre-training, or none at all at random init,
    where eval-mode BatchNorm collapses the features — so both sides of a probe comparison get
    statistics of the images they classify."""
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return False
    model.eval()
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch
        norm.train()
    device = next(model.parameters()).device
    # a last batch of one image cannot give batch statistics (1×1 feature maps): dropped
    for batch in _batches(dataset, transform, batch_size, drop_last=True):
        model.encode({"inputs": batch["inputs"].to(device)})
    for norm, momentum in zip(norms, saved):
        norm.momentum = momentum
    model.eval()
    return True


@torch.no_grad()
def pooled_features(model: torch.nn.Module, dataset: Dataset, transform: Any = None, batch_size: int = 128,
                    pools: Sequence[str] = ("cls",), layer: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Frozen encoder features (no masking), pooled each way in ``pools`` from one pass, and labels;
    ``layer``: the layer-normalised output of that encoder block instead of the encoder's output
    (``MaskedAutoencoder.encode_layer``)."""
    prefixes = {pool: check_pool(model, pool) for pool in pools}
    if layer is not None and not hasattr(model, "encode_layer"):
        raise ValueError(f"{type(model).__name__} cannot give an intermediate layer's features; probe without a layer")
    model.eval()
    device = next(model.parameters()).device
    features: dict[str, list[np.ndarray]] = {pool: [] for pool in pools}
    labels = []
    for batch in _batches(dataset, transform, batch_size):
        inputs = {"inputs": batch["inputs"].to(device)}
        tokens = model.encode(inputs) if layer is None else model.encode_layer(inputs, layer)
        for pool, prefix in prefixes.items():
            pooled = tokens[:, 0] if pool == "cls" else tokens[:, prefix:].mean(1)
            features[pool].append(pooled.float().cpu().numpy())
        labels.append(np.asarray(batch["label"]))
    return {pool: np.concatenate(parts) for pool, parts in features.items()}, np.concatenate(labels)


def extract_features(model: torch.nn.Module, dataset: Dataset, transform: Any = None, batch_size: int = 128,
                     pool: str = "cls") -> tuple[np.ndarray, np.ndarray]:
    """Frozen encoder features (no masking) and labels: the cls token (MAE's linear probe) or the
    mean of the patch tokens (``pool="mean"``, MAE's fine-tuning pool)."""
    features, labels = pooled_features(model, dataset, transform, batch_size, (pool,))
    return features[pool], labels


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 max_iter: int = 2000) -> float:
    """Accuracy of a logistic regression on standardised features (the BatchNorm without affine
    of MAE's probe, fitted once)."""
    return float((linear_probe_predictions(train_x, train_y, test_x, max_iter) == test_y).mean())


def linear_probe_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                             max_iter: int = 2000) -> np.ndarray:
    """The test classes a logistic regression on standardised training features predicts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    # one BLAS thread: L-BFGS makes hundreds of small products, and OpenBLAS's threads beside
    # torch's OpenMP ones spin against each other — measured 2.1 s → 0.03 s for 500 × 128
    # features on 2 cores, the same accuracy (README, Performance notes)
    with threadpool_limits(limits=1, user_api="blas"):
        classifier.fit(train_x, train_y)
        return classifier.predict(test_x)


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 20, temperature: float = 0.07) -> float:
    """Weighted k-NN on cosine similarity (weights exp(sim / T)), as in DINO's evaluation."""
    train = torch.nn.functional.normalize(torch.from_numpy(train_x).float(), dim=1)
    test = torch.nn.functional.normalize(torch.from_numpy(test_x).float(), dim=1)
    labels = torch.from_numpy(train_y).long()
    classes = int(max(labels.max().item(), int(test_y.max())) + 1)
    predictions = []
    for chunk in test.split(1024):  # bounded memory: 1024 × len(train) similarities at a time
        similarity, neighbours = (chunk @ train.T).topk(min(k, len(train)), dim=1)
        votes = torch.zeros(len(chunk), classes).scatter_add_(1, labels[neighbours], (similarity / temperature).exp())
        predictions.append(votes.argmax(1))
    return float((torch.cat(predictions).numpy() == test_y).mean())


def probe(model: torch.nn.Module, train: Dataset, test: Dataset, transform: Any = None, pool: str = "cls",
          k: int = 20, layer: int | None = None, confusion: bool = False) -> dict[str, Any]:
    """Linear-probe and k-NN accuracy of a model's frozen encoder, for one pool (of one ``layer``)."""
    return probe_pools(model, train, test, transform, (pool,), k, layer, confusion)[pool]


def probe_pools(model: torch.nn.Module, train: Dataset, test: Dataset, transform: Any = None,
                pools: Sequence[str] = ("mean", "cls"), k: int = 20, layer: int | None = None,
                confusion: bool = False) -> dict[str, dict[str, Any]]:
    """Linear-probe and k-NN accuracy per pool, from one encoder pass over each dataset (BatchNorm
    statistics, if any, re-estimated on ``train`` for the probe: see :func:`recalibrate_batchnorm`;
    the model's own buffers are restored afterwards). ``layer``: features of that encoder block
    (see :func:`pooled_features`), None: the encoder's output. ``confusion``: also the linear
    probe's confusion matrix (``confusion_matrix``: rows true class, columns predicted)."""
    for pool in pools:
        check_pool(model, pool)
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        recalibrate_batchnorm(model, train, transform)
        train_x, train_y = pooled_features(model, train, transform, pools=pools, layer=layer)
        test_x, test_y = pooled_features(model, test, transform, pools=pools, layer=layer)
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
    if (train_y < 0).any() or (test_y < 0).any():
        raise ValueError("probing needs labelled data: some samples have no label (-1)")
    scores: dict[str, dict[str, Any]] = {}
    for pool in pools:
        predicted = linear_probe_predictions(train_x[pool], train_y, test_x[pool])
        scores[pool] = {"linear_probe_accuracy": float((predicted == test_y).mean()),
                        "knn_accuracy": knn_accuracy(train_x[pool], train_y, test_x[pool], test_y, k=k)}
        if confusion:
            classes = int(max(train_y.max(), test_y.max())) + 1
            matrix = np.zeros((classes, classes), dtype=np.int64)
            np.add.at(matrix, (test_y, predicted), 1)
            scores[pool]["confusion_matrix"] = matrix.tolist()
    return scores
