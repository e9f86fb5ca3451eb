"""Build a model from a config, and save/load training checkpoints.

A checkpoint is a directory: `model.safetensors` (the weights), `config.json` (the full MoonConfig the weights
belong to, with `init_from` cleared since the weights already hold the pretrained towers) and, for resuming,
`train_state.pt` (optimizer, scheduler, epoch, step). A training output directory holds the checkpoints of the
last `train.keep_last` epochs, `epoch-0019`, `epoch-0020`, ..., and `best/`, the weights of the epoch that scored
best on the held-out products (no train_state.pt: it is for evaluation, not for resuming); wherever a checkpoint
is expected, the output directory may be given and its latest epoch is used (`<output>/best` for the best).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from model.config import MoonConfig, from_dict
from model.model import MoonModel
from model.pretrained import load_pretrained, resolve_pretrained

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "train_state.pt"
EPOCH_DIR = re.compile(r"epoch-(\d+)$")
BEST_DIR = "best"


def build_model(cfg: MoonConfig, seed: int = 0) -> tuple[MoonModel, MoonConfig]:
    """A freshly initialised model (seeded), with its towers loaded from `init_from` checkpoints if set.
    Returns the model and the config it was built from (checkpoint dimensions filled in)."""
    pretrained = cfg.vision.init_from or cfg.text.init_from
    if pretrained:
        cfg = resolve_pretrained(cfg)
    torch.manual_seed(seed)
    model = MoonModel(cfg)
    if pretrained:
        load_pretrained(model, cfg)
        cfg = dataclasses.replace(
            cfg,
            vision=dataclasses.replace(cfg.vision, init_from=None),
            text=dataclasses.replace(cfg.text, init_from=None),
        )
        model.config = cfg
    return model, cfg


def save_checkpoint(directory: str | Path, model: MoonModel, cfg: MoonConfig, train_state: dict | None = None) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / MODEL_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(cfg.to_json())
    if train_state is not None:
        torch.save(train_state, directory / STATE_FILE)
    return directory


def save_best(output_dir: str | Path, model: MoonModel, cfg: MoonConfig, metrics: dict) -> Path:
    """Replace `<output_dir>/best` with these weights and metrics; a reader never sees a half-written one."""
    output_dir = Path(output_dir)
    target = output_dir / BEST_DIR
    staging = Path(tempfile.mkdtemp(prefix=".best-", dir=output_dir))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the epoch folders beside it are not
    save_checkpoint(staging, model, cfg)
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    old = None
    if target.exists():
        old = output_dir / f".best-old-{staging.name}"
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_config_from(directory: str | Path) -> MoonConfig:
    return from_dict(json.loads((resolve_checkpoint(directory) / CONFIG_FILE).read_text()))


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[MoonModel, MoonConfig]:
    from safetensors.torch import load_file

    directory = resolve_checkpoint(directory)
    cfg = load_config_from(directory)
    model = MoonModel(cfg)
    model.load_state_dict(load_file(str(directory / MODEL_FILE)))
    return model.to(device).eval(), cfg


def load_train_state(directory: str | Path) -> dict:
    return torch.load(resolve_checkpoint(directory) / STATE_FILE, map_location="cpu", weights_only=False)


def epoch_dir_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest `epoch-NNNN` directory under output_dir that holds weights, or None."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), p) for p in output_dir.iterdir()
        if (m := EPOCH_DIR.match(p.name)) and (p / MODEL_FILE).exists()
    ]
    return max(found)[1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if (path / MODEL_FILE).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: no {MODEL_FILE}, and no epoch-NNNN checkpoint below it")
    return latest
