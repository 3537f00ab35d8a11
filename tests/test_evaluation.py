import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from maekit.eval.finetune import finetune_config, run_finetune
from maekit.eval.probe import extract_features, knn_accuracy, linear_probe, load_trained_model
from maekit.eval.visualize import reconstruction_panels, save_grid
from maekit.io.export import export_encoder
from tests.conftest import tiny_mae
from tests.test_training import write_tiny_config


def test_knn_matches_a_hand_computed_vote():
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = np.array([0, 0, 1, 1])
    test_x = np.array([[0.8, 0.3], [0.2, 1.0]])
    # k=3: the third neighbour is of the other class but its weight exp(sim/T) is smaller
    assert knn_accuracy(train_x, train_y, test_x, np.array([0, 1]), k=3) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, np.array([1, 0]), k=3) == 0.0


def test_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (50, 4)), rng.normal(3, 1, (50, 4))])
    y = np.repeat([0, 1], 50)
    assert linear_probe(x, y, x, y) == 1.0
    assert linear_probe(x, y, x, 1 - y) == 0.0


def test_features_are_cls_or_mean_of_patch_tokens():
    model = tiny_mae().eval()
    dataset = [{"inputs": torch.randn(3, 32, 32), "label": i % 2} for i in range(6)]
    cls, labels = extract_features(model, dataset, pool="cls")
    mean, _ = extract_features(model, dataset, pool="mean")
    tokens = model.encode({"inputs": torch.stack([d["inputs"] for d in dataset])}).detach()
    assert np.allclose(cls, tokens[:, 0].numpy(), atol=1e-6) and np.allclose(mean, tokens[:, 1:].mean(1).numpy(), atol=1e-6)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_checkpoint_that_does_not_fit_is_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.cls_token": torch.zeros(1, 1, 8), "encoder.blocks.0.attn.qkv.weight": torch.zeros(24, 8)}, path)
    cfg = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
               encoder=dict(embed_dim=64, depth=1, num_heads=4), decoder_embed_dim=32, decoder_depth=1,
               decoder_num_heads=4)
    with pytest.raises((ValueError, RuntimeError), match="other.pth|size mismatch"):
        load_trained_model(cfg, path)


