"""The floor everything else stands on: the data contract, storage, the manifest, fault points, config loading,
Ray start-up (and its console filter) and small helpers.

Nothing here imports any other part of the project (the stages, the runner, `ner`, `model`); every other package
may import from here. See docs/architecture.md.
"""
