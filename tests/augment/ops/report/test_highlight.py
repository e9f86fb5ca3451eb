"""Entity highlighting: offsets in the title, every occurrence in the enriched title, escaping."""
from augment.ops.report.highlight import occurrence_segments, title_segments, to_html

TITLE = "Nike Men Navy Blue Cotton T-shirt"
ENTITIES = [
    {"label": "BRAND", "text": "Nike", "start": 0, "end": 4},
    {"label": "COLOR", "text": "Navy Blue", "start": 9, "end": 18},
    {"label": "MATERIAL", "text": "Cotton", "start": 19, "end": 25},
]


def test_title_is_cut_at_the_entity_offsets():
    assert title_segments(TITLE, ENTITIES) == [
        ("Nike", "BRAND"), (" Men ", None), ("Navy Blue", "COLOR"), (" ", None), ("Cotton", "MATERIAL"),
        (" T-shirt", None),
    ]


def test_a_span_whose_offsets_do_not_match_its_text_is_found_by_its_text():
    entities = [{"label": "MATERIAL", "text": "Cotton", "start": 3, "end": 9}]
    assert title_segments(TITLE, entities) == [(TITLE[:19], None), ("Cotton", "MATERIAL"), (" T-shirt", None)]


def test_a_span_absent_from_the_title_is_skipped():
    assert title_segments("Plain title", [{"label": "BRAND", "text": "Puma", "start": 40, "end": 44}]) == [("Plain title", None)]


def test_overlapping_spans_keep_the_earlier_one():
    entities = [{"label": "COLOR", "text": "Navy Blue", "start": 9, "end": 18},
                {"label": "COLOR", "text": "Blue", "start": 14, "end": 18}]
    assert title_segments(TITLE, entities)[1] == ("Navy Blue", "COLOR")
    assert [s for s in title_segments(TITLE, entities) if s[1]] == [("Navy Blue", "COLOR")]


def test_every_occurrence_in_the_enriched_title_is_marked_case_insensitively():
    enriched = "Nike Men Navy Blue Cotton T-shirt | Brand: NIKE | Material: cotton"
    marked = [s for s in occurrence_segments(enriched, ENTITIES) if s[1]]
    assert marked == [("Nike", "BRAND"), ("Navy Blue", "COLOR"), ("Cotton", "MATERIAL"), ("NIKE", "BRAND"),
                      ("cotton", "MATERIAL")]


def test_occurrences_respect_word_boundaries():
    entities = [{"label": "COLOR", "text": "Red", "start": 0, "end": 3}]
    assert occurrence_segments("Reddish red shoe", entities) == [("Reddish ", None), ("red", "COLOR"), (" shoe", None)]


def test_the_longer_entity_wins_where_two_overlap():
    entities = [{"label": "COLOR", "text": "Blue", "start": 0, "end": 4},
                {"label": "COLOR", "text": "Navy Blue", "start": 0, "end": 9}]
    assert [s for s in occurrence_segments("A Navy Blue top", entities) if s[1]] == [("Navy Blue", "COLOR")]


def test_html_is_escaped_and_labels_become_classes():
    segments = title_segments("<b>Acme</b> & co", [{"label": "BRAND", "text": "Acme", "start": 3, "end": 7}])
    assert to_html(segments) == '&lt;b&gt;<mark class="ent ent-brand" title="BRAND">Acme</mark>&lt;/b&gt; &amp; co'
