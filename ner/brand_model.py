"""The learned BRAND chooser: a linear score over the candidates of `ner.brand_candidates`, the best one wins.

Where rules plateau is the END of a brand: "Yuker Electric Bass Guitar" (AliExpress: one invented word), "Green
Mountain Coffee Roasters Colombia Select" (Amazon: a company name of four words), "Starbucks Coffee K-Cup" but
"Starbucks Medium Roast". Each candidate is described by sparse string features (its length, the shapes and
commonness of its words, the word after it, whether a lexicon knows it, whether it recurs later in the title...)
and scored by a weight per feature. The weights are learned by `python -m ner.train` (an averaged perceptron over
the candidate sets of gold titles) and shipped as a small JSON file; without a file, `RULE_WEIGHTS` below encode
the plain rules (lexicon first, leading capitalised words up to a gender word or a lexicon word, "by <Brand>").

Pure Python, no spaCy: a title costs a few dozen dictionary look-ups.
"""
from __future__ import annotations

import json
from itertools import repeat
from pathlib import Path
from typing import Iterable

from ner.brand_candidates import BY, LEAD, LEX, NONE, Candidate, TitleView, has_alpha, is_code


class Words:
    """The word lists the features read (all lower case)."""

    def __init__(self, stop_words=frozenset(), audience_words=frozenset(), lead_skip=frozenset(),
                 common_words=frozenset()):
        self.stop_words = frozenset(stop_words)
        self.audience_words = frozenset(audience_words)
        self.lead_skip = frozenset(lead_skip)
        self.common_words = frozenset(common_words)


def shape(text: str) -> str:
    """A coarse word shape: X (capitals), Xx (title case), x (lower case), XxX / xX (inner capitals), d (digits),
    p (marks); 'd' is appended to letter shapes that contain digits."""
    if text.isascii() and text.isalpha():  # most title words: the same answer from str methods, five times faster
        if text.isupper():
            return "X" if len(text) > 1 else "X1"
        if text.islower():
            return "x"
        if text[0].isupper():
            return "Xx" if text[1:].islower() else "XxX"
        return "xX"
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "d" if any(c.isdigit() for c in text) else "p"
    if all(c.isupper() for c in letters):
        kind = "X" if len(letters) > 1 else "X1"
    elif all(c.islower() for c in letters):
        kind = "x"
    elif text[0].isupper():
        kind = "XxX" if any(c.isupper() for c in text[1:]) else "Xx"
    else:
        kind = "xX"
    return kind + "d" if any(c.isdigit() for c in text) else kind


def token_shape(view: TitleView, i: int) -> str:
    """`shape` of token i, computed once per title."""
    value = view._shapes[i]
    if value is None:
        value = view._shapes[i] = shape(view.texts[i])
    return value


def _word_class(view: TitleView, i: int, words: Words) -> str:
    """What kind of token sits at i, for the features that look at the token after a candidate."""
    if i >= view.n:
        return "eot"
    low = view.lows[i]
    text = view.texts[i]
    if low in words.audience_words or (low == "'s" and i > 0 and view.lows[i - 1] in words.audience_words):
        return "aud"
    if view.blocked[i]:
        return "lex_" + view.blocked[i]
    if low in words.stop_words:
        return "stop"
    if not has_alpha(text):
        return "num" if any(c.isdigit() for c in text) else "p" + text[:1]
    if is_code(text):
        return "code"
    if low in words.common_words:
        return "common_" + token_shape(view, i)
    return "rare_" + token_shape(view, i)


def _words_of(view: TitleView, start: int, end: int) -> list[int]:
    return [i for i in range(start, end) if has_alpha(view.texts[i]) and view.lows[i] != "'s"]


def features(view: TitleView, cand: Candidate, words: Words, lex: set[tuple[int, int]]) -> list[str]:
    """The sparse features of one candidate."""
    if cand.kind == NONE:
        pos = view.position
        if pos >= view.n:
            return ["none", "none|empty"]
        first = _word_class(view, pos, words)
        return ["none", "none|first=" + first, "none|shape=" + token_shape(view, pos)]
    start, end, kind = cand
    idx = _words_of(view, start, end)
    nw = min(len(idx), 5)
    kind_tag = kind if kind != LEX or start != view.position else LEAD
    nxt = _word_class(view, end, words)
    f = [kind_tag, f"{kind_tag}|L{nw}", f"{kind_tag}|L{nw}|next={nxt}", f"next={nxt}"]
    shapes = [token_shape(view, i) for i in idx]
    first_shape = shapes[0] if shapes else "p"
    f.append(f"{kind_tag}|first={first_shape}")
    if nw <= 3:
        f.append("shapes=" + "_".join(shapes))
    common = sum(1 for i in idx if view.lows[i] in words.common_words)
    f.append(f"L{nw}|common={min(common, 3)}")
    if idx:
        last = idx[-1]
        f.append(f"L{nw}|last={_word_class(view, last, words)}")
        if nw >= 2:
            f.append("last=" + view.lows[last])
            f.append(f"first_last={'c' if view.lows[idx[0]] in words.common_words else 'r'}"
                     f"{'c' if view.lows[last] in words.common_words else 'r'}")
    if end < view.n:
        f.append("nextword=" + view.lows[end])
    blocked = {view.blocked[i] for i in range(start, end) if view.blocked[i]}
    for label in blocked:
        f.append("inside=" + label)
    if (start, end) in lex:
        f.append("lex")
        f.append(f"lex|{kind_tag}")
    else:
        for s, e in lex:
            if s == start and e < end:
                f.append(f"lex_prefix+{min(end - e, 3)}")
                f.append("lex_prefix_next=" + view.lows[e])
            elif s == start and e > end:
                f.append("lex_longer")
    if view.recurs(start, end):
        f.append(f"recurs|L{nw}")
    if shapes and all(s_.startswith("X") and not s_.startswith("Xx") for s_ in shapes):
        f.append("caps")
        if nxt.endswith("_X") or nxt.endswith("_X1"):
            f.append("caps|next_caps")
    if any(view.lows[i] in ("by", "of", "&", "and", "the", "for") for i in range(start, end)):
        f.append(f"joiner|L{nw}")
    if kind == LEX and start != view.position:
        prev = view.lows[start - 1] if start > 0 else "<bot>"
        f.append("lex_else|prev=" + prev)
        f.append("lex_else|shape=" + first_shape)
        f.append(f"lex_else|common={min(common, 2)}")
    if kind == BY:
        f.append("by|prev=" + (view.lows[start - 1] if start > 0 else ""))
    if start > 0 and kind_tag == LEAD:
        f.append("lead_after_noise")
    return f


