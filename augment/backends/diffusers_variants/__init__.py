"""The `diffusers` image_variants backend: instruction-based image editing (Algorithms 1-4 and 7) on GPUs.

- `stage`: the Stage (imports torch and diffusers; resolved only when a config names the backend);
- `pipelines`: which pipeline classes are supported and how each is called.
This package's `__init__` imports nothing, so that `pipelines` can be used by the benchmark script alone.
"""
