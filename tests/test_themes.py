"""Themes of each category's evidence across forces, and the summaries drafted from them."""

import pandas as pd

from pipeline.config import ThemeParams
from pipeline.taxonomy import load_taxonomy
from pipeline.themes import THEME_COLUMNS, action_summaries, read_themes_csv, themes

TAX = load_taxonomy()
INTRANET = ["Our intranet page links the NRM guidance and the duty to notify form.",
            "The intranet page now has the referral guidance and a duty to notify link.",
            "Guidance on the intranet page sets out the NRM referral route.",
            "A new intranet page holds the NRM guidance for call handlers."]
SAFETY = ["Emergency accommodation is arranged through the reception centre.",
          "The reception centre offers emergency accommodation for two nights.",
          "We use a reception centre and emergency accommodation with partners.",
          "Emergency accommodation at a reception centre is booked by the duty inspector."]
FORCES = ["Kent", "Essex", "Surrey", "Dorset"]


def _evidence():
    rows = []
    for i, (a, b) in enumerate(zip(INTRANET, SAFETY, strict=True)):
        rows.append({"passage_id": f"i{i}", "force": FORCES[i], "page": i + 1, "text": a})
        rows.append({"passage_id": f"s{i}", "force": FORCES[i], "page": i + 2, "text": b})
    rows += [{"passage_id": "n0", "force": "Kent", "page": 9,
              "text": "The NPCC national unit published a toolkit for all forces."},
             {"passage_id": "g0", "force": "Essex", "page": 9, "status": "gap",
              "text": "There is no reception centre and no emergency accommodation yet."},
             {"passage_id": "u0", "force": "unknown", "page": 1,
              "text": "Emergency accommodation at the reception centre."}]
    frame = pd.DataFrame(rows).assign(category="nrm", doc_id="d", p=0.9)
    frame["status"] = frame["status"].fillna("in_place")
    return frame


def test_evidence_clusters_into_named_themes_counted_by_force():
    table = themes(_evidence(), TAX, ThemeParams(passages_per_theme=4, max_themes=2))
    assert list(table.columns) == THEME_COLUMNS
    own = table[~table["national"]].set_index("theme")
    assert len(own) == 2 and set(own["n_forces"]) == {4}
    by_label = {r.label: r for r in own.itertuples()}
    intranet = next(r for label, r in by_label.items() if "intranet" in label)
    safety = next(r for label, r in by_label.items() if "reception" in label or
                  "accommodation" in label)
    assert set(intranet.passage_ids.split(";")) <= {"i0", "i1", "i2", "i3"}
    assert set(safety.passage_ids.split(";")) <= {"s0", "s1", "s2", "s3"}
    # One representative quote per force; the stated gap and the unknown force stay out.
    assert len(set(safety.quote_forces.split(";"))) == len(safety.quote_forces.split(";")) == 2
    assert "g0" not in ";".join(table["passage_ids"]) and "u0" not in ";".join(table["passage_ids"])
    national = table[table["national"]].iloc[0]
    assert national.passage_ids == "n0" and national.label == "national work"


def test_summary_sentences_carry_counts_and_examples(tmp_path):
    from pipeline.atomic import write_frame_csv

    table = themes(_evidence(), TAX, ThemeParams(passages_per_theme=4, max_themes=2))
    write_frame_csv(tmp_path / "themes.csv", table)
    again = read_themes_csv(tmp_path / "themes.csv")
    assert again["national"].tolist() == table["national"].tolist()
    summary = {"categories": {c: {"sentence": f"{c} lead.", "forces_stating_gap": []}
                              for c in TAX.labels}}
    summary["categories"]["nrm"]["forces_stating_gap"] = ["Essex"]
    drafted = {s["recommendation"]: s["sentences"] for s in
               action_summaries(again, summary, TAX, min_forces=2)}
    nrm = [s for s in drafted["2"] if s["category"] == "nrm"]
    themed = [s for s in nrm if s["examples"]]
    assert len(themed) == 2 and all(s["text"].startswith("4 forces described") for s in themed)
    assert all(ex["passage_id"] and ex["force"] in FORCES for s in themed for ex in s["examples"])
    assert nrm[-1]["text"] == "1 force states a gap in it: Essex."
    assert not any(s["examples"] for s in drafted["4"])  # no victim-support evidence here
    # A theme fewer forces share than min_forces is left out of the paragraph.
    assert not any(s["examples"] for s in
                   action_summaries(again, summary, TAX, min_forces=5)[0]["sentences"])


