"""What the tests and the benchmarks build to exercise the real code: synthetic product photos, tiny random-weight
models built from config (vision-language models, image editors, CLIP), a scripted OpenAI-compatible server,
the vLLM CPU server, a local S3 endpoint and the `moon` command as a process.

Not part of the installed package (setup.cfg leaves it out) and never imported by it; tests/ and bench/ import it
from the checkout. Modules import their heavy dependencies inside functions, so that a benchmark on a bare GPU
machine can use one without the rest.
"""
