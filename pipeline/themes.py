"""Themes per category, drafted in the NPCC's manner: what forces described under each
recommendation, how many forces, and examples with force and page.

For each category, the forces' own evidence (stated gaps and passages about national work
left out: they are reported apart) is clustered by what it says, and each cluster becomes a
theme:

1. word counts (one and two words, English stop words left out, so themes are named by
   what they are about) are weighted by TF-IDF and clustered with k-means (a fixed seed),
   k growing with the evidence up to ``themes.max_themes``
   and never above the number of distinct passages. A category with more evidence
   than ``themes.fit_passages`` has its vocabulary, weights and clusters fitted on a seeded
   draw of that many passages, and every passage is then put in its nearest cluster, a
   chunk at a time, so that the cost of a large batch (the vocabulary of every word pair,
   k-means ten times over, a matrix of every passage) stays bounded. (k-means themes are
   not stable anyway: on the labelled corpus, a fit on a draw of 500 or 1,000 passages
   agrees with the full fit about as well as the full fit agrees with itself under another
   seed);
2. a theme is named by its most distinctive terms, by class-based TF-IDF (term frequency in
   the theme against its frequency over all themes, as BERTopic does);
3. its representative quotes are the passages nearest its centre (the mean of its passages;
   for a category fitted on a draw, the k-means centre), one per force.

Passages about national work (the taxonomy's ``national_cues``, with none of its
``own_voice_cues``) are kept apart, as are stated gaps (:func:`pipeline.coverage.stated_gaps`).

Columns of :func:`themes`: category, theme (1, 2, ... by number of forces), label, n_forces,
forces (";"-joined), n_passages, passage_ids, pages and quote_forces (of the representative
quotes, ";"-joined, nearest first), national (True for the category's national-work row).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

from .config import ThemeParams
from .taxonomy import Taxonomy, cue_pattern

if TYPE_CHECKING:
    from .coverage import NationalSummary


class ThemeRow(TypedDict):
    """One row of themes.csv (:data:`THEME_COLUMNS`; ``theme`` is numbered when the table
    is put together)."""

    category: str
    label: str
    n_forces: int
    forces: str
    n_passages: int
    passage_ids: str
    pages: str
    quote_forces: str
    national: bool
    theme: NotRequired[int]


class SummaryExample(TypedDict):
    """A quote a drafted sentence cites; the report adds the ``anchor`` it links to."""

    passage_id: str
    page: str
    force: str
    anchor: NotRequired[str]


class SummarySentence(TypedDict):
    """One sentence of a "Summary of forces' action", with its count in the text."""

    text: str
    category: str
    examples: list[SummaryExample]
    forces: NotRequired[list[str]]


class ActionSummary(TypedDict):
    """The drafted summary of one recommendation: its sentences, and the same sentences
    grouped into one paragraph per category."""

    recommendation: str
    sentences: list[SummarySentence]
    paragraphs: list[list[SummarySentence]]

THEME_COLUMNS = ["category", "theme", "label", "n_forces", "forces", "n_passages",
                 "passage_ids", "pages", "quote_forces", "national"]


def is_national(text: str, taxonomy: Taxonomy) -> bool:
    """A passage about national work, in no voice of the force's own."""
    national = cue_pattern(taxonomy.national_cues)
    if national is None or not national.search(text):
        return False
    own = cue_pattern(taxonomy.own_voice_cues)
    return own is None or not own.search(text)


def _labels(per_class: np.ndarray, terms: np.ndarray, n_terms: int) -> list[str]:
    """Each cluster's most distinctive terms by class-based TF-IDF, from its term counts
    (``per_class``, k x terms); a word already inside a chosen phrase is skipped."""
    k = per_class.shape[0]
    tf = per_class / np.maximum(per_class.sum(axis=1, keepdims=True), 1)
    avg_words = per_class.sum() / k
    idf = np.log(1 + avg_words / np.maximum(per_class.sum(axis=0), 1))
    weights = tf * idf
    out = []
    for c in range(k):
        chosen: list[str] = []
        for j in np.argsort(-weights[c]):
            term = str(terms[j])
            if weights[c, j] <= 0 or len(chosen) == n_terms:
                break
            if any(term in t.split() or t in term for t in chosen):
                continue
            chosen.append(term)
        out.append(", ".join(chosen))
    return out


