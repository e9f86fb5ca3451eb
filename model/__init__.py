"""The MOON2.0 bi-encoder trained on the pipeline's shards: model, losses, data, Ray Train loop, evaluation.

Modules import torch (and, for data/train/evaluate, pyarrow) but never Ray at module level; `model.cli` imports
nothing heavy at all. Importing `model` itself loads nothing.
"""
