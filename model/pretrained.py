"""Initialise the towers from local CLIP checkpoints: open_clip directories or HF CLIP directories.

Supported layouts (files only, never a download):
- open_clip: `open_clip_config.json` (`model_cfg` with `vision_cfg` / `text_cfg`) and
  `open_clip_model.safetensors` or `open_clip_pytorch_model.bin` (the layout open_clip pushes to the HF hub);
- HF: `config.json` of a `clip`, `clip_vision_model` or `clip_text_model`, and `model.safetensors` (sharded
  with an index too) or `pytorch_model.bin`.

Dimensions come from the weights' shapes; head counts and the activation from the config file. The ViT maps
one to one; the text transformer maps onto the language encoder's blocks, and a dense FFN is copied into every
expert of an MoE layer (upcycling: with identical experts the MoE computes exactly the dense FFN, whatever the
router does, so the loaded model starts as the checkpoint). CLIP's projection heads and logit scale are not
used: the embedding is the mean-pooled last hidden state. A CLIP text tower brings its causal attention and
its tokenizer (the checkpoint directory must hold the tokenizer files).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Callable

import torch

from model.config import MoonConfig

log = logging.getLogger(__name__)

# CLIP's defaults for config keys that HF config files may leave out.
_HF_DEFAULTS = {
    "vision": {"num_attention_heads": 12, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    "text": {"num_attention_heads": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
}


@dataclasses.dataclass
class Checkpoint:
    kind: str  # open_clip | hf
    path: Path
    config: dict
    load_tensors: Callable[[], dict[str, torch.Tensor]]


def open_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if (path / "open_clip_config.json").exists():
        config = json.loads((path / "open_clip_config.json").read_text())
        files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return Checkpoint("open_clip", path, config, lambda: _read_weights(path, files))
    if (path / "config.json").exists():
        config = json.loads((path / "config.json").read_text())
        if not str(config.get("model_type", "")).startswith("clip"):
            raise ValueError(f"{path}: HF model_type {config.get('model_type')!r} is not a CLIP model")
        files = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"]
        return Checkpoint("hf", path, config, lambda: _read_weights(path, files))
    raise FileNotFoundError(f"{path}: neither open_clip_config.json nor a HF config.json")


def _read_weights(path: Path, names: list[str]) -> dict[str, torch.Tensor]:
    for name in names:
        file = path / name
        if not file.exists():
            continue
        if name.endswith(".index.json"):
            from safetensors.torch import load_file

            shards = sorted(set(json.loads(file.read_text())["weight_map"].values()))
            tensors: dict[str, torch.Tensor] = {}
            for shard in shards:
                tensors.update(load_file(str(path / shard)))
            return tensors
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    raise FileNotFoundError(f"{path}: no weights file among {names}")


# ---------------------------------------------------------------------------------------------------------
# Key mapping: checkpoint names -> ours, per tower
# ---------------------------------------------------------------------------------------------------------
def _vision_tensors(ckpt: Checkpoint, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    if ckpt.kind == "open_clip":
        for key, value in tensors.items():
            if not key.startswith("visual.") or key == "visual.proj":
                continue
            name = key[len("visual."):].replace("transformer.resblocks.", "blocks.")
            name = name.replace("attn.in_proj_weight", "attn.in_proj.weight").replace("attn.in_proj_bias", "attn.in_proj.bias")
            out[name] = value
        return out
    prefix = _prefix(tensors, "embeddings.patch_embedding.weight")
    if prefix is None:
        raise ValueError(f"{ckpt.path}: no CLIP vision tower in this checkpoint")
    sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    out["conv1.weight"] = sub["embeddings.patch_embedding.weight"]
    out["class_embedding"] = sub["embeddings.class_embedding"]
    out["positional_embedding"] = sub["embeddings.position_embedding.weight"]
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        out[f"{ours}.weight"], out[f"{ours}.bias"] = sub[f"{theirs}.weight"], sub[f"{theirs}.bias"]
    out.update(_hf_blocks(sub))
    return out


def _text_tensors(ckpt: Checkpoint, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    if ckpt.kind == "open_clip":
        for key, value in tensors.items():
            if key.startswith(("token_embedding.", "positional_embedding", "transformer.", "ln_final.")):
                name = key.replace("transformer.resblocks.", "blocks.")
                name = name.replace("attn.in_proj_weight", "attn.in_proj.weight").replace("attn.in_proj_bias", "attn.in_proj.bias")
                out[name] = value
        if "token_embedding.weight" not in out:
            raise ValueError(f"{ckpt.path}: no open_clip text tower (custom text towers are not supported)")
        return out
    prefix = _prefix(tensors, "embeddings.token_embedding.weight")
    if prefix is None:
        raise ValueError(f"{ckpt.path}: no CLIP text tower in this checkpoint")
    sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    out["token_embedding.weight"] = sub["embeddings.token_embedding.weight"]
    out["positional_embedding"] = sub["embeddings.position_embedding.weight"]
    out["ln_final.weight"], out["ln_final.bias"] = sub["final_layer_norm.weight"], sub["final_layer_norm.bias"]
    out.update(_hf_blocks(sub))
    return out


def _hf_blocks(sub: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    layers = {int(m.group(1)) for k in sub if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    for i in sorted(layers):
        src, dst = f"encoder.layers.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            out[dst + f"attn.in_proj.{part}"] = torch.cat(
                [sub[src + f"self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")]
            )
            out[dst + f"attn.out_proj.{part}"] = sub[src + f"self_attn.out_proj.{part}"]
            out[dst + f"ln_1.{part}"] = sub[src + f"layer_norm1.{part}"]
            out[dst + f"ln_2.{part}"] = sub[src + f"layer_norm2.{part}"]
            out[dst + f"mlp.c_fc.{part}"] = sub[src + f"mlp.fc1.{part}"]
            out[dst + f"mlp.c_proj.{part}"] = sub[src + f"mlp.fc2.{part}"]
    return out


def _prefix(tensors: dict[str, torch.Tensor], suffix: str) -> str | None:
    """The key prefix of a tower: '' for a standalone model, 'vision_model.' inside a CLIPModel, ..."""
    found = [k[: -len(suffix)] for k in tensors if k.endswith(suffix)]
    return min(found, key=len) if found else None


def _layer_count(mapped: dict[str, torch.Tensor]) -> int:
    return len({int(m.group(1)) for k in mapped if (m := re.match(r"blocks\.(\d+)\.", k))})


# ---------------------------------------------------------------------------------------------------------
# Dimensions from the checkpoint, weights into the model
# ---------------------------------------------------------------------------------------------------------
def resolve_pretrained(cfg: MoonConfig) -> MoonConfig:
    """The config with each `init_from` tower's dimensions (and tokenizer, causality) read from its checkpoint."""
    vision, text = cfg.vision, cfg.text
    if vision.init_from:
        ckpt = open_checkpoint(vision.init_from)
        mapped = _vision_tensors(ckpt, ckpt.load_tensors())
        width, _, patch, _ = mapped["conv1.weight"].shape
        grid = int(round((mapped["positional_embedding"].shape[0] - 1) ** 0.5))
        heads, activation = _heads_and_activation(ckpt, "vision", width)
        preprocess = _preprocess(ckpt)
        vision = dataclasses.replace(
            vision, width=width, patch_size=patch, image_size=grid * patch, layers=_layer_count(mapped),
            heads=heads, activation=activation,
            mlp_ratio=mapped["blocks.0.mlp.c_fc.weight"].shape[0] / width,
            pool_grid=min(vision.pool_grid, grid), **preprocess,
        )
    if text.init_from:
        ckpt = open_checkpoint(text.init_from)
        mapped = _text_tensors(ckpt, ckpt.load_tensors())
        vocab, width = mapped["token_embedding.weight"].shape
        heads, activation = _heads_and_activation(ckpt, "text", width)
        tokenizer = text.tokenizer
        if tokenizer == "hash":
            if not any((Path(text.init_from) / f).exists() for f in ("tokenizer.json", "vocab.json")):
                raise FileNotFoundError(
                    f"{text.init_from}: a pretrained text tower needs its tokenizer; put tokenizer.json there "
                    "or set text.tokenizer to a directory holding it"
                )
            tokenizer = text.init_from
        text = dataclasses.replace(
            text, vocab_size=vocab, width=width, layers=_layer_count(mapped), heads=heads, activation=activation,
            context_length=mapped["positional_embedding"].shape[0],
            mlp_ratio=mapped["blocks.0.mlp.c_fc.weight"].shape[0] / width, causal=True, tokenizer=tokenizer,
        )
    moe = dataclasses.replace(cfg.moe, layers=min(cfg.moe.layers, text.layers))
    return dataclasses.replace(cfg, vision=vision, text=text, moe=moe).validate()