def stop_words(taxonomy: Taxonomy) -> list[str]:
    """English stop words, the taxonomy's ``theme_stop_words`` (words every passage of the
    domain shares: "modern", "slavery", "victims") and the words of force names: none of
    them tells one theme from another."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from .forces import territorial_forces

    names = {w.lower() for f in territorial_forces() for w in re.findall(r"[A-Za-z]+", f)}
    return sorted(set(ENGLISH_STOP_WORDS) | set(taxonomy.theme_stop_words) | names)


def fit_rows(n: int, params: ThemeParams) -> np.ndarray:
    """The rows a category's themes are fitted on: all ``n``, or, past
    ``params.fit_passages``, a draw of that many (seeded by ``params.seed``, in row order)."""
    if n <= params.fit_passages:
        return np.arange(n)
    return np.sort(np.random.default_rng(params.seed).choice(n, params.fit_passages,
                                                             replace=False))


def _category_themes(ev: pd.DataFrame, category: str, params: ThemeParams,
                     stop: list[str]) -> list[ThemeRow]:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    # Terms in at least two passages: a theme is named by what passages share.
    counter = CountVectorizer(ngram_range=(1, 2), stop_words=stop, min_df=2,
                              token_pattern=r"(?u)\b[A-Za-z][A-Za-z0-9-]+\b")
    texts = ev["text"].tolist()
    fit = fit_rows(len(texts), params)
    try:
        counts = counter.fit_transform([texts[i] for i in fit])
    except ValueError:  # nothing but stop words
        return []
    weigh = TfidfTransformer(sublinear_tf=True).fit(counts)
    X = weigh.transform(counts)
    # No more themes than distinct passages: a batch whose forces reuse the same paragraphs
    # (or that differ only in figures) has fewer distinct points than passages, and k-means
    # asked for more clusters than that only repeats itself (with a warning on the terminal).
    k = int(min(params.max_themes, max(1, len(fit) // params.passages_per_theme),
                distinct_rows(X)))
    kmeans = (KMeans(n_clusters=k, n_init=10, random_state=params.seed).fit(X)
              if k > 1 else None)
    if len(fit) == len(texts):
        clusters = kmeans.labels_ if kmeans is not None else np.zeros(len(texts), dtype=int)
        per_class = _class_sums(counts, clusters, k)
        nearness = np.zeros(len(texts))
        for c in range(k):  # nearness to the mean of the theme's passages
            inside = clusters == c
            if inside.any():  # k-means may leave a cluster empty where passages repeat
                centre = np.asarray(X[inside].mean(axis=0)).ravel()
                nearness[inside] = np.asarray(X[inside] @ centre).ravel()
    else:
        # One theme (a draw too small to split): its centre is the draw's mean.
        centres = (kmeans.cluster_centers_ if kmeans is not None
                   else np.asarray(X.mean(axis=0)))
        clusters, per_class, nearness = _assign_in_chunks(texts, counter, weigh, kmeans,
                                                          centres)
    labels = _labels(per_class, counter.get_feature_names_out(), params.label_terms)
    rows: list[ThemeRow] = []
    for c in range(k):
        members = ev[clusters == c]
        if members.empty:
            continue
        quotes = members.assign(_near=nearness[clusters == c]).sort_values(
            "_near", ascending=False)
        quotes = quotes.drop_duplicates("force").head(params.quotes)
        forces = sorted(set(members["force"]))
        rows.append({"category": category, "label": labels[c], "n_forces": len(forces),
                     "forces": ";".join(forces), "n_passages": int(len(members)),
                     "passage_ids": ";".join(quotes["passage_id"]),
                     "pages": ";".join(str(int(p)) for p in quotes["page"]),
                     "quote_forces": ";".join(quotes["force"]), "national": False})
    return rows


def distinct_rows(X: Any) -> int:
    """How many different rows a sparse matrix has (at least 1)."""
    X = X.tocsr()
    X.sort_indices()
    rows = {(X.indices[a:b].tobytes(), X.data[a:b].tobytes())
            for a, b in zip(X.indptr[:-1], X.indptr[1:], strict=True)}
    return max(1, len(rows))


def _class_sums(counts: Any, clusters: np.ndarray, k: int) -> np.ndarray:
    """Each theme's term counts, summed over its passages (k x terms)."""
    return np.vstack([np.asarray(counts[clusters == c].sum(axis=0)).ravel() for c in range(k)])


