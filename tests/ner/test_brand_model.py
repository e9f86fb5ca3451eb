"""The brand scorer: features of candidates, choosing by weights, and the averaged perceptron."""
from ner.brand_candidates import LEAD, NONE, Candidate, TitleView, candidates
from ner.brand_model import RULE_WEIGHTS, BrandScorer, Words, features, shape, train

WORDS = Words(stop_words={"men", "women"}, audience_words={"men", "women"}, common_words={"electric", "guitar"})


def view(text, blocked=None, lex=()):
    texts = text.split(" ")
    blocked = blocked or {}
    return TitleView(texts, [True] * len(texts), [blocked.get(i) for i in range(len(texts))], list(lex), set(),
                     WORDS.common_words)


def test_shapes():
    assert [shape(w) for w in ["SEAPESCA", "Nike", "nike", "SeaKnight", "eZthings", "2018", "-", "X5", "A"]] == [
        "X", "Xx", "x", "XxX", "xX", "d", "p", "X1d", "X1"]


def test_features_describe_length_next_word_and_commonness():
    v = view("Yuker Electric Guitar")
    f = features(v, Candidate(0, 1, LEAD), WORDS, set())
    assert "lead|L1" in f and "next=common_Xx" in f and "L1|common=0" in f
    f2 = features(v, Candidate(0, 2, LEAD), WORDS, set())
    assert "L2|common=1" in f2 and "last=electric" in f2


def test_lexicon_and_audience_features():
    v = view("Finn Comfort Women Sandals", lex=[(0, 2)])
    f = features(v, Candidate(0, 2, LEAD), WORDS, {(0, 2)})
    assert "lex" in f and "next=aud" in f


def test_scorer_picks_highest_scoring_candidate():
    v = view("Yuker Electric Guitar")
    cands = candidates(v, WORDS.stop_words)
    scorer = BrandScorer({"lead|L1": 2.0, "lead|L2": 1.0, "none": 0.5}, WORDS)
    best = scorer.best(v, cands)
    assert (best.start, best.end, best.kind) == (0, 1, LEAD)


def test_rule_weights_prefer_lexicon_brand_to_guess():
    v = view("Acme Palm Tree Skirt", lex=[(1, 3)])
    best = BrandScorer(RULE_WEIGHTS, WORDS).best(v, candidates(v, WORDS.stop_words))
    assert (best.start, best.end) == (1, 3)


def test_perceptron_learns_to_choose_the_gold_candidate():
    examples = []
    for text in ["Yuker Electric Guitar", "Abcde Electric Guitar", "Qwert Electric Guitar"]:
        v = view(text)
        cands = candidates(v, WORDS.stop_words)
        examples.append((v, cands, next(i for i, c in enumerate(cands) if (c.start, c.end) == (0, 1))))
    weights = train(examples, WORDS, epochs=5)
    v = view("Zzzzz Electric Guitar")
    best = BrandScorer(weights, WORDS).best(v, candidates(v, WORDS.stop_words))
    assert (best.start, best.end, best.kind) == (0, 1, LEAD)


def test_none_candidate_wins_without_weights_for_others():
    v = view("electric guitar")
    best = BrandScorer({"none": 1.0}, WORDS).best(v, candidates(v, WORDS.stop_words))
    assert best.kind == NONE
