"""The `image_variants` stage: subject (Algorithm 1), angle (2), logo (3), detail (4), backgrounds (7).

classic.py: the CPU default (`classic`, OpenCV operations from augment.imaging); diffusers.py: the `diffusers`
backend (instruction-based image editing on GPUs) and diffusers_pipelines.py, which pipeline classes it supports
and how each is called (importable alone, for the benchmark). The variant records both write are
augment/stages/variants.py.
"""
