import random

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.classifiers.batchtfidf import BatchTfidf

FIT = [
    "Every NRM referral is checked by our SPOC before it goes to the Single Competent Authority.",
    "The PCC commissions a specialist advocacy service that supports survivors after the NRM.",
    "Custody sergeants must record whether the section 45 statutory defence was considered.",
    "Modern slavery crimes are allocated to PIP2 detectives in the dedicated team.",
    "Guidance for officers sits on the intranet page and in the app on every mobile device.",
    "We refer victims to the NRM, and the NRM team reviews every referral.",
]
# Awkward text: tabs and runs of spaces, accents, capitals, one-letter words, digits, a
# repeated text, an empty one, one with no vocabulary at all, odd Unicode and a NUL.
TRANSFORM = [
    "Recommendation 2(f): understand the NRM and the duty to notify.",
    "  Officers\tREFER  victims — naïve café, à la carte  ",
    "",
    "x",
    "NRM NRM NRM nrm",
    "We refer victims to the NRM, and the NRM team reviews every referral.",
    "We refer victims to the NRM, and the NRM team reviews every referral.",
    "zzz qqq",
    "İstanbul ǅ ϒ K Straße\x00 PIP2 45 a b c",
    "the the the team the team",
]


def _random_texts(n: int, seed: int = 3) -> list[str]:
    """Texts made of the fitted words in random order, so that vocabulary n-grams recur."""
    rng = random.Random(seed)
    words = " ".join(FIT).split() + ["a", "I", "zz", "–", "(b)", "Nrm,"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.mark.parametrize("settings", [
    {"ngram_range": (1, 2), "sublinear_tf": True},
    {"ngram_range": (1, 3), "binary": True},
    {"ngram_range": (2, 3), "use_idf": False, "norm": "l1"},
    {"ngram_range": (1, 1), "norm": None, "lowercase": False},
])
def test_word_ngrams_equal_scikit_learn_exactly(settings):
    vec = TfidfVectorizer(min_df=1, **settings).fit(FIT + _random_texts(30, seed=1))
    batch = BatchTfidf(vec)
    assert batch.mode == "word"
    texts = TRANSFORM + _random_texts(200)
    fast, slow = batch.transform(texts), vec.transform(texts)
    assert fast.shape == slow.shape
    assert abs(fast - slow).max() < 1e-12
    assert slow.nnz > 100  # the texts do share n-grams with the vocabulary


def test_character_ngrams_equal_scikit_learn_exactly_and_again_from_the_word_cache():
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                          min_df=1).fit(FIT)
    batch = BatchTfidf(vec)
    assert batch.mode == "char_wb"
    texts = TRANSFORM + _random_texts(100)
    slow = vec.transform(texts)
    for _ in range(2):  # the second pass reads every word's n-grams from the cache
        fast = batch.transform(texts)
        assert abs(fast - slow).max() < 1e-12
    assert slow.nnz > 100


@pytest.mark.parametrize("settings", [
    {"analyzer": "char", "ngram_range": (2, 4)},
    {"stop_words": ["the", "and"]},
    {"token_pattern": r"\b\w+\b"},
])
def test_other_settings_are_left_to_scikit_learn(settings):
    vec = TfidfVectorizer(min_df=1, **settings).fit(FIT)
    batch = BatchTfidf(vec)
    assert batch.mode == "sklearn"
    assert abs(batch.transform(TRANSFORM) - vec.transform(TRANSFORM)).max() < 1e-12


def test_empty_batches_and_batches_without_tokens_have_the_right_shape():
    vec = TfidfVectorizer(min_df=1).fit(FIT)
    batch = BatchTfidf(vec)
    assert batch.transform([]).shape == (0, len(vec.vocabulary_))
    blank = batch.transform(["", "a", "  "])
    assert blank.shape == (3, len(vec.vocabulary_)) and blank.nnz == 0
    assert np.array_equal(blank.toarray(), vec.transform(["", "a", "  "]).toarray())



def test_a_batch_too_short_for_every_n_gram_length_gives_empty_rows():
    vec = TfidfVectorizer(ngram_range=(2, 3), min_df=1).fit(FIT)
    batch = BatchTfidf(vec)
    assert batch.mode == "word"
    for texts in (["Officers"], ["refer", "", "x"]):
        fast = batch.transform(texts)
        assert fast.shape == (len(texts), len(vec.vocabulary_)) and fast.nnz == 0
        assert np.array_equal(fast.toarray(), vec.transform(texts).toarray())
