"""``maekit compare``: which masked autoencoder learns the best features of my data for the budget I
have? Pre-trains several methods (configs) on the same images with the same budget and seeds,
evaluates every encoder with the same frozen protocol, and writes a ranked table and plots.

One protocol for every method:

- **data**: the compare data replaces each config's training and probe datasets, at the image size
  and channel count the config trains at (its own ``data.dataset``'s ``size`` / ``channels``);
  each config keeps its own augmentation and normalisation.
- **budget**: the same iterations × batch for every method (``iters``, ``batch``), or the same
  wall-clock minutes (``minutes``: each method gets the iterations that fit, from its speed measured
  on this machine over a few steps before any training); warm-up a tenth of the run at most.
- **evaluation**: a logistic-regression probe and k-NN (k = 20) on frozen features of the data's
  train split (optionally a seeded stratified share) tested on its test split — each method's
  headline features (its config's ``probe.pools[0]``, default mean-pooled tokens, and
  ``probe.layer``); at ``eval_points`` evenly spaced budgets plus 0 (the same seed's random init);
  optionally fine-tuning (MAE's recipe, the same schedule for all) of the final encoder.

Everything a run produces lives in ``out/runs/<method>/seed<k>/``; a killed compare started again
with the same arguments resumes training from the last checkpoint and keeps every finished
evaluation. Methods whose data is another modality, or whose model cannot take the compare data,
are refused before anything trains.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from maekit.io.checkpoint import write_bytes, write_json

__all__ = ["CompareSettings", "CompareProgress", "DATA_PRESETS", "compare", "data_source", "data_specs", "plan_method", "MethodPlan",
           "summarise"]

# the data a compare can run on: name → (train split, test split, description)
DATA_PRESETS: dict[str, tuple[dict, dict, str]] = {
    "fashion_mnist": (dict(type="idx_images", split="train"), dict(type="idx_images", split="test"),
                      "Fashion-MNIST (Debian's dataset-fashion-mnist: 60k/10k real 28×28 product photos, 10 classes)"),
    "digits": (dict(type="digits", split="train"), dict(type="digits", split="test"),
               "scikit-learn's digits (1437/360 real 8×8 scans, 10 classes)"),
}
KNN_K = 20
CALIBRATION_STEPS = 4


@dataclass
class CompareSettings:
    """What a compare measures; a resumed compare must be started with the same settings (the
    configs and seeds only choose which runs exist, so they may grow)."""

    configs: list[str]
    data: str = "fashion_mnist"
    iters: int | None = None
    batch: int | None = None
    minutes: float | None = None
    seeds: int = 1
    eval_points: int = 1
    probe_train_size: int | None = None
    probe_test_size: int | None = None
    finetune: bool = False
    finetune_iters: int = 300
    device: str | None = "cpu"

    def fixed(self) -> dict[str, Any]:
        """The settings every run of one compare shares."""
        return {k: v for k, v in asdict(self).items() if k not in ("configs", "seeds")}


@dataclass
class MethodPlan:
    """One method of a compare: its name, its config adapted to the compare, its headline features."""

    name: str
    config: str
    cfg: Any
    pool: str
    layer: int | None
    iters: int
    batch: int
    seconds_per_iter: float | None = None
    fingerprint: str = ""  # of the adapted config: a resumed compare must run the same one


def data_source(data: str) -> tuple[dict, dict, str]:
    """The train and test splits of ``data`` (a preset name, :data:`DATA_PRESETS`, or a folder of
    MNIST-family IDX files) as dataset configs, and a description."""
    if data in DATA_PRESETS:
        return DATA_PRESETS[data]
    if Path(data).is_dir():
        return (dict(type="idx_images", root=str(data), split="train"), dict(type="idx_images", root=str(data), split="test"),
                f"the IDX files in {data}")
    raise ValueError(f"--data {data}: neither a preset ({', '.join(DATA_PRESETS)}) nor a folder of MNIST-family IDX "
                     f"files (train-images-idx3-ubyte[.gz] ...)")


def data_specs(data: str, size: int, channels: int, train_limit: int | None = None,
               test_limit: int | None = None) -> tuple[dict, dict, dict]:
    """The compare data as dataset configs at ``size`` × ``channels``: pre-training set (the whole
    train split), probe train set and probe test set (see :func:`data_source`)."""
    train, test, _ = data_source(data)
    shape = dict(size=size, channels=channels)
    limits = {"probe-train-size": train_limit, "probe-test-size": test_limit}
    if train["type"] != "idx_images" and any(v is not None for v in limits.values()):
        raise ValueError(f"--{' / --'.join(k for k, v in limits.items() if v is not None)} keep a share of IDX data; "
                         f"the {data} set is small enough to probe whole")
    probe_train = {**train, **shape, **({"limit": train_limit} if train_limit else {})}
    probe_test = {**test, **shape, **({"limit": test_limit} if test_limit else {})}
    return {**train, **shape}, probe_train, probe_test


def _image_shape(cfg: Any, name: str) -> tuple[int, int]:
    """The (size, channels) a config trains at: its dataset's, else its model's."""
    dataset, model = dict(cfg.get("data", {}).get("dataset") or {}), dict(cfg.get("model") or {})
    size, channels = dataset.get("size", model.get("img_size")), dataset.get("channels", model.get("in_chans"))
    if not isinstance(size, int) or not isinstance(channels, int):
        raise ValueError(f"config {name}: cannot tell its square image size and channel count (data.dataset size / "
                         f"channels, or model img_size / in_chans); compare takes image methods")
    return size, channels


def _modality(cfg: Any) -> tuple[str | None, str]:
    """The modality the config's training dataset declares (its class's ``modality``), and its type."""
    from maekit.registry import registry_for

    kind = (cfg.get("data", {}).get("dataset") or {}).get("type", "")
    try:
        dataset_class = registry_for("dataset").entry(kind).load()
    except KeyError:
        return None, kind
    return getattr(dataset_class, "modality", None), kind


def resolve_config(name: str) -> str:
    """A config file or name as given, or the config a demo name runs (``maekit demo --list``:
    ``mae`` → ``mae_demo_digits``); a demo that is a program of its own has no one config."""
    from maekit.configs import available_configs
    from maekit.plugins import demos

    if Path(name).is_file() or name in available_configs():
        return name
    target = demos().get(name)
    if target is None:
        return name  # load_config says what is known
    if ":" in target:
        raise ValueError(f"{name} is a demo of its own ({target}), not one config; give the config of the method "
                         f"(maekit configs lists them)")
    return target


def plan_method(config: str, settings: CompareSettings) -> MethodPlan:
    """Load ``config``, refuse it when its data is another modality, and adapt it to the compare:
    the compare data at its size, the shared budget, checkpoints at the evaluation points."""
    from maekit.engine import load_config

    config = resolve_config(config)
    cfg = load_config(config)
    name = Path(config).stem
    modality, kind = _modality(cfg)
    if modality is not None and modality != "image":
        raise ValueError(f"config {config} trains on {modality} data (dataset '{kind}'); the compare data is images — "
                         f"compare methods of one modality")
    size, channels = _image_shape(cfg, config)
    train, probe_train, probe_test = data_specs(settings.data, size, channels, settings.probe_train_size,
                                                   settings.probe_test_size)
    cfg.data.dataset = train
    probe = dict(cfg.get("probe") or {})
    cfg.probe = {**probe, "train": probe_train, "test": probe_test}
    batch = int(settings.batch or cfg.data.get("batch_size", 64))
    cfg.data.batch_size = batch
    cfg.log_level = "WARNING"  # the progress bars say how far it is; loss_history.json has every value
    iters = int(settings.iters or cfg.schedule.max_iters)
    return MethodPlan(name=name, config=config, cfg=cfg, pool=tuple(probe.get("pools", ("mean",)))[0],
                      layer=probe.get("layer"), iters=iters, batch=batch)


def set_budget(plan: MethodPlan, iters: int, eval_points: int) -> None:
    """The run's length, warm-up (the config's, at most a tenth of the run) and checkpoints at
    ``eval_points`` evenly spaced iterations, every one kept (each is evaluated)."""
    plan.iters = max(int(iters), eval_points)
    schedule = plan.cfg.schedule
    schedule.max_iters = plan.iters
    schedule.warmup_iters = min(int(schedule.get("warmup_iters", 0)), plan.iters // 10)
    plan.cfg.checkpoint_interval = resume_interval(checkpoint_interval(plan.iters, eval_points))
    plan.cfg.max_keep_checkpoints = -1  # keep all: the ones only for resuming are removed once probed


def checkpoint_interval(iters: int, eval_points: int) -> int:
    """The interval whose multiples, with the last iteration, are at most ``eval_points`` checkpoints."""
    return -(-iters // eval_points)


def resume_interval(evaluation_interval: int) -> int:
    """Checkpoints between the evaluation points too (a half, third or quarter of their interval,
    whichever divides it, so the evaluation points stay checkpoints): a killed run resumes close
    to where it was even with one evaluation point."""
    for parts in (4, 3, 2):
        if evaluation_interval % parts == 0:
            return evaluation_interval // parts
    return evaluation_interval


def budgets_of(plan: MethodPlan, eval_points: int) -> list[int]:
    """The iterations evaluated: 0 (random init) and every checkpoint the run writes (multiples of
    the interval and the last iteration, as mmengine's checkpoint hook with ``save_last``)."""
    interval = checkpoint_interval(plan.iters, eval_points)
    points = list(range(interval, plan.iters + 1, interval))
    return [0] + points + ([plan.iters] if points[-1] != plan.iters else [])


def check_and_time(plan: MethodPlan, seed: int, device: str | None, steps: int = 0) -> float | None:
    """A training step of the adapted config on a batch of the compare data, before anything trains:
    an error means the method cannot take this data (refused with the reason). With ``steps``,
    times that many more optimiser steps and returns seconds per iteration."""
    from torch.utils.data import DataLoader, Subset

    from maekit.engine.model import RunnerModel
    from maekit.nn.tokenizers import fit_tokenizers, tokenizers_in
    from maekit.registry import build

    cfg = plan.cfg
    dataset = build("dataset", dict(type="augmented_view", dataset=cfg.data.dataset, transform=cfg.data.get("transform"),
                                    seed=seed))
    target = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    try:
        model = RunnerModel(cfg.model, seed=seed).to(target)
        batch_size = min(plan.batch, len(dataset))
        loader = DataLoader(Subset(dataset, range(min(len(dataset), batch_size * (steps + 1)))), batch_size=batch_size,
                            drop_last=True)  # only whole batches are timed
        if dict(tokenizers_in(model.model)):
            fit_tokenizers(model.model, loader, seed=seed)
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-6)
        started = None
        for step, batch in enumerate(loader):
            batch = {k: v.to(target) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            loss = model(**batch, mode="loss")["loss"]
            loss.backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            if target.type == "cuda":
                torch.cuda.synchronize()
            if step == 0:  # the first step warms up (allocations, lazy inits): timed from the second
                started = time.perf_counter()
        timed = len(loader) - 1
    except Exception as error:  # noqa: BLE001 — any failure here is the method refusing the data
        raise ValueError(f"config {plan.config} cannot train on the compare data ({plan.cfg.data.dataset['type']} at "
                         f"{_image_shape(cfg, plan.config)[0]} px): {type(error).__name__}: {error}") from None
    if not steps:
        return None
    if started is None or timed < 1:
        raise ValueError(f"--minutes: config {plan.config}'s speed is timed over {steps} batches after a first one, "
                         f"and the compare data has {len(dataset)} samples (batches of {batch_size}); give --iters instead")
    return (time.perf_counter() - started) / timed


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def pretrain_run(plan: MethodPlan, seed: int, work: Path, device: str | None, hooks: Sequence[Any] = ()) -> None:
    """Pre-train one (method, seed) into ``work``: resumed from its last checkpoint when a killed
    compare left one, nothing when the final checkpoint is already there."""
    from maekit.engine import train

    if (work / f"iter_{plan.iters}.pth").is_file():
        return
    resume = "auto" if (work / "last_checkpoint").is_file() else None
    train(plan.cfg.copy(), work, device=device, seed=seed, resume=resume, hooks=list(hooks))


def evaluate_budget(plan: MethodPlan, seed: int, work: Path, budget: int, probe_sets: tuple[Any, Any]) -> dict[str, float]:
    """Linear probe and k-NN of the encoder after ``budget`` iterations (0: the same seed's random
    init, with the trained run's fitted tokenizers — the vocabulary is the data's, not learned)."""
    from maekit.data.views import evaluation_transform
    from maekit.eval.probe import load_trained_model, probe_pools
    from maekit.nn.tokenizers import share_fitted_tokenizers

    torch.manual_seed(seed)
    model = load_trained_model(plan.cfg.model, work / f"iter_{budget}.pth" if budget else None)
    if budget == 0:
        share_fitted_tokenizers(load_trained_model(plan.cfg.model, work / f"iter_{plan.iters}.pth"), model)
    train_set, test_set = probe_sets
    transform = evaluation_transform(train_set, plan.cfg.data.get("transform"), plan.cfg.get("eval_transform"))
    scores = probe_pools(model, train_set, test_set, transform, (plan.pool,), k=KNN_K, layer=plan.layer)[plan.pool]
    return {"linear_probe": scores["linear_probe_accuracy"], "knn": scores["knn_accuracy"]}


def with_finetune_section(plan: MethodPlan, settings: CompareSettings, num_classes: int) -> Any:
    """The method's config with compare's fine-tuning section: MAE's recipe (layer-wise lr decay
    0.75, blr 2e-3, AdamW β=(0.9, 0.999), weight decay 0.05, drop-path 0.1, warm-up a tenth), the
    same schedule for every method, on the probe's training share; the method's own classifier
    head when its config names one."""
    cfg = plan.cfg.copy()
    own = dict(cfg.get("finetune") or {})
    size, _ = _image_shape(cfg, plan.config)
    augment = dict(cfg.data.get("transform") or {})
    transform = ({**augment, "scale": (0.6, 1.0)} if augment.get("type") == "mae_augment"
                 else dict(type="mae_augment", size=size, scale=(0.6, 1.0), flip=False))
    iters = settings.finetune_iters
    cfg.finetune = {
        **{k: own[k] for k in ("classifier", "classifier_options", "eval_transform") if k in own},
        "num_classes": num_classes, "drop_path_rate": 0.1, "checkpoint_interval": max(1, iters // 4),
        "data": dict(dataset=cfg.probe.train, transform=transform, batch_size=plan.batch),
        "test": cfg.probe.test,
        "schedule": dict(max_iters=iters, warmup_iters=iters // 10, blr=2e-3, weight_decay=0.05, betas=(0.9, 0.999),
                         layer_decay=0.75),
    }
    return cfg


def check_finetunable(plan: MethodPlan, settings: CompareSettings) -> None:
    """Build the fine-tuning classifier once before anything trains: a method whose encoder the
    classifier cannot take (iGPT's decoder-only transformer) is refused with the reason."""
    from maekit.eval.finetune import finetune_config
    from maekit.registry import build

    try:
        build("model", finetune_config(with_finetune_section(plan, settings, 2), None).model)
    except Exception as error:  # noqa: BLE001 — any failure here is the classifier refusing the method
        raise ValueError(f"--finetune: config {plan.config} cannot be fine-tuned by compare's classifier "
                         f"({type(error).__name__}: {error}); compare it without --finetune") from None


def finetune_run(plan: MethodPlan, seed: int, run_dir: Path, settings: CompareSettings, num_classes: int) -> dict[str, Any]:
    """Fine-tune the final encoder (:func:`with_finetune_section`), resumed when a killed compare
    left a checkpoint; top-1 accuracy on the data's test split."""
    from maekit.eval.finetune import run_finetune

    work = run_dir / "finetune"
    metrics = run_finetune(with_finetune_section(plan, settings, num_classes), run_dir / "work" / f"iter_{plan.iters}.pth",
                           work, device=settings.device, seed=seed,
                           resume="auto" if (work / "last_checkpoint").is_file() else None)
    return {"top1": metrics["top1_accuracy"], "seconds": metrics["seconds"]}


def run_method_seed(plan: MethodPlan, seed: int, run_dir: Path, settings: CompareSettings, probe_sets: tuple[Any, Any],
                    hooks: Sequence[Any] = (), report: Callable[[str], None] = lambda stage: None) -> dict[str, Any]:
    """One (method, seed): pre-train, evaluate every budget, optionally fine-tune; each finished
    part is written at once (``result.json`` last), so a killed compare redoes only what was cut."""
    result = _read_json(run_dir / "result.json")
    if result is not None:
        return result
    work = run_dir / "work"
    if not (run_dir / "pretrain.json").is_file():
        report("pre-training")
        started = time.perf_counter()
        resumed = (work / "last_checkpoint").is_file()
        pretrain_run(plan, seed, work, settings.device, hooks)
        write_json(run_dir / "pretrain.json", {"seconds": round(time.perf_counter() - started, 1), "resumed": resumed})
    history = _read_json(work / "loss_history.json") or {"iterations": [], "terms": {}}
    evaluations = {}
    for budget in budgets_of(plan, settings.eval_points):
        path = run_dir / f"eval_{budget}.json"
        if not path.is_file():
            report(f"probing at {budget} iterations")
            write_json(path, evaluate_budget(plan, seed, work, budget, probe_sets))
        evaluations[str(budget)] = _read_json(path)
    for checkpoint in work.glob("iter_*.pth"):  # those written only to resume from: not kept
        if int(checkpoint.stem[len("iter_"):]) not in budgets_of(plan, settings.eval_points):
            checkpoint.unlink()
    finetuned = None
    if settings.finetune:
        path = run_dir / "finetune.json"
        if not path.is_file():
            report("fine-tuning")
            write_json(path, finetune_run(plan, seed, run_dir, settings, len(probe_sets[0].classes)))
        finetuned = _read_json(path)
    loss = history["terms"].get("loss", [])
    seconds = history.get("train_seconds")  # every iteration's time, those before a resume too
    result = {"method": plan.name, "config": plan.config, "seed": seed, "iterations": plan.iters, "batch": plan.batch,
              "features": plan.pool + ("" if plan.layer is None else f" of block {plan.layer}"),
              "final_loss": float(np.mean(loss[-max(1, len(loss) // 20):])) if loss else None,
              "measured_seconds_per_iteration": plan.seconds_per_iter,  # with --minutes: what set the iterations
              "pretrain_seconds": round(seconds, 1) if seconds is not None else _read_json(run_dir / "pretrain.json")["seconds"],
              "resumed": _read_json(run_dir / "pretrain.json")["resumed"], "evaluations": evaluations, "finetune": finetuned,
              "loss_curve": {"iterations": history["iterations"], "loss": loss}}
    write_json(run_dir / "result.json", result)
    return result


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1: a few seeds' spread is not understated)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per method, mean and standard deviation over seeds of the final budget's probe and k-NN
    accuracy (and fine-tuning, loss, time), ranked by the linear probe; ``within_spread`` marks a
    method whose mean lies within one standard deviation (its own or the leader's) of the leader."""
    rows = []
    for name, runs in results.items():
        final = [run["evaluations"][str(run["iterations"])] for run in runs]
        untrained = [run["evaluations"]["0"] for run in runs]
        row = {"method": name, "config": runs[0]["config"], "seeds": [run["seed"] for run in runs],
               "iterations": runs[0]["iterations"], "batch": runs[0]["batch"], "features": runs[0]["features"]}
        for key in ("linear_probe", "knn"):
            row[key], row[f"{key}_std"] = _mean_std([e[key] for e in final])
            row[f"{key}_random_init"], _ = _mean_std([e[key] for e in untrained])
        if all(run["finetune"] for run in runs):
            row["finetune"], row["finetune_std"] = _mean_std([run["finetune"]["top1"] for run in runs])
        losses = [run["final_loss"] for run in runs if run["final_loss"] is not None]
        row["final_loss"] = float(np.mean(losses)) if losses else None
        row["pretrain_seconds"] = float(np.mean([run["pretrain_seconds"] for run in runs]))
        rows.append(row)
    rows.sort(key=lambda row: -row["linear_probe"])
    if rows:
        leader = rows[0]
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
            row["within_spread"] = rank > 1 and leader["linear_probe"] - row["linear_probe"] <= max(
                leader["linear_probe_std"], row["linear_probe_std"])
    return rows


def markdown_table(rows: list[dict[str, Any]], finetune: bool) -> str:
    """The ranked table: accuracy as mean ± std over seeds, random init beside it."""
    def cell(row: dict, key: str) -> str:
        return f"{row[key]:.3f} ± {row[key + '_std']:.3f}" if len(row["seeds"]) > 1 else f"{row[key]:.3f}"

    head = ["rank", "method", "linear probe", "(random init)", "k-NN", "(random init)"] + (["fine-tune"] if finetune else []) \
        + ["final loss", "pre-train s", "iters × batch", "features"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{row['rank']}" + (" ≈" if row["within_spread"] else ""), row["method"], cell(row, "linear_probe"),
                 f"{row['linear_probe_random_init']:.3f}", cell(row, "knn"), f"{row['knn_random_init']:.3f}"]
        if finetune:
            cells.append(cell(row, "finetune") if "finetune" in row else "—")
        cells += ["—" if row["final_loss"] is None else f"{row['final_loss']:.4f}", f"{row['pretrain_seconds']:.0f}",
                  f"{row['iterations']} × {row['batch']}", row["features"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def machine_line(device: str | None) -> str:
    """The machine the figures were measured on (CPU model, threads, native bf16, GPU)."""
    from maekit.engine.train import cpu_has_native_bf16, cpu_name

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else "no GPU used"
    return (f"{cpu}, {torch.get_num_threads()} threads, {'native' if cpu_has_native_bf16() else 'emulated'} bf16 "
            f"(runs in fp32), {gpu}; torch {torch.__version__}")


def write_report(out: Path, settings: CompareSettings, plans: dict[str, MethodPlan], results: dict[str, list[dict]],
                 description: str, seconds: float) -> dict[str, Any]:
    """compare.json, compare.md and the plots (loss curves on one axis; probe and k-NN accuracy
    against the budget, mean ± std over seeds)."""
    from maekit.eval.plots import accuracy_vs_budget_png, curves_png

    rows = summarise(results)
    curves = {name: [(run["loss_curve"]["iterations"], run["loss_curve"]["loss"]) for run in runs]
              for name, runs in results.items()}
    some = next(iter(plans.values()))
    budget = (f"{settings.minutes:g} min of pre-training each (iterations from the speed measured here)" if settings.minutes
              else f"{some.iters} iterations × batch {some.batch} each")
    pictures = {"loss_curves": curves_png(curves, out / "loss_curves.png", f"pre-training loss on {settings.data}"
                                          " (each method's own loss)")}
    for key, label in (("linear_probe", "linear probe accuracy"), ("knn", f"{KNN_K}-NN accuracy")):
        points = {name: {b: [run["evaluations"][str(b)][key] for run in runs if str(b) in run["evaluations"]]
                         for b in map(int, runs[0]["evaluations"])} for name, runs in results.items()}
        pictures[key] = accuracy_vs_budget_png(points, out / f"{key}_vs_budget.png",
                                               f"{label} on {settings.data} ({budget})", ylabel=label)
    machine = machine_line(settings.device)
    pretraining = sum(run["pretrain_seconds"] for runs in results.values() for run in runs)
    report = {"settings": asdict(settings), "data": description, "machine": machine, "seconds": round(seconds, 1),
              "ranking": rows, "runs": {name: runs for name, runs in results.items()},
              "pictures": {k: str(v) for k, v in pictures.items()}}
    write_json(out / "compare.json", report)
    seeds = ", ".join(str(s) for s in range(settings.seeds))
    text = (f"# maekit compare on {settings.data}\n\n{description}. Budget: {budget}; seeds {seeds}; "
            "frozen features probed on the train split"
            + (f" (a stratified {settings.probe_train_size})" if settings.probe_train_size else "")
            + ", tested on the test split" + (f" (a stratified {settings.probe_test_size})" if settings.probe_test_size else "")
            + f". Measured on {machine}; {pretraining / 60:.1f} min of pre-training in all (this invocation: "
            f"{seconds / 60:.1f} min).\n\n" + markdown_table(rows, settings.finetune)
            + "\n≈: within one standard deviation of the leader. Random init: the same architecture and seed, untrained.\n"
            + "".join(f"\n![{k}]({Path(v).name})" for k, v in pictures.items()) + "\n")
    write_bytes(out / "compare.md", text.encode())
    return report


def check_settings(out: Path, settings: CompareSettings) -> None:
    """A compare resumed in ``out`` must measure the same thing: refuse other fixed settings."""
    for key in ("seeds", "eval_points", "iters", "batch", "probe_train_size", "probe_test_size", "finetune_iters"):
        value = getattr(settings, key)
        if value is not None and int(value) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    if settings.iters is None and settings.minutes is None:
        raise ValueError("give the budget every method gets: --iters N (iterations × batch) or --minutes M (wall-clock)")
    if settings.iters is not None and settings.iters < settings.eval_points:
        raise ValueError(f"--iters {settings.iters} is fewer than --eval-points {settings.eval_points}")
    if settings.minutes is not None and settings.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {settings.minutes}")
    if settings.minutes is not None and settings.iters is not None:
        raise ValueError("give the budget as --iters or as --minutes, not both")
    saved = _read_json(out / "compare_settings.json")
    now = json.loads(json.dumps(settings.fixed()))  # as the file holds it (tuples as lists)
    if saved is not None and saved != now:
        changed = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
        raise ValueError(f"{out} holds a compare with other settings ({', '.join(f'{k}: {a!r} then, {b!r} now' for k, (a, b) in changed.items())}); "
                         f"resume it with the same settings or give another --out")


def compare(settings: CompareSettings, out: str | Path, log: Callable[[str], None] = print,
            progress: Any = None) -> dict[str, Any]:
    """Run (or resume) a compare into ``out``; returns the report (also ``compare.json``).
    ``progress``: a :class:`CompareProgress` (or anything with its methods) to show it."""
    out = Path(out)
    started = time.perf_counter()
    check_settings(out, settings)
    plans: dict[str, MethodPlan] = {}
    for config in settings.configs:  # every refusal before anything trains
        plan = plan_method(config, settings)
        if plan.name in plans:
            raise ValueError(f"config {plan.name} given twice ({plans[plan.name].config} and {config}): each method is one config")
        fingerprint = hashlib.sha1(json.dumps(plan.cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        saved = _read_json(out / "runs" / plan.name / "plan.json")
        if saved is not None and saved["fingerprint"] != fingerprint:
            raise ValueError(f"config {plan.config} has changed since this compare started in {out}; its runs there "
                             f"measured the old one — give another --out")
        seconds = check_and_time(plan, 0, settings.device, CALIBRATION_STEPS if settings.minutes and saved is None else 0)
        if settings.finetune:
            check_finetunable(plan, settings)
        iters = plan.iters
        if saved is not None:  # a resumed compare keeps each method's budget, measured speed included
            iters, plan.seconds_per_iter = saved["iterations"], saved["seconds_per_iteration"]
        elif settings.minutes is not None and seconds is not None:
            plan.seconds_per_iter = seconds
            iters = max(settings.eval_points, int(settings.minutes * 60 / seconds))
        set_budget(plan, iters, settings.eval_points)
        plan.fingerprint = fingerprint
        plans[plan.name] = plan
        log(f"{plan.name}: {plan.iters} iterations × batch {plan.batch}" + (
            f" ({plan.seconds_per_iter * 1000:.0f} ms per iteration measured here)" if plan.seconds_per_iter else ""))
    batches = {name: plan.batch for name, plan in plans.items()}
    if len(set(batches.values())) > 1:
        raise ValueError(f"the configs train with different batch sizes ({', '.join(f'{n}: {b}' for n, b in batches.items())}): "
                         f"give --batch for the same budget")
    probe_sets = build_probe_sets(plans)
    write_json(out / "compare_settings.json", settings.fixed())
    for name, plan in plans.items():
        write_json(out / "runs" / name / "plan.json", {"fingerprint": plan.fingerprint, "iterations": plan.iters,
                                                         "batch": plan.batch, "seconds_per_iteration": plan.seconds_per_iter})
    description = data_source(settings.data)[2]
    results: dict[str, list[dict]] = {name: [] for name in plans}
    runs = [(name, seed) for seed in range(settings.seeds) for name in plans]
    if progress is not None:
        progress.start(len(runs))
    try:
        _run_all(runs, plans, probe_sets, settings, out, results, log, progress)
    finally:
        if progress is not None:
            progress.stop()
    return write_report(out, settings, plans, results, description, time.perf_counter() - started)


def build_probe_sets(plans: dict[str, MethodPlan]) -> dict[str, tuple[Any, Any]]:
    """Each method's probe (train, test) datasets, built once per image size, before anything is
    written: a probe size the data cannot give is an error naming the option."""
    from maekit.registry import build

    built: dict[str, tuple[Any, Any]] = {}
    by_method = {}
    for name, plan in plans.items():
        key = json.dumps([plan.cfg.probe.train, plan.cfg.probe.test], sort_keys=True, default=str)
        if key not in built:
            try:
                built[key] = (build("dataset", plan.cfg.probe.train), build("dataset", plan.cfg.probe.test))
            except ValueError as error:
                raise ValueError(f"the probe's data (--probe-train-size / --probe-test-size): {error}") from None
        by_method[name] = built[key]
    return by_method


def _run_all(runs: list[tuple[str, int]], plans: dict[str, MethodPlan], probe_sets: dict[str, tuple[Any, Any]],
             settings: CompareSettings, out: Path, results: dict[str, list[dict]], log: Callable[[str], None],
             progress: Any) -> None:
    """Every (method, seed) run in turn."""
    for name, seed in runs:
        plan = plans[name]
        hooks = [] if progress is None else [progress.training_hook(f"{name} seed {seed}", plan.iters)]
        report = (lambda stage: None) if progress is None else progress.stage_reporter(f"{name} seed {seed}")
        result = run_method_seed(plan, seed, out / "runs" / name / f"seed{seed}", settings, probe_sets[name], hooks, report)
        results[name].append(result)
        final = result["evaluations"][str(result["iterations"])]
        log(f"{name} seed {seed}: linear probe {final['linear_probe']:.3f}, k-NN {final['knn']:.3f} "
            f"(random init {result['evaluations']['0']['linear_probe']:.3f}, {result['evaluations']['0']['knn']:.3f})")
        if progress is not None:
            progress.run_done()


class CompareProgress:
    """The whole compare as rich progress bars: one over the (method, seed) runs, saying what runs
    now, and one per pre-training over its iterations (a resumed run starts where it was)."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TimeRemainingColumn(), console=console)
        self.overall: Any = None

    def start(self, runs: int) -> None:
        self.bars.start()
        self.overall = self.bars.add_task("compare", total=runs)

    def stage_reporter(self, label: str) -> Callable[[str], None]:
        return lambda stage: self.bars.update(self.overall, description=f"compare: {label}, {stage}")

    def training_hook(self, label: str, iters: int) -> Any:
        from mmengine.hooks import Hook

        bars = self.bars

        class TrainingBar(Hook):
            def before_train(self, runner: Any) -> None:
                self.task = bars.add_task(f"  {label}", total=iters, completed=runner.iter)

            def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
                bars.update(self.task, completed=runner.iter + 1)

            def after_train(self, runner: Any) -> None:
                bars.remove_task(self.task)

        return TrainingBar()

    def run_done(self) -> None:
        self.bars.advance(self.overall)

    def stop(self) -> None:
        self.bars.stop()
