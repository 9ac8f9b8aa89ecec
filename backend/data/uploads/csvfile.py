"""A text dataset uploaded as CSV with `text` and `label` columns."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import UploadError, UploadLimits


def load_text_csv(
    path: str | Path, max_rows: int = UploadLimits.max_csv_rows
) -> tuple[list[str], list[int], list[str]]:
    """(texts, label indices, class names) of a CSV with `text` and `label` columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=_csv_delimiter(fh.readline()))
            fh.seek(0)
            header = next(reader, None)
            if not header:
                raise UploadError("The CSV is empty; it needs a header row with 'text' and 'label' columns.")
            columns = {h.strip().lower(): i for i, h in enumerate(header)}
            missing = [c for c in ("text", "label") if c not in columns]
            if missing:
                raise UploadError(
                    f"The CSV has no {' or '.join(repr(m) for m in missing)} column; "
                    f"found columns {[h.strip() for h in header]}."
                )
            texts, raw = _csv_rows(reader, columns["text"], columns["label"], max_rows)
    except UnicodeDecodeError:
        raise UploadError("The CSV is not UTF-8 text.") from None
    except csv.Error as exc:
        raise UploadError(f"The CSV cannot be parsed: {exc}.") from None
    class_names = _class_names(raw)
    index = {name: i for i, name in enumerate(class_names)}
    return texts, [index[r] for r in raw], class_names


def _csv_delimiter(header_line: str) -> str:
    """Comma, semicolon or tab: whichever the header line uses."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _csv_rows(reader: Iterator[list[str]], text_col: int, label_col: int, max_rows: int) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(text_col, label_col):
            raise UploadError(f"CSV line {line_no} has {len(row)} field(s); the text and label columns are missing.")
        text, label = row[text_col].strip(), row[label_col].strip()
        if not text or not label:
            raise UploadError(f"CSV line {line_no} has an empty {'text' if not text else 'label'}.")
        texts.append(text)
        labels.append(label)
        if len(texts) > max_rows:
            raise UploadError(f"The CSV has more than {max_rows} rows.")
    if not texts:
        raise UploadError("The CSV has a header but no data rows.")
    return texts, labels


def _class_names(raw_labels: list[str]) -> list[str]:
    """Sorted distinct labels (numerically when they are all integers); at least two."""
    distinct = set(raw_labels)
    if len(distinct) < 2:
        raise UploadError(f"The data has only one class ({next(iter(distinct))!r}); at least two are needed.")
    if all(re.fullmatch(r"[+-]?\d+", d) for d in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _inspect_csv(path: Path, limits: UploadLimits) -> dict[str, Any]:
    texts, labels, names = load_text_csv(path, limits.max_csv_rows)
    counts = Counter(labels)
    return {
        "kind": "csv",
        "use_as": "dataset",
        "family": "text",
        "rows": len(texts),
        "classes": len(names),
        "class_names": names[:100],
        "rows_per_class": {names[i]: counts[i] for i in sorted(counts)[:100]},
    }