class BrandScorer:
    """Scores candidates with a weight per feature; `best` returns the winner."""

    def __init__(self, weights: dict[str, float], words: Words):
        self.weights = weights
        self.words = words

    @classmethod
    def from_file(cls, path: str | Path, words: Words) -> "BrandScorer":
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return cls({str(k): float(v) for k, v in data["weights"].items()}, words)

    def score(self, view: TitleView, cand: Candidate, lex: set[tuple[int, int]]) -> float:
        feats = features(view, cand, self.words, lex)
        return sum(map(self.weights.get, feats, repeat(0.0, len(feats))))

    def best(self, view: TitleView, cands: list[Candidate]) -> Candidate:
        lex = set(view.lex_brands)
        best = cands[0]
        best_score = None
        for cand in cands:
            value = self.score(view, cand, lex)
            if best_score is None or value > best_score:
                best, best_score = cand, value
        return best


# The rules as weights, used when no learned file is configured: a lexicon brand wins, then the leading words up
# to a gender word or a lexicon word of another label, then "by <Brand>"; a lone ordinary word is no brand.
RULE_WEIGHTS = {
    "none": 0.0,
    "lead": 1.0, "lex": 3.0, "by": 0.5, "lex|by": 1.0,
    "lead|first=x": -5.0, "lead|first=p": -5.0,
    "L1|common=1": -1.5, "L2|common=1": -0.6, "L2|common=2": -2.0, "L3|common=1": -0.8, "L3|common=2": -2.0,
    "L3|common=3": -3.0,
    "next=aud": 2.0, "next=stop": 1.0, "next=eot": 1.0, "next=lex_CATEGORY": 1.0, "next=lex_MATERIAL": 1.0,
    "next=lex_COLOR": 1.0, "next=code": 1.0, "next=num": 1.0, "next=p,": 1.0, "next=p-": 0.5, "next=p(": 1.0,
    "next=p|": 1.0, "next=rare_x": 1.0, "next=common_x": 1.0,
    "inside=CATEGORY": -4.0, "inside=MATERIAL": -4.0, "inside=COLOR": -4.0,
    "lex_longer": -2.0, "recurs|L1": 0.5, "recurs|L2": 1.0, "recurs|L3": 1.0, "lex_else|common=1": -3.0,
    "lex_else|shape=x": -3.0, "caps|next_caps": -1.0,
    "lead|L4": -1.0, "lead|L5": -2.0, "joiner|L2": -1.0,
}


def train(examples: Iterable[tuple[TitleView, list[Candidate], int]], words: Words, epochs: int = 10,
          seed: int = 0) -> dict[str, float]:
    """Averaged perceptron: for each (view, candidates, index of the gold candidate), push the gold candidate's
    features up and the predicted one's down when they differ. Returns the averaged weights (zeros dropped)."""
    import random

    data = list(examples)
    feats = [[features(view, c, words, set(view.lex_brands)) for c in cands] for view, cands, _ in data]
    weights: dict[str, float] = {}
    totals: dict[str, float] = {}
    stamps: dict[str, int] = {}
    step = 0
    order = list(range(len(data)))
    rng = random.Random(seed)

    def update(feature: str, delta: float) -> None:
        totals[feature] = totals.get(feature, 0.0) + (step - stamps.get(feature, 0)) * weights.get(feature, 0.0)
        stamps[feature] = step
        weights[feature] = weights.get(feature, 0.0) + delta

    for _ in range(epochs):
        rng.shuffle(order)
        for k in order:
            step += 1
            gold = data[k][2]
            cand_feats = feats[k]
            scores = [sum(weights.get(f, 0.0) for f in fs) for fs in cand_feats]
            guess = max(range(len(scores)), key=lambda i: (scores[i], -i))
            if guess != gold:
                for f in cand_feats[gold]:
                    update(f, 1.0)
                for f in cand_feats[guess]:
                    update(f, -1.0)
    averaged = {}
    for feature, weight in weights.items():
        total = totals.get(feature, 0.0) + (step - stamps.get(feature, 0)) * weight
        value = round(total / max(step, 1), 4)
        if value:
            averaged[feature] = value
    return averaged