def test_visualization_grid_has_four_panels_per_image(tmp_path):
    model = tiny_mae(in_chans=1, norm_pix_loss=True)
    images = torch.randn(3, 1, 32, 32)
    rows = reconstruction_panels(model, model.run_steps(images), mean=(0.5,), std=(0.5,))
    assert len(rows) == 3 and all(len(r) == 4 for r in rows)
    assert rows[0][0].shape == (32, 32, 1) and rows[0][0].dtype == np.uint8
    # the first panel is the de-normalised input
    expected = ((images[0, 0] * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(rows[0][0][..., 0], expected)
    path = save_grid(rows, tmp_path / "grid.png", scale=2, gap=2)
    assert Image.open(path).size == ((4 * 34 + 2) * 2, (3 * 34 + 2) * 2)


def test_export_loads_in_timm_with_its_config(tmp_path):
    model = tiny_mae().eval()
    weights, config_path = export_encoder(model, tmp_path / "export")
    config = json.loads(config_path.read_text())
    vit = timm.create_model(config["architecture"], pretrained=True, num_classes=5,
                            pretrained_cfg_overlay=dict(file=str(weights)), **config["model_args"]).eval()
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(vit.forward_features(images), model.encode(images), atol=1e-5)
    assert vit.head.out_features == 5


def test_finetune_uses_layer_decay_and_reports_accuracy(tmp_path):
    from maekit.engine import load_config

    cfg = load_config(write_tiny_config(tmp_path))
    ft = finetune_config(cfg, None)
    assert ft.schedule.paramwise_cfg == dict(layer_decay=0.65)
    metrics = run_finetune(cfg, None, tmp_path / "ft", device="cpu")
    assert 0.0 <= metrics["top1_accuracy"] <= 1.0 and (tmp_path / "ft" / "metrics.json").exists()


def test_layer_decay_learning_rates():
    from mmengine.optim import build_optim_wrapper

    import maekit.engine
    maekit.engine.install()  # weights-only loaders and the atomic backend
    from maekit.engine.model import RunnerModel
    from maekit.eval.finetune import ViTClassifier

    method = tiny_mae()
    model = RunnerModel(ViTClassifier(method.patchifier, method.encoder, num_classes=3))
    wrapper = build_optim_wrapper(model, dict(type="OptimWrapper", constructor="MaekitLayerDecayConstructor",
                                              optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05),
                                              paramwise_cfg=dict(layer_decay=0.5)))
    lrs = {group["name"]: (group["lr"], group["weight_decay"]) for group in wrapper.optimizer.param_groups}
    depth = 2
    assert lrs["model.head.weight"] == (1.0, 0.05)
    assert lrs["model.encoder.blocks.1.attn.qkv.weight"] == (0.5, 0.05)
    assert lrs["model.encoder.blocks.0.attn.qkv.weight"] == (0.25, 0.05)
    assert lrs["model.encoder.patch_embed.proj.weight"] == (0.5 ** (depth + 1), 0.05)
    assert lrs["model.encoder.cls_token"] == (0.5 ** (depth + 1), 0.0)
    assert lrs["model.fc_norm.weight"][1] == 0.0


def test_batchnorm_statistics_are_re_estimated_on_the_probe_images():
    from maekit.eval.probe import recalibrate_batchnorm

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.BatchNorm2d(2), torch.nn.Dropout(0.5))

        def encode(self, batch):
            assert not self.encoder[2].training, "only BatchNorm may switch to training mode"
            return self.encoder(batch["inputs"])

    images = torch.randn(40, 2, 3, 3) * 3 + 5
    dataset = [{"inputs": image, "label": 0} for image in images]
    model = Tiny()
    weights = model.encoder[0].weight.clone()
    assert recalibrate_batchnorm(model, dataset, batch_size=40)
    with torch.no_grad():
        activations = model.encoder[0](images)
    norm = model.encoder[1]
    torch.testing.assert_close(norm.running_mean, activations.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(norm.running_var, activations.transpose(0, 1).reshape(2, -1).var(dim=1))
    assert not norm.training and norm.momentum == 0.1 and torch.equal(model.encoder[0].weight, weights)
    assert not recalibrate_batchnorm(tiny_mae(), dataset)  # no BatchNorm: nothing to do


def test_probe_leaves_the_models_batchnorm_buffers_as_they_were():
    from maekit.eval.probe import probe

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 8, stride=8), torch.nn.BatchNorm2d(4),
                                               torch.nn.Flatten(2))
            self.encoder.num_prefix_tokens = 0

        def encode(self, batch):
            return self.encoder(batch["inputs"]).transpose(1, 2)

    generator = torch.Generator().manual_seed(0)
    data = [{"inputs": torch.rand(1, 8, 8, generator=generator), "label": i % 2} for i in range(129)]
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model, data, data, pool="mean")  # 1×1 maps; 129 = 128 + a last batch of one, which is skipped
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_label_outside_the_heads_classes_is_a_clear_error():
    from maekit.eval.finetune import ViTClassifier

    method = tiny_mae()
    classifier = ViTClassifier(method.patchifier, method.encoder, num_classes=3)
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="label 5 is outside the 3 classes"):
        classifier({"inputs": images, "label": torch.tensor([0, 5])})


def test_finetune_passes_classifier_options_and_reports_the_classifiers_own_metrics(tmp_path):
    from maekit.engine import load_config
    from maekit.eval.finetune import Classifier, evaluate_classifier

    cfg = load_config(write_tiny_config(tmp_path))
    cfg.finetune.classifier_options = dict(global_pool="token")
    assert finetune_config(cfg, None).model.global_pool == "token"

    class Fixed(Classifier):  # logits given per sample: the metrics see every test sample once
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def classify(self, batch):
            return torch.nn.functional.one_hot(batch["inputs"].flatten(1)[:, 0].long() % 3, 3).float()

        def metrics(self, logits, labels):
            return {"seen": len(labels), **super().metrics(logits, labels)}

    dataset = [{"inputs": torch.full((1, 2, 2), float(i)), "label": i % 3 if i < 4 else 0} for i in range(6)]
    metrics = evaluate_classifier(Fixed(), dataset, transform=lambda x: x, batch_size=4)
    assert metrics == {"seen": 6, "top1_accuracy": pytest.approx(4 / 6)}  # samples 4, 5 predicted 1, 2; labelled 0


def test_patch_map_panels_scale_each_map_and_show_patches_as_blocks():
    from maekit.eval.visualize import patch_map_panels

    values = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 7.0]])
    first, second = patch_map_panels(values, (2, 2), (4, 4))
    assert first.shape == (4, 4, 3) and first.dtype == np.uint8
    assert first[0, 0, 0] == 0 and first[3, 3, 0] == 255 and first[0, 3, 0] == 85  # (1 - 0) / 3 of the range
    assert (first[:2, :2] == 0).all() and (second[:2, :2] == 0).all() and second[3, 3, 0] == 255  # per map


