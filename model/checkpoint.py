"""Build a model from a config, and save/load training checkpoints.

A checkpoint is a directory: `model.safetensors` (the weights), `config.json` (the full MoonConfig the weights
belong to, with `init_from` cleared since the weights already hold the pretrained towers) and, for resuming,
`train_state.pt` (optimizer, scheduler, epoch, step). A training output directory holds the checkpoints of the
last `train.keep_last` epochs, `epoch-0019`, `epoch-0020`, ..., and `best/`, the weights of the epoch that scored
best on the held-out products (no train_state.pt: it is for evaluation, not for resuming); wherever a checkpoint
is expected, the output directory may be given and its latest epoch is used (`<output>/best` for the best).

A damaged file (truncated weights, a config.json that does not parse or names unknown keys, weights that do not fit
their config) is a CheckpointError naming the file: one line from the command line, not a library's traceback.
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

from model.config import ConfigError, MoonConfig, from_dict
from model.model import MoonModel
from model.pretrained import load_pretrained, resolve_pretrained

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "train_state.pt"
EPOCH_DIR = re.compile(r"epoch-(\d+)$")
BEST_DIR = "best"
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints, in the output folder
# Config keys a resumed run may change: how long it trains and how it runs, not what it learns. Every other key
# changes the model's shapes (a load failure), is silently overridden by the restored optimizer (train.lr,
# weight_decay: AdamW's state carries them), changes the steps per epoch under a restored step count
# (batch_size, num_workers, eval_fraction: the cosine schedule would end early) or the validation that picks
# best/ (val_products, best_metric), or changes the objective, so that the run would be two experiments.
RESUMABLE_KEYS = ("name", "train.epochs", "train.log_every", "train.keep_last", "train.use_gpu",
                  "train.cpus_per_worker", "data.cache_records")


class CheckpointError(ConfigError):
    """A checkpoint or output folder that cannot serve as asked: a damaged file, weights that do not fit their
    config, a resume with another config. The message names the file; the cure is another folder (or a fix of
    the file), so it reads as a config error: one line, exit status 2."""


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
        cfg = _without_init_from(cfg)
        model.config = cfg
    return model, cfg


def _without_init_from(cfg: MoonConfig) -> MoonConfig:
    return dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, init_from=None),
                               text=dataclasses.replace(cfg.text, init_from=None))


def as_saved(cfg: MoonConfig) -> MoonConfig:
    """The config as a checkpoint of it saves it: pretrained dimensions read from `init_from` (reads those
    weights), `init_from` cleared."""
    if cfg.vision.init_from or cfg.text.init_from:
        return _without_init_from(resolve_pretrained(cfg))
    return cfg


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
    """The checkpoint's config.json, validated; a file that does not parse or validate is a CheckpointError
    naming it."""
    path = resolve_checkpoint(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a checkpoint folder holds {MODEL_FILE} and the {CONFIG_FILE} it "
                              "was trained with") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a JSON config ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON config (a {type(data).__name__}, not an object)")
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[MoonModel, MoonConfig]:
    directory = resolve_checkpoint(directory)
    cfg = load_config_from(directory)
    model = MoonModel(cfg)
    load_weights(model, directory)
    return model.to(device).eval(), cfg


def load_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load the checkpoint's model.safetensors into `model`; a damaged file, or weights that do not fit the
    model (another config), is a CheckpointError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / MODEL_FILE
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from exc
    problem = weights_mismatch(model.state_dict(), weights)
    if problem:
        raise CheckpointError(f"{path}: the weights do not fit {Path(directory) / CONFIG_FILE}: {problem}")
    problem = non_finite(weights)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    model.load_state_dict(weights)


def non_finite(weights: dict[str, torch.Tensor]) -> str | None:
    """'3 tensors hold NaN or infinite values (text.proj.weight: 12 of 4096, ...)', or None when every floating
    tensor is finite (a run that diverged and was saved anyway, or a damaged file that still parses)."""
    bad = {}
    for name, tensor in weights.items():
        if tensor.is_floating_point():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad[name] = (count, tensor.numel())
    if not bad:
        return None
    name, (count, total) = next(iter(sorted(bad.items())))
    more = ", ..." if len(bad) > 1 else ""
    return (f"{len(bad)} tensor{'s' if len(bad) > 1 else ''} hold{'' if len(bad) > 1 else 's'} NaN or infinite "
            f"values ({name}: {count} of {total}{more})")


def weights_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first difference of names or shapes between a model's state dict and loaded weights, with counts."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    shapes = sorted(k for k in expected.keys() & found.keys() if expected[k].shape != found[k].shape)
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensors of another shape ({k}: {list(found[k].shape)} in the file, "
                     f"{list(expected[k].shape)} in the model)")
    if missing:
        parts.append(f"{len(missing)} missing ({missing[0]}, ...)")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown ({unexpected[0]}, ...)")
    return "; ".join(parts) or None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def load_train_state(directory: str | Path) -> dict:
    path = resolve_checkpoint(directory) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a truncated or foreign file: torch raises RuntimeError, EOFError, UnpicklingError...
        raise CheckpointError(f"{path}: not a readable training state ({_first_line(exc)})") from exc


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


def local_folder(path: str | Path, what: str) -> Path:
    """`path` as a local folder; a CheckpointError for an s3:// URI, which Path would take for a relative folder
    named `s3:` (checkpoints were written to ./s3:/bucket/...): checkpoints live on a local or shared filesystem."""
    if str(path).startswith("s3:/"):  # "s3:/" too: a Path made of "s3://b/x" is s3:/b/x
        raise CheckpointError(f"{what} {path}: checkpoints are written to and read from a local or shared filesystem "
                              "(Ray Train's storage), not S3: give a local path, or a shared folder mounted on every "
                              "node (NFS, or an S3 bucket mounted with s3fs / mountpoint-s3)")
    return Path(path)


def resolve_checkpoint(path: str | Path) -> Path:
    path = local_folder(path, "--checkpoint")
    if (path / MODEL_FILE).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: no {MODEL_FILE}, and no epoch-NNNN checkpoint below it")
    return latest


def check_resumable(checkpoint: Path, cfg: MoonConfig) -> None:
    """Refuse to resume `checkpoint` (an epoch folder) with a config that differs from the one it was trained
    with in any key but RESUMABLE_KEYS, naming the keys: before Ray starts, instead of a state_dict traceback
    (another shape) or a run that silently mixes two configs (another loss, learning rate, data)."""
    saved = load_config_from(checkpoint)
    changed = config_differences(saved, as_saved(cfg))
    if changed:
        shown = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in list(changed.items())[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise CheckpointError(
            f"--resume: {checkpoint / CONFIG_FILE} was trained with another config ({shown}{more}); a resumed run "
            f"may change only {', '.join(k for k in RESUMABLE_KEYS if k != 'name')}: train with the other config into "
            "another --output")


def config_differences(saved: MoonConfig, asked: MoonConfig) -> dict[str, tuple]:
    """{dotted key: (saved value, asked value)} of the keys that differ, RESUMABLE_KEYS left out."""
    old, new = _flat(json.loads(saved.to_json())), _flat(json.loads(asked.to_json()))
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if key not in RESUMABLE_KEYS and old.get(key) != new.get(key)}


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_run_snapshot(output_dir: Path, ray_version: str) -> None:
    """Ray Train restores a run from `<output>/checkpoint_manager_snapshot.json` whatever --resume says, and fails
    after it started (a traceback) when the file cannot be read, comes from another Ray version, or lists a
    checkpoint folder that is gone. Refuse such a folder first, in one line."""
    path = Path(output_dir) / RAY_SNAPSHOT
    if not path.exists():
        return
    try:
        snapshot = json.loads(path.read_text())
        listed = [result["checkpoint_dir_name"] for result in snapshot["checkpoint_results"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable Ray Train snapshot ({_first_line(exc)}); {_SNAPSHOT_CURE}") from exc
    if snapshot.get("ray_version") != ray_version:
        raise CheckpointError(f"{path} was written by Ray {snapshot.get('ray_version')}, and this is Ray "
                              f"{ray_version}, which cannot restore it; {_SNAPSHOT_CURE}")
    gone = [name for name in listed if not (Path(output_dir) / name).is_dir()]
    if gone:
        raise CheckpointError(f"{path} lists {', '.join(gone)}, gone from {output_dir}: Ray Train cannot restore "
                              f"this run; {_SNAPSHOT_CURE}")


_SNAPSHOT_CURE = ("train into another --output, or delete that file (--resume then continues from the epoch folders "
                  "left, if any)")
