"""The `validate` stage (backend `default`): which rows can be processed, and one clean working image for each.

stage.py: its options (the config's `input:` limits) and the stage.
"""