def test_save_grid_titles_columns_and_rows_and_refuses_a_miscount(tmp_path):
    from maekit.eval.visualize import PanelTitles

    panels = [[np.zeros((8, 8, 1), np.uint8)] * 3 for _ in range(4)]
    plain = Image.open(save_grid(panels, tmp_path / "plain.png", scale=4)).size
    titled = Image.open(save_grid(panels, tmp_path / "titled.png", scale=4, titles=PanelTitles(columns=("a", "b", "c")))).size
    rows = Image.open(save_grid(panels, tmp_path / "rows.png", scale=4, titles=PanelTitles(rows=("input", "masked")))).size
    assert titled[0] == plain[0] and titled[1] > plain[1]  # a band on top
    assert rows[1] == plain[1] and rows[0] > plain[0]  # a band on the left
    header = np.asarray(Image.open(tmp_path / "titled.png").convert("L"))[: titled[1] - plain[1]]
    assert header.min() < 128  # text was drawn
    with pytest.raises(ValueError, match="2 column titles \\(a, b\\) for a grid of 3 columns"):
        save_grid(panels, tmp_path / "bad.png", titles=PanelTitles(columns=("a", "b")))
    with pytest.raises(ValueError, match="3 row labels .* do not repeat evenly over 4 rows"):
        save_grid(panels, tmp_path / "bad.png", titles=PanelTitles(rows=("a", "b", "c")))


def test_core_panel_titles_follow_whether_the_target_turns_back_into_pixels():
    from maekit.eval.visualize import RECONSTRUCTION_TITLES
    from tests.conftest import tiny_mae

    model = tiny_mae()
    assert tuple(model.panel_titles().columns) == RECONSTRUCTION_TITLES
    rows = model.panels(torch.rand(2, 3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    assert len(rows[0]) == len(RECONSTRUCTION_TITLES)


def test_panel_titles_and_panels_agree_for_a_target_without_pixels():
    """A target with no inverse to pixels (a teacher's features, HOG): input | masked, both ways."""
    from maekit.nn.base import Target
    from maekit.nn.targets import NamedTargets, NormPixelTarget
    from tests.conftest import tiny_mae

    class NoPixels(NormPixelTarget):
        to_values = Target.to_values

    model = tiny_mae()
    model.target = NoPixels()
    assert tuple(model.panel_titles().columns) == ("input", "masked")
    assert len(model.panels(torch.rand(2, 3, 32, 32), (0.5,) * 3, (0.5,) * 3)[0]) == 2
    model.target = NamedTargets({"a": NormPixelTarget(), "b": NoPixels()})  # no picture part named
    assert len(model.panel_titles().columns) == 2


def test_loss_curve_png_draws_each_term_once_and_the_history_reader_skips_lr(tmp_path):
    from mmengine.logging import MessageHub

    from maekit.engine.hooks import loss_history
    from maekit.eval.plots import loss_curve_png

    hub = MessageHub.get_instance("loss_history_test")
    for i in range(5):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
        hub.update_scalar("train/mse", 1.0 / (i + 1))
        hub.update_scalar("train/lr", 0.1)
        # iteration 3 waited 2.9 s more for data (mmengine advancing the loader after a resume)
        hub.update_scalar("train/time", 3.4 if i == 2 else 0.5)
        hub.update_scalar("train/data_time", 3.0 if i == 2 else 0.1)
        hub.update_scalar("train/teacher_momentum", 0.99)
        if i >= 3:  # a term logged from iteration 4 on (a scheduled loss weight)
            hub.update_scalar("train/late", 2.0)
    history = loss_history(hub, 5)
    assert history["iterations"] == [1, 2, 3, 4, 5] and set(history["terms"]) == {"loss", "mse", "late"}  # no time
    assert history["terms"]["loss"] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert np.isnan(history["terms"]["late"][:3]).all() and history["terms"]["late"][3:] == [2.0, 2.0]
    assert history["train_seconds"] == pytest.approx(2.5)  # 0.4 s of compute + the median 0.1 s wait, 5 times
    path = loss_curve_png(history["iterations"], history["terms"], tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smooth_is_the_trailing_mean_of_the_finite_values():
    from maekit.eval.plots import smooth

    values = np.array([np.nan, 1.0, 3.0, np.nan, 5.0, 7.0])
    expected = [np.nan, 1.0, 2.0, 2.0, 4.0, 6.0]  # windows of 3: the finite values among the last three
    assert np.allclose(smooth(values, 3), expected, equal_nan=True)
    assert np.allclose(smooth(values, 1), values, equal_nan=True)
