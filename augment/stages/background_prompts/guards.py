"""Checks every background prompt must pass before it is written, whatever made it.

A background prompt is one sentence that is rendered into the Algorithm 7 image-editing prompt, so it must not
carry markup, links, instructions or several lines; a product's list must hold the asked number of distinct ones.
Each check returns a short stable reason code; the model backends replace a failing list by the template's choice.
"""
from __future__ import annotations

from augment.stages.text import dominant_script, fold, unsafe_text


def check_background_prompt(candidate: str, max_chars: int = 300) -> str | None:
    """None when `candidate` is a usable background description; otherwise a reason code.

    A background prompt is one sentence that is rendered into the Algorithm 7 image-editing prompt, so it must
    not carry markup, links, instructions or several lines.
    """
    reason = unsafe_text(candidate)
    if reason:
        return reason
    if len(candidate) < 12:
        return "too_short"
    if len(candidate) > max_chars:
        return "too_long"
    if dominant_script(candidate) is None:
        return "no_words"
    return None


def check_background_prompts(candidates: list[str], count: int) -> str | None:
    """None when `candidates` are `count` distinct usable prompts; otherwise a reason code."""
    if len(candidates) != count:
        return "wrong_count"
    for text in candidates:
        reason = check_background_prompt(text)
        if reason:
            return reason
    if len({fold(t) for t in candidates}) != len(candidates):
        return "repeated"
    return None
