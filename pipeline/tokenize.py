"""Stage `tokenize`: word-segment every labeled paragraph once, so retraining does not re-segment."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.config import PARAMS, PREPARED, TOKENS, load_params, section
from pipeline.model import segment_words
from pipeline.text import normalize


def segment_all(texts: list[str], progress: bool = False) -> pd.DataFrame:
    """Map each distinct normalised text to its word segmentation."""
    distinct = sorted({normalize(t) for t in texts})
    words = [segment_words(t) for t in tqdm(distinct, desc="tokenize", unit="para", disable=not progress)]
    return pd.DataFrame({"text": distinct, "words": words})


def main(params_path: Path = PARAMS) -> None:
    p = section(load_params(params_path), "tokenize")
    texts = pd.read_parquet(PREPARED, columns=["text"]).text.tolist() if p["words"] else []
    TOKENS.parent.mkdir(parents=True, exist_ok=True)
    segment_all(texts, progress=True).to_parquet(TOKENS, index=False)
    print(f"tokenize: {len(texts)} paragraphs word-segmented -> {TOKENS}")