def _assign_in_chunks(texts: list[str], counter: Any, weigh: Any, kmeans: Any,
                      centres: np.ndarray, chunk: int = 5000
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every passage of a category fitted on a draw (:func:`fit_rows`): its theme (the
    nearest k-means centre; the only one without ``kmeans``), the themes' term counts, and
    each passage's nearness to its theme's centre (``centres``, one row per theme),
    ``chunk`` passages at a time, so that no matrix of the whole category is ever held."""
    k = len(centres)
    clusters = np.zeros(len(texts), dtype=int)
    nearness = np.zeros(len(texts))
    per_class = np.zeros((k, len(counter.vocabulary_)))
    for start in range(0, len(texts), chunk):
        counts = counter.transform(texts[start:start + chunk])
        X = weigh.transform(counts)
        part = kmeans.predict(X) if kmeans is not None else np.zeros(X.shape[0], dtype=int)
        clusters[start:start + len(part)] = part
        nearness[start:start + len(part)] = np.asarray(
            X.multiply(centres[part]).sum(axis=1)).ravel()
        per_class += _class_sums(counts, part, k)
    return clusters, per_class, nearness


def national_rows(evidence: pd.DataFrame, taxonomy: Taxonomy) -> pd.Series:
    """Whether each evidence row is about national work (:func:`is_national`)."""
    return pd.Series([is_national(str(t), taxonomy) for t in evidence["text"]],
                     index=evidence.index, dtype=bool)


def themes(evidence: pd.DataFrame, taxonomy: Taxonomy, params: ThemeParams,
           national: pd.Series | None = None) -> pd.DataFrame:
    """Themes of every category's evidence across forces (columns: module docstring).
    ``national``, when given, is :func:`national_rows` of ``evidence`` (worked out batch by
    batch while documents are read)."""
    rows: list[ThemeRow] = []
    if evidence.empty:
        return pd.DataFrame(columns=THEME_COLUMNS)
    own = evidence[(evidence["force"] != "unknown")
                   & (evidence.get("status", pd.Series("", index=evidence.index)) != "gap")]
    national = (national_rows(own, taxonomy) if national is None
                else national.loc[own.index])
    stop = stop_words(taxonomy)
    for cat in taxonomy.labels:
        ev = own[(own["category"] == cat) & ~national].drop_duplicates("passage_id")
        found = sorted(_category_themes(ev, cat, params, stop) if len(ev) else [],
                       key=lambda r: (-r["n_forces"], -r["n_passages"]))
        rows += [{**r, "theme": i + 1} for i, r in enumerate(found)]
        nat = own[(own["category"] == cat) & national].drop_duplicates("passage_id")
        if len(nat):
            forces = sorted(set(nat["force"]))
            rows.append({"category": cat, "theme": len(found) + 1, "label": "national work",
                         "n_forces": len(forces), "forces": ";".join(forces),
                         "n_passages": int(len(nat)),
                         "passage_ids": ";".join(nat["passage_id"].head(params.quotes)),
                         "pages": ";".join(str(int(p)) for p in nat["page"].head(params.quotes)),
                         "quote_forces": ";".join(nat["force"].head(params.quotes)),
                         "national": True})
    return pd.DataFrame(rows, columns=THEME_COLUMNS)


def read_themes_csv(path: Any) -> pd.DataFrame:
    """themes.csv read back as :func:`themes` wrote it."""
    frame = pd.read_csv(path, dtype={"passage_ids": str, "pages": str, "quote_forces": str,
                                     "forces": str, "label": str}, keep_default_na=False)
    frame["national"] = frame["national"].astype(str).str.lower() == "true"
    return frame


def action_summaries(theme_table: pd.DataFrame, summary: NationalSummary,
                     taxonomy: Taxonomy, *, min_forces: int) -> list[ActionSummary]:
    """A "Summary of forces' action" per recommendation: a lead sentence per category with
    its count, then one sentence per theme that at least ``min_forces`` forces share, each
    with its count and the passage ids of its examples (the report links them). Each item
    has ``sentences`` and the same sentences as ``paragraphs``, one list per category."""
    out: list[ActionSummary] = []
    for rec in dict.fromkeys(c.recommendation for c in taxonomy.categories):
        sentences: list[SummarySentence] = []
        for c in (c for c in taxonomy.categories if c.recommendation == rec):
            info = summary["categories"][c.id]
            sentences.append({"text": info["sentence"], "category": c.id, "examples": []})
            rows = theme_table[(theme_table["category"] == c.id) & ~theme_table["national"]
                               & (theme_table["n_forces"] >= min_forces)]
            for r in rows.itertuples(index=False):
                examples = zip(str(r.passage_ids).split(";"), str(r.pages).split(";"),
                               str(r.quote_forces).split(";"), strict=True)
                sentences.append({
                    "text": f"{r.n_forces} {'force' if r.n_forces == 1 else 'forces'} "
                            f"described “{r.label}”",
                    "category": c.id, "forces": str(r.forces).split(";"),
                    "examples": [{"passage_id": i, "page": p, "force": f}
                                 for i, p, f in examples]})
            gaps = info.get("forces_stating_gap") or []
            if gaps:
                verb = "force states" if len(gaps) == 1 else "forces state"
                sentences.append({"text": f"{len(gaps)} {verb} a gap in it: {', '.join(gaps)}.",
                                  "category": c.id, "examples": []})
        # The same sentences, one paragraph per category, for reading.
        paragraphs = [[x for x in sentences if x["category"] == c.id]
                      for c in taxonomy.categories if c.recommendation == rec]
        out.append({"recommendation": rec, "sentences": sentences, "paragraphs": paragraphs})
    return out
