"""HashedNgramEmbedder: the offline embedding model. Character 3-5-grams of
each text (within word boundaries) hashed into a signed vector of the asked
length and L2-normalised, by scikit-learn's HashingVectorizer: deterministic,
needs no model file and no key. It is lexical, not semantic — texts that
share spelling are close, synonyms are not — and its catalog entry says so."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")


@lru_cache(maxsize=32)
def _vectorizer(dimensions: int) -> Any:
    # Imported on the first embedding asked for: scikit-learn and SciPy
    # weigh about 90 MB in every llm_gateway that never embeds.
    from sklearn.feature_extraction.text import HashingVectorizer  # noqa: PLC0415

    return HashingVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), n_features=dimensions, alternate_sign=True, norm="l2", lowercase=True
    )


def embed_texts(texts: list[str], dimensions: int) -> tuple[list[list[float]], int]:
    """One unit-length vector per text (all zeros for a text with no
    characters), and the inputs' token count."""
    matrix = _vectorizer(dimensions).transform(texts).toarray()
    tokens = sum(len(_TOKEN.findall(text)) for text in texts)
    return [row.tolist() for row in matrix], tokens


def tokens_as_text(ids: list[int]) -> str:
    """An input given as token ids, as words the embedder can hash."""
    return " ".join(f"t{n}" for n in ids)