def _heads_and_activation(ckpt: Checkpoint, tower: str, width: int) -> tuple[int, str]:
    if ckpt.kind == "open_clip":
        model_cfg = ckpt.config.get("model_cfg", ckpt.config)
        activation = "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"
        if tower == "vision":
            head_width = model_cfg.get("vision_cfg", {}).get("head_width", 64)
            return width // head_width, activation
        return model_cfg.get("text_cfg", {}).get("heads", 8), activation
    section = ckpt.config.get(f"{tower}_config", ckpt.config)
    values = {**_HF_DEFAULTS[tower], **section}
    if abs(float(values["layer_norm_eps"]) - 1e-5) > 1e-12:
        raise ValueError(f"{ckpt.path}: layer_norm_eps {values['layer_norm_eps']} (this model uses 1e-5)")
    activation = values["hidden_act"]
    if activation not in ("gelu", "quick_gelu"):
        raise ValueError(f"{ckpt.path}: unsupported activation {activation}")
    return int(values["num_attention_heads"]), activation


def _preprocess(ckpt: Checkpoint) -> dict:
    if ckpt.kind == "open_clip":
        pre = ckpt.config.get("preprocess_cfg", {})
        mean, std = pre.get("mean"), pre.get("std")
    else:
        file = ckpt.path / "preprocessor_config.json"
        pre = json.loads(file.read_text()) if file.exists() else {}
        mean, std = pre.get("image_mean"), pre.get("image_std")
    out = {}
    if mean and std:
        out = {"mean": tuple(float(x) for x in mean), "std": tuple(float(x) for x in std)}
    return out


