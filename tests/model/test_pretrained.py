"""Towers initialised from local CLIP checkpoints reproduce the reference implementation's hidden states.

The reference is a tiny random transformers CLIPModel built here; the open_clip directory is written from the
same weights with open_clip's key names (visual.*, transformer.resblocks.*, attn.in_proj_weight, ...).
"""
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402

from model.checkpoint import build_model  # noqa: E402
from model.config import load_config  # noqa: E402

VOCAB = ["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(60)]


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers

    directory = tmp_path_factory.mktemp("hf_clip")
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                         vocab_size=len(VOCAB), max_position_embeddings=16, hidden_act="quick_gelu",
                         bos_token_id=2, eos_token_id=3, pad_token_id=0),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=16,
    )
    torch.manual_seed(0)
    reference = transformers.CLIPModel(config).eval()
    reference.save_pretrained(directory)
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>").save_pretrained(directory)
    return directory, reference


@pytest.fixture(scope="module")
def open_clip_dir(hf_clip, tmp_path_factory):
    """The same weights in open_clip's layout and config format."""
    hf_dir, reference = hf_clip
    directory = tmp_path_factory.mktemp("open_clip")
    state = reference.state_dict()
    out = {}
    for tower, prefix, target in (("vision", "vision_model.", "visual."), ("text", "text_model.", "")):
        layers = reference.config.vision_config.num_hidden_layers if tower == "vision" else \
            reference.config.text_config.num_hidden_layers
        for i in range(layers):
            src, dst = f"{prefix}encoder.layers.{i}.", f"{target}transformer.resblocks.{i}."
            out[dst + "attn.in_proj_weight"] = torch.cat([state[src + f"self_attn.{p}_proj.weight"] for p in "qkv"])
            out[dst + "attn.in_proj_bias"] = torch.cat([state[src + f"self_attn.{p}_proj.bias"] for p in "qkv"])
            for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                                 ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[dst + ours + ".weight"] = state[src + theirs + ".weight"]
                out[dst + ours + ".bias"] = state[src + theirs + ".bias"]
    out["visual.conv1.weight"] = state["vision_model.embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = state["vision_model.embeddings.class_embedding"]
    out["visual.positional_embedding"] = state["vision_model.embeddings.position_embedding.weight"]
    for ours, theirs in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                         ("ln_final", "text_model.final_layer_norm")):
        out[ours + ".weight"], out[ours + ".bias"] = state[theirs + ".weight"], state[theirs + ".bias"]
    out["visual.proj"] = state["visual_projection.weight"].T.contiguous()
    out["token_embedding.weight"] = state["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = state["text_model.embeddings.position_embedding.weight"]
    out["text_projection"] = state["text_projection.weight"].T.contiguous()
    out["logit_scale"] = state["logit_scale"]
    save_file({k: v.contiguous() for k, v in out.items()}, str(directory / "open_clip_model.safetensors"))
    (directory / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": {"embed_dim": 16, "quick_gelu": True,
                      "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 12},
                      "text_cfg": {"context_length": 16, "vocab_size": len(VOCAB), "width": 32, "heads": 4,
                                   "layers": 3}},
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (directory / name).write_bytes((hf_dir / name).read_bytes())
    return directory


def pretrained_model(path):
    cfg = load_config("tiny", {"vision.init_from": str(path), "text.init_from": str(path), "moe.layers": 2})
    return build_model(cfg)


@torch.no_grad()
def reference_vision(reference, pixels):
    hidden = reference.vision_model(pixel_values=pixels).last_hidden_state
    return reference.vision_model.post_layernorm(hidden)


@torch.no_grad()
def reference_text(reference, ids):
    return reference.text_model(input_ids=ids).last_hidden_state  # after final_layer_norm


@pytest.mark.parametrize("layout", ["hf", "open_clip"])
def test_vision_tower_matches_reference_clip(layout, hf_clip, open_clip_dir):
    hf_dir, reference = hf_clip
    model, _ = pretrained_model(hf_dir if layout == "hf" else open_clip_dir)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = model.visual(pixels)
    assert torch.allclose(ours, reference_vision(reference, pixels), atol=1e-5)


@pytest.mark.parametrize("layout", ["hf", "open_clip"])
def test_text_tower_with_upcycled_experts_matches_reference_clip(layout, hf_clip, open_clip_dir):
    hf_dir, reference = hf_clip
    model, cfg = pretrained_model(hf_dir if layout == "hf" else open_clip_dir)
    assert cfg.moe.layers == 2  # the top two of three CLIP text layers became MoE layers
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 20, 21, 22, 3]])
    with torch.no_grad():
        hidden, _, router_logits = model.text(ids, torch.ones_like(ids, dtype=torch.bool), None)
    assert len(router_logits) == 2
    assert torch.allclose(hidden, reference_text(reference, ids), atol=1e-5)


def test_dimensions_tokenizer_and_preprocessing_come_from_the_checkpoint(open_clip_dir):
    _, cfg = pretrained_model(open_clip_dir)
    v, t = cfg.vision, cfg.text
    assert (v.image_size, v.patch_size, v.width, v.layers, v.heads, v.activation) == (32, 8, 48, 2, 4, "quick_gelu")
    assert (t.vocab_size, t.context_length, t.width, t.layers, t.heads, t.causal) == (len(VOCAB), 16, 32, 3, 4, True)
    assert v.mean == (0.5, 0.5, 0.5) and v.std == (0.25, 0.25, 0.25)
    assert t.tokenizer == str(open_clip_dir)
    assert v.init_from is None and t.init_from is None  # the weights now live in the model


def test_text_tower_without_tokenizer_files_is_refused(hf_clip, tmp_path):
    hf_dir, _ = hf_clip
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((hf_dir / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        pretrained_model(bare)


def test_non_clip_hf_directory_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cfg = load_config("tiny", {"vision.init_from": str(tmp_path)})
    with pytest.raises(ValueError, match="not a CLIP model"):
        build_model(cfg)
