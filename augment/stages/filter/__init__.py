"""The `filter` stage: a consistency score per variant; weak ones are marked `filtered`, never deleted.

heuristic.py: the CPU default (`heuristic`); scoring.py: its foreground-mask IoU and colour statistics; clip.py:
the `clip` backend (a local CLIP model, blended with the heuristic).
"""
