"""Shared paths and helpers for the test suite."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
CORPUS = Path(os.environ.get("RPCINSPECT_CORPUS", REPO.parent / "shared" / "corpus"))

sys.path.insert(0, str(Path(__file__).resolve().parent))


def lab_captures() -> list[Path]:
    """The project's own recorded captures."""
    return sorted(CAPTURES.glob("*.pcap*"))


def corpus_captures() -> list[Path]:
    """Captures listed in ../shared/corpus/MANIFEST.tsv (empty when the corpus is absent)."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [CORPUS / r["local_file"] for r in rows if (CORPUS / r["local_file"]).is_file()]


def capture_id(p: Path) -> str:
    """Stable short id of a capture for test ids and the known-differences file."""
    try:
        return str(p.relative_to(CORPUS))
    except ValueError:
        return str(p.relative_to(REPO))


def require_corpus() -> None:
    if not corpus_captures():
        pytest.skip(f"public corpus not found at {CORPUS} (set RPCINSPECT_CORPUS)")