def load_pretrained(model, cfg: MoonConfig) -> None:
    """Copy each `init_from` tower's weights into a model built from `resolve_pretrained(cfg)`."""
    if cfg.vision.init_from:
        ckpt = open_checkpoint(cfg.vision.init_from)
        _copy(model.visual, _vision_tensors(ckpt, ckpt.load_tensors()), f"vision tower from {ckpt.path}")
    if cfg.text.init_from:
        ckpt = open_checkpoint(cfg.text.init_from)
        mapped = _text_tensors(ckpt, ckpt.load_tensors())
        _copy(model.text, _upcycle(model.text, mapped), f"text tower from {ckpt.path}")


def _upcycle(encoder, mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Dense FFN weights -> every expert of the blocks that have an MoE."""
    ours = set(encoder.state_dict())
    out = {}
    for key, value in mapped.items():
        if key in ours:
            out[key] = value
            continue
        expert_keys = [k for k in ours if re.fullmatch(re.escape(key).replace(r"\.mlp\.", r"\.mlp\.experts\.\d+\."), k)]
        if not expert_keys:
            out[key] = value  # reported as unexpected by _copy
        for k in expert_keys:
            out[k] = value
    return out


def _copy(module, tensors: dict[str, torch.Tensor], what: str) -> None:
    state = module.state_dict()
    unexpected = sorted(set(tensors) - set(state))
    if unexpected:
        raise ValueError(f"{what}: checkpoint tensors with no place in the model: {unexpected[:5]}")
    for key, value in tensors.items():
        if state[key].shape != value.shape:
            raise ValueError(f"{what}: {key} has shape {tuple(value.shape)}, the model {tuple(state[key].shape)}")
    missing = sorted(k for k in state if k not in tensors)
    module.load_state_dict(tensors, strict=False)
    log.info("loaded %s (%d tensors; kept fresh: %s)", what, len(tensors), ", ".join(missing) or "none")
