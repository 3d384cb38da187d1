from pipeline.config import SegmentParams
from pipeline.records import Block, Document
from pipeline.segment import find_rec_refs, segment, split_long


def _document(blocks):
    offset = 0
    for b in blocks:
        b.char_start = offset
        offset += len(b.text) + 1
    return Document("d1", "x.pdf", "ab" * 32, "pdf", "Kent", 2, blocks)


def test_long_paragraph_splits_at_sentence_boundaries_without_losing_text():
    sentences = [f"Sentence number {i} describes how the team reviewed referrals with partners."
                 for i in range(40)]
    text = " ".join(sentences)
    doc = _document([Block(text, 1, "paragraph", "Recommendation 2f")])
    passages = segment(doc, params=SegmentParams(max_words=150))
    assert len(passages) > 1
    assert all(len(p.text.split()) <= 150 for p in passages)
    assert all(p.text.endswith(".") for p in passages)  # cut between sentences
    assert " ".join(p.text for p in passages) == text  # nothing truncated
    for p in passages:
        assert doc.text[p.char_start:p.char_end] == p.text


def test_single_overlong_sentence_is_cut_between_words_not_truncated():
    text = " ".join(["word"] * 400)
    spans = split_long(text, 150)
    assert [len(text[s:e].split()) for s, e in spans] == [150, 150, 100]


def test_bullet_group_keeps_its_lead_in_line_and_heading():
    blocks = [Block("Recommendation 3", 1, "heading", "Recommendation 3"),
              Block("Our investigators have:", 1, "paragraph", "Recommendation 3"),
              Block("PIP2 accreditation;", 1, "bullet", "Recommendation 3"),
              Block("the Hydra course.", 1, "bullet", "Recommendation 3"),
              Block("A separate paragraph.", 1, "paragraph", "Recommendation 3")]
    passages = segment(_document(blocks))
    assert [p.text for p in passages] == [
        "Our investigators have:\nPIP2 accreditation;\nthe Hydra course.",
        "A separate paragraph.",
    ]
    assert passages[0].heading == "Recommendation 3" and passages[0].kind == "bullets"
    assert passages[0].rec_refs == ("3",)


def test_headings_are_context_not_passages():
    blocks = [Block("Victim care", 1, "heading", "Victim care"),
              Block("We fund navigators.", 2, "paragraph", "Victim care")]
    passages = segment(_document(blocks))
    assert len(passages) == 1 and passages[0].heading == "Victim care" and passages[0].page == 2


def test_passage_ids_are_deterministic():
    make = lambda: segment(_document([Block("One text here.", 1), Block("Two text here.", 1)]))  # noqa: E731
    assert [p.passage_id for p in make()] == [p.passage_id for p in make()]
    assert len({p.passage_id for p in make()}) == 2


def test_table_cells_carry_their_row_context():
    blocks = [Block("2f: understand the NRM", 1, "table_cell"),
              Block("Every referral is checked.", 1, "table_cell",
                    context="2f: understand the NRM")]
    passages = segment(_document(blocks))
    assert passages[1].context == "2f: understand the NRM"
    assert passages[1].rec_refs == ("2f",)


def test_recommendation_references_are_normalised():
    assert find_rec_refs("Recommendation 2a and Rec 3") == ("2a", "3")
    assert find_rec_refs("see 2(c) and Recommendation 2 (g)") == ("2c", "2g")
    assert find_rec_refs("Recommendation 4 (PCCs)") == ("4",)
    assert find_rec_refs("Recommendations 2f") == ("2f",)
    assert find_rec_refs("Section 45 of the Act in 2021") == ()


def test_a_megabyte_without_spaces_is_split_not_truncated():
    text = "x" * 1_000_000
    doc = _document([Block(text, 1)])
    passages = segment(doc, params=SegmentParams(max_words=150, max_chars=2000))
    assert max(len(p.text) for p in passages) == 2000
    assert "".join(p.text for p in passages) == text


def test_references_follow_the_taxonomy_not_a_fixed_alphabet():
    # Another report numbers to 12 and letters to h: nothing in the pattern stops at 4 or g.
    valid = {"11", "12", "12h", "3"}
    assert find_rec_refs("Recommendation 12(h) and rec 11", valid=valid) == ("11", "12h")
    assert find_rec_refs("see 12 (h), and 12z", valid=valid) == ("12h",)
    # A letter the taxonomy does not list still names its recommendation's part.
    assert find_rec_refs("Recommendation 3 (k)", valid=valid) == ("3k",)
    assert find_rec_refs("In reply to Recommendation 4 I have asked", valid=valid) == ()


def test_a_paragraph_cut_at_a_page_end_joins_its_continuation():
    blocks = [Block("Victims are told how to contact the officer in the case, by phone or",
                    1, "paragraph", "Recommendation 4"),
              Block("through the force switchboard.", 2, "paragraph", "Recommendation 4"),
              # A sentence that ends, then a new paragraph: not joined.
              Block("Interpreters are booked through the contract.", 2, "paragraph",
                    "Recommendation 4"),
              Block("leaflets are printed in twelve languages.", 2, "paragraph",
                    "Recommendation 4"),
              # A heading between them: not joined, whatever the case.
              Block("Navigators are funded by the PCC and", 2, "paragraph", "Recommendation 4"),
              Block("Governance", 3, "heading", "Governance"),
              Block("reports go to the board each quarter.", 3, "paragraph", "Governance")]
    passages = segment(_document(blocks))
    assert [p.text for p in passages] == [
        "Victims are told how to contact the officer in the case, by phone or\n"
        "through the force switchboard.",
        "Interpreters are booked through the contract.",
        "leaflets are printed in twelve languages.",
        "Navigators are funded by the PCC and",
        "reports go to the board each quarter.",
    ]
    assert passages[0].page == 1 and passages[0].kind == "paragraph"
