"""The `transformers` engine: a local HF model directory, CPU or GPU.

For single machines and small catalogues, where a vLLM server is not worth running: Qwen2-VL / Qwen2.5-VL /
Llava-class vision-language models (AutoModelForImageTextToText), or a text-only causal LM. The model is loaded
once per process in `setup()` from a local directory (never downloaded), from safetensors only, with
trust_remote_code off unless the config turns it on. Requests are generated in sub-batches of `batch_size`
with left padding; there is no guided decoding here, so the strict parsers and the guards do all the checking.

Sampling (temperature > 0) is seeded per sub-batch from its first product's seed, so reruns of the same batch
give the same answers; greedy decoding (the default) does not depend on it.

Needs the `gpu` extra (torch, transformers, safetensors); Qwen2-VL's processor also needs torchvision.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from augment.core import models
from augment.llm.requests import ChatRequest, Completion

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TransformersOptions:
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
    batch_size: int = 8  # requests per generate() call
    trust_remote_code: bool = False  # run code shipped in the model directory: only for models you trust

    def check_data(self, key: str) -> None:
        """The device is one a model option may name (checked with the config, before any model loads)."""
        models.check_device(self.device, f"{key}.device")


def split_images(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """OpenAI-format messages -> (HF chat-template messages with {"type": "image"} parts, the PIL images in order)."""
    from PIL import Image

    out, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts = []
        for part in content:
            if part["type"] == "image_url":
                url = part["image_url"]["url"]
                header, _, data = url.partition(",")
                if not header.startswith("data:image/") or ";base64" not in header:
                    raise ValueError(f"the transformers backend takes images as base64 data URLs, got {header[:40]!r}")
                images.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
                parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part["text"]})
        out.append({"role": message["role"], "content": parts})
    return out, images


class TransformersEngine:
    requires = ("torch", "transformers", "safetensors")
    is_dataset = False

    def __init__(self, options, label: str = "transformers"):
        """`options` carry TransformersOptions' and ModelOptions' fields; `label` names the stage in logs."""
        self.options = options
        self.label = label
        self.model = self.processor = None
        self.is_vision = False

    def decoding(self) -> dict[str, Any]:
        return {}

    def setup(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
        from transformers import AutoTokenizer

        o = self.options
        path = Path(o.model)
        if not path.is_dir():
            raise FileNotFoundError(f"{self.label}: model directory {o.model} does not exist "
                                    "(models are loaded from a local path, never downloaded)")
        if not list(path.glob("*.safetensors")):
            raise FileNotFoundError(f"{self.label}: no *.safetensors weights in {o.model} "
                                    "(pickle checkpoints are not loaded)")
        device = models.resolve_device(o.device, f"{self.label}: options.device")
        if o.dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, o.dtype)
        common = {"trust_remote_code": o.trust_remote_code, "local_files_only": True}

        def load():
            config = AutoConfig.from_pretrained(path, **common)
            is_vision = type(config) in AutoModelForImageTextToText._model_mapping
            model_cls = AutoModelForImageTextToText if is_vision else AutoModelForCausalLM
            model = model_cls.from_pretrained(path, dtype=dtype, use_safetensors=True, **common).to(device).eval()
            processor = (AutoProcessor if is_vision else AutoTokenizer).from_pretrained(path, **common)
            tokenizer = getattr(processor, "tokenizer", processor)
            tokenizer.padding_side = "left"  # decoder-only batch generation continues from the right edge
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            log.info("%s loaded %s (%s) on %s as %s", self.label, o.model, type(model).__name__, device, dtype)
            return model, processor, is_vision

        # Once per process: stages naming the same model on the same device share one copy (augment.core.models).
        key = ("transformers", str(path.resolve()), device, str(dtype), o.trust_remote_code)
        self.model, self.processor, self.is_vision = models.shared(key, load, f"{self.label} {o.model}")
        self.device = device

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        if self.model is None:
            self.setup()
        out: list[Completion] = []
        size = max(1, self.options.batch_size)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            try:
                out.extend(self._generate(chunk))
            except Exception:  # noqa: BLE001 - one failing sub-batch must not lose the others
                log.exception("%s generate failed for %d requests", self.label, len(chunk))
                out.extend(Completion(error="engine") for _ in chunk)
        return out

    def _generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        import torch

        o = self.options
        texts, images = [], []
        for request in requests:
            messages, request_images = split_images(request.messages)
            if not self.is_vision:
                if request_images:
                    raise ValueError(f"{o.model} is a text model: set options.send_image to false")
                messages = [{"role": m["role"], "content": "".join(p["text"] for p in m["content"])}
                            for m in messages]
            texts.append(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            images.extend(request_images)
        if self.is_vision:
            inputs = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        else:
            inputs = self.processor(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.device)
        sample = o.temperature > 0
        kwargs = {"max_new_tokens": o.max_tokens, "do_sample": sample}
        if sample:
            kwargs |= {"temperature": o.temperature, "top_p": o.top_p}
            torch.manual_seed(requests[0].seed)
        with torch.inference_mode():
            generated = self.model.generate(**inputs, **kwargs)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        completions = []
        for row in new_tokens.tolist():
            # A row that produced an end-of-turn token stopped by itself (the rest is padding); one that did not
            # ran into max_new_tokens.
            stopped = any(t in eos_ids for t in row) or len(row) < o.max_tokens
            text = tokenizer.decode(row, skip_special_tokens=True)
            completions.append(Completion(text=text, finish_reason="stop" if stopped else "length"))
        return completions
