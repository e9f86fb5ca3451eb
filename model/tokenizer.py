"""Text -> token ids for the language encoder.

`HashTokenizer` needs no vocabulary file: lower-cased words are hashed into `vocab_size - 2` buckets (ids 0 and
1 are padding and the empty-text marker). It suits models trained from scratch on catalogue titles, in any
language that separates words. `HFTokenizer` reads a tokenizer saved next to a pretrained checkpoint (local
files only). Both return (ids [B, L], mask [B, L]) padded to the longest text of the batch, truncated to the
context length; an empty text becomes one EMPTY token so that every input has at least one real token.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Sequence

import torch

PAD = 0
EMPTY = 1
WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens; also what the bag-of-words baseline and keyword queries split on."""
    return WORD.findall(text.lower())


class HashTokenizer:
    def __init__(self, vocab_size: int, context_length: int):
        if vocab_size < 3:
            raise ValueError("a hash tokenizer needs vocab_size >= 3")
        self.vocab_size = vocab_size
        self.context_length = context_length

    def token_ids(self, text: str) -> list[int]:
        ids = [2 + zlib.crc32(w.encode()) % (self.vocab_size - 2) for w in words(text)]
        return ids[: self.context_length] or [EMPTY]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad([self.token_ids(t) for t in texts])


class HFTokenizer:
    """A HF tokenizer from a local directory; padding uses its pad id, else 0, and is masked out anyway."""

    def __init__(self, path: str, context_length: int, vocab_size: int):
        from transformers import AutoTokenizer

        if not Path(path).is_dir():
            raise FileNotFoundError(f"tokenizer directory {path} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.context_length = context_length
        if len(self.tokenizer) > vocab_size:
            raise ValueError(f"tokenizer at {path} has {len(self.tokenizer)} tokens, more than text.vocab_size {vocab_size}")

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.context_length)["input_ids"]
        return _pad([ids or [EMPTY] for ids in encoded])


def build_tokenizer(text_cfg) -> HashTokenizer | HFTokenizer:
    if text_cfg.tokenizer == "hash":
        return HashTokenizer(text_cfg.vocab_size, text_cfg.context_length)
    return HFTokenizer(text_cfg.tokenizer, text_cfg.context_length, text_cfg.vocab_size)


def _pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), PAD, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return ids, mask
