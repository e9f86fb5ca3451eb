"""Named image-editing architectures built from config with random weights, in a tiny and a full size.

`tiny` models run in a second on a CPU and are what the tests load; `full` models have the published
architectures' shapes (FLUX.1 Kontext [dev]: a 12B-parameter MM-DiT with CLIP-L and T5-XXL text encoders;
InstructPix2Pix: the Stable Diffusion 1.5 UNet with 8 input channels and CLIP-L), so a benchmark on random
weights costs the same FLOPs as the real checkpoints. Tokenizers are built in code (byte-level vocabularies):
nothing is downloaded. Token counts, and so compute, follow the pipelines' fixed padding lengths.

Only torch, transformers and diffusers are imported, and only inside functions: the benchmark script uses this
module on a GPU machine where the rest of the project's dependencies are not installed.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any

ARCHITECTURES = ("flux-kontext", "instruct-pix2pix")
SIZES = ("tiny", "full")

# Which diffusers pipeline class each architecture is, for configs and the benchmark.
PIPELINE_CLASS = {"flux-kontext": "FluxKontextPipeline", "instruct-pix2pix": "StableDiffusionInstructPix2PixPipeline"}

_SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "flux-kontext": {
        "full": {
            "transformer": dict(
                patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=[16, 56, 56],
            ),
            "vae": dict(
                in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                norm_num_groups=32, sample_size=1024, use_quant_conv=False, use_post_quant_conv=False,
                shift_factor=0.1159, scaling_factor=0.3611,
            ),
            "clip": dict(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                vocab_size=49408, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
            ),
            "t5": dict(
                d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
                feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
            ),
        },
        "tiny": {
            "transformer": dict(
                patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                axes_dims_rope=[4, 4, 8],
            ),
            "vae": dict(
                in_channels=3, out_channels=3, latent_channels=1, block_out_channels=(4,), layers_per_block=1,
                norm_num_groups=1, sample_size=32, use_quant_conv=False, use_post_quant_conv=False,
                shift_factor=0.0609, scaling_factor=1.5035,
            ),
            "clip": dict(
                hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000,
                max_position_embeddings=77, projection_dim=32, hidden_act="gelu",
            ),
            "t5": dict(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, vocab_size=1000, relative_attention_num_buckets=8),
        },
    },
    "instruct-pix2pix": {
        "full": {
            "unet": dict(
                sample_size=64, in_channels=8, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=768, attention_head_dim=8,
            ),
            "vae": dict(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
            ),
            "clip": dict(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                vocab_size=49408, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
            ),
        },
        "tiny": {
            "unet": dict(
                sample_size=16, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
            ),
            "vae": dict(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                norm_num_groups=4, sample_size=32,
            ),
            "clip": dict(
                hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000,
                max_position_embeddings=77, projection_dim=32, hidden_act="gelu",
            ),
        },
    },
}


def clip_tokenizer():
    """A CLIP BPE tokenizer over single byte-level characters (no merges): every character is a token."""
    from transformers import CLIPTokenizer

    chars = _byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>", model_max_length=77)


def t5_tokenizer():
    """A T5 unigram tokenizer over printable characters, with and without the word-start marker."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces.append(("\u2581" + ch, -3.0))
        pieces.append((ch, -4.0))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def components(name: str, size: str = "tiny", device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """The pipeline components of architecture `name` at `size`, random weights (seeded, so builds are equal).

    Weights are created directly on `device` in `dtype`: a 17B-parameter build takes seconds on a GPU and would
    take many minutes (and twice the memory) in float32 on a CPU.
    """
    import torch

    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; architectures are {', '.join(ARCHITECTURES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; sizes are {', '.join(SIZES)}")
    shapes = _SHAPES[name][size]
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            return _flux_kontext(shapes) if name == "flux-kontext" else _instruct_pix2pix(shapes)
    finally:
        torch.set_default_dtype(previous)


def _on_cpu(scheduler_cls, **config):
    """Schedulers keep numpy state: build them outside the model's device context (a CUDA default device breaks
    their tensor -> numpy conversions)."""
    import torch

    with torch.device("cpu"):
        return scheduler_cls(**config)


def _clip_text(shapes: dict):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, **shapes))


def _flux_kontext(shapes: dict) -> dict[str, Any]:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    return {
        "transformer": FluxTransformer2DModel(**shapes["transformer"]),
        "vae": AutoencoderKL(**shapes["vae"]),
        "text_encoder": _clip_text(shapes["clip"]),
        "tokenizer": clip_tokenizer(),
        "text_encoder_2": T5EncoderModel(T5Config(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **shapes["t5"])),
        "tokenizer_2": t5_tokenizer(),
        # FLUX.1's scheduler settings: the timestep shift grows with the image's token count.
        "scheduler": _on_cpu(
            FlowMatchEulerDiscreteScheduler,
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        ),
        "image_encoder": None,
        "feature_extractor": None,
    }


def _instruct_pix2pix(shapes: dict) -> dict[str, Any]:
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel

    return {
        "unet": UNet2DConditionModel(**shapes["unet"]),
        "vae": AutoencoderKL(**shapes["vae"]),
        "text_encoder": _clip_text(shapes["clip"]),
        "tokenizer": clip_tokenizer(),
        "scheduler": _on_cpu(
            EulerAncestralDiscreteScheduler,
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        ),
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }


def build(name: str, size: str = "tiny", device: str = "cpu", dtype: str = "float32"):
    """The diffusers pipeline of architecture `name` with random weights, on `device` in `dtype`."""
    import diffusers

    return getattr(diffusers, PIPELINE_CLASS[name])(**components(name, size, device, dtype))


def save(name: str, path: str | Path, size: str = "tiny") -> Path:
    """Build and save a pipeline directory that `from_pretrained` loads like a downloaded checkpoint."""
    path = Path(path)
    build(name, size).save_pretrained(path)
    return path


def save_clip(path: str | Path, size: str = "tiny") -> Path:
    """A CLIP model directory (model, tokenizer, image processor) with random weights, for the clip filter."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    shapes = {
        "tiny": (dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000),
                 dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)),
        "full": (dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=49408),
                 dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224, patch_size=14)),
    }[size]
    torch.manual_seed(0)
    text, vision = shapes
    model = CLIPModel(CLIPConfig(text_config={**text, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}, vision_config=vision, projection_dim=32 if size == "tiny" else 768))
    image_size = vision["image_size"]
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}),
        tokenizer=clip_tokenizer(),
    )
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
