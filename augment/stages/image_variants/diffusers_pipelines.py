"""The image-editing pipeline classes the diffusers backend supports, and how each one is called.

Every supported class takes a batch of conditioning images and one instruction per image and returns edited
images. What differs is a handful of call arguments, kept here next to each other so that adding a class is one
entry: FLUX.1 Kontext must not resize its input to its preferred 1 MP buckets (the stage chooses the
resolution), and InstructPix2Pix has an image guidance scale. Loading applies dtype, device and CPU offload.
Must not: know about rows, variants, prompts or storage.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

DTYPES = ("float32", "float16", "bfloat16")
OFFLOAD = ("none", "model", "sequential")


@dataclasses.dataclass(frozen=True)
class CallSettings:
    """The generation settings of one stage, independent of the pipeline class."""

    resolution: int
    steps: int
    guidance_scale: float
    image_guidance_scale: float
    max_sequence_length: int


def _flux_kontext(s: CallSettings) -> dict[str, Any]:
    return {
        "height": s.resolution,
        "width": s.resolution,
        "max_area": s.resolution * s.resolution,
        "_auto_resize": False,  # keep our resolution; the default snaps inputs to ~1 MP training buckets
        "guidance_scale": s.guidance_scale,
        "max_sequence_length": s.max_sequence_length,
    }


def _instruct_pix2pix(s: CallSettings) -> dict[str, Any]:
    # The output takes the input image's size, which the stage sets to the resolution.
    return {"guidance_scale": s.guidance_scale, "image_guidance_scale": s.image_guidance_scale}


# Pipeline class name -> call arguments beyond image, prompt, steps, generator and output type.
SUPPORTED: dict[str, Callable[[CallSettings], dict[str, Any]]] = {
    "FluxKontextPipeline": _flux_kontext,
    "StableDiffusionInstructPix2PixPipeline": _instruct_pix2pix,
}


def check_class(name: str, key: str) -> None:
    if name not in SUPPORTED:
        raise ValueError(f"{key}: unsupported pipeline {name!r}; supported: {', '.join(SUPPORTED)}")


def pipeline_class(name: str):
    """The diffusers class named `name` (imports diffusers)."""
    import diffusers

    check_class(name, "pipeline")
    return getattr(diffusers, name)


def load(name: str, model_path: str, dtype: str, device: str, offload: str):
    """Load a pipeline from a local directory once; offload keeps weights on the CPU between uses (CUDA only)."""
    import logging

    import torch

    cls = pipeline_class(name)
    # The paper's instructions are longer than CLIP's 77 tokens by design (FLUX reads them whole through T5);
    # the pipeline would log the truncated tail on every call.
    logging.getLogger(cls.__module__).setLevel(logging.ERROR)
    # safetensors only (a pickled checkpoint can run code when loaded), the local directory only.
    pipe = cls.from_pretrained(model_path, dtype=getattr(torch, dtype), use_safetensors=True, local_files_only=True)
    if offload == "model" and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential" and device.startswith("cuda"):
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def edit(pipe, name: str, images: list, instructions: list[str], seeds: list[int], settings: CallSettings):
    """Run one batch: PIL images and instructions in, (N, H, W, 3) uint8 arrays out, one seed per item.

    Each item gets its own CPU generator, so an item's output does not depend on what else is in its batch and is
    the same on any device.
    """
    import numpy as np
    import torch

    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
    out = pipe(
        image=images,
        prompt=instructions,
        num_inference_steps=settings.steps,
        generator=generators,
        output_type="np",
        **SUPPORTED[name](settings),
    ).images
    return (np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