def test_national_work_is_told_from_the_force_s_own_voice():
    from dataclasses import replace

    from pipeline.themes import is_national

    tax = load_taxonomy()
    assert is_national("The NPCC lead chairs a national programme board.", tax)
    assert is_national("The College of Policing published new guidance.", tax)
    assert not is_national("We adopted the College of Policing guidance in June.", tax)
    assert not is_national("The force has adopted the Home Office guidance.", tax)
    assert not is_national("Officers refer victims through the NRM.", tax)
    assert not is_national("The NPCC lead chairs a board.", replace(tax, national_cues=()))


def test_a_large_category_is_fitted_on_a_draw_and_every_passage_joins_a_theme():
    import numpy as np
    import pytest

    from pipeline.themes import fit_rows

    forces = ["Kent", "Essex", "Surrey", "Dorset", "Devon and Cornwall"]
    rows = [{"passage_id": f"{kind}{i}", "force": forces[i % 5], "page": i + 1,
             "text": texts[i % 4], "status": "in_place"}
            for i in range(30) for kind, texts in (("i", INTRANET), ("s", SAFETY))]
    evidence = pd.DataFrame(rows).assign(category="nrm", doc_id="d", p=0.9)
    params = ThemeParams(passages_per_theme=4, max_themes=2, fit_passages=12)
    drawn = fit_rows(60, params)
    assert len(drawn) == 12 and len(set(drawn)) == 12 and list(drawn) == sorted(drawn)
    assert np.array_equal(drawn, fit_rows(60, params))  # seeded: the same draw every run
    assert np.array_equal(fit_rows(12, params), np.arange(12))  # all rows when few enough
    table = themes(evidence, TAX, params)
    assert len(table) == 2 and table["n_passages"].sum() == 60  # the 48 not drawn too
    for r in table.itertuples():
        assert len({p[0] for p in r.passage_ids.split(";")}) == 1  # quotes of one kind
        assert r.n_forces == 5 and r.n_passages == 30
    with pytest.raises(ValueError, match="fit_passages"):
        ThemeParams(fit_passages=3)


def test_passages_are_assigned_the_same_whatever_the_chunk():
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    from pipeline.themes import _assign_in_chunks

    texts = (INTRANET + SAFETY) * 5
    counter = CountVectorizer().fit(texts[:8])
    weigh = TfidfTransformer().fit(counter.transform(texts[:8]))
    kmeans = KMeans(n_clusters=2, n_init=3, random_state=0).fit(
        weigh.transform(counter.transform(texts[:8])))
    whole = _assign_in_chunks(texts, counter, weigh, kmeans, kmeans.cluster_centers_)
    chunked = _assign_in_chunks(texts, counter, weigh, kmeans, kmeans.cluster_centers_,
                                chunk=7)
    for a, b in zip(whole, chunked, strict=True):
        assert np.allclose(a, b)
    clusters, per_class, nearness = whole
    assert len(set(clusters[:4])) == 1 and len(set(clusters[4:8])) == 1
    assert clusters[0] != clusters[4] and (nearness > 0).all()
    assert per_class.sum() == counter.transform(texts).sum()  # every passage's words counted


def test_a_draw_too_small_to_split_is_one_theme_holding_every_passage():
    rows = [{"passage_id": f"i{i}", "force": f"F{i}", "page": 1, "text": INTRANET[i % 4],
             "status": "in_place"} for i in range(20)]
    evidence = pd.DataFrame(rows).assign(category="nrm", doc_id="d", p=0.9)
    table = themes(evidence, TAX, ThemeParams(passages_per_theme=4, fit_passages=6))
    assert len(table) == 1 and table["n_passages"].iloc[0] == 20
    assert table["n_forces"].iloc[0] == 20 and len(table["quote_forces"].iloc[0].split(";")) == 2


def test_repeated_paragraphs_make_no_more_themes_than_distinct_texts():
    # Forces that paste the same two paragraphs (figures aside) into every response: two
    # distinct points, however many passages, so two themes at most and no k-means warning.
    import warnings

    rows = [{"passage_id": f"r{i}", "force": FORCES[i % 4], "page": 1,
             "text": (INTRANET[0] if i % 2 else SAFETY[0]) + f" Reference {i}."}
            for i in range(40)]
    evidence = pd.DataFrame(rows).assign(category="nrm", doc_id="d", p=0.9, status="in_place")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's ConvergenceWarning would fail the test
        table = themes(evidence, TAX, ThemeParams(passages_per_theme=4, max_themes=6))
    own = table[~table["national"]]
    assert len(own) == 2 and own["n_passages"].sum() == 40


def test_distinct_rows_counts_rows_not_entries():
    from scipy.sparse import csr_matrix

    from pipeline.themes import distinct_rows

    X = csr_matrix([[1.0, 0, 2.0], [1.0, 0, 2.0], [0, 1.0, 0], [0, 0, 0]])
    assert distinct_rows(X) == 3
    assert distinct_rows(csr_matrix((0, 3))) == 1
