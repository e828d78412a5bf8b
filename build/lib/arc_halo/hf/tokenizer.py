"""Token texts by id, from the directory's tokenizer.json or vocab.txt."""

from __future__ import annotations

import json
from pathlib import Path


def vocabulary(directory: Path, size: int) -> list[str | None]:
    """Token texts by id from tokenizer.json or vocab.txt, where the directory has one (None elsewhere)."""
    texts: list[str | None] = [None] * size
    tokenizer = directory / "tokenizer.json"
    if tokenizer.is_file():
        vocab = json.loads(tokenizer.read_text()).get("model", {}).get("vocab") or {}
        pairs = vocab.items() if isinstance(vocab, dict) else ((entry[0], index) for index, entry in enumerate(vocab))
        for text, index in pairs:
            if 0 <= index < size:
                texts[index] = text
    elif (directory / "vocab.txt").is_file():
        for index, text in enumerate((directory / "vocab.txt").read_text().splitlines()[:size]):
            texts[index] = text
    return texts
