"""CSV annotation file -> multi-label dataset, in either of the two common layouts.

1. One-hot layout: the header is ``<file column>,<class 1>,...,<class C>``; each row is a file name
   and one value per class: 1 (present), 0 (absent) or -1 (ignored).
2. List layout: the header is exactly ``<file column>,labels``; the ``labels`` cell holds the
   present class names separated by ``delimiter`` (default ``";"``; use ``" "`` for space-separated
   names; empty pieces are dropped, so an empty cell is an all-negative image). Without ``classes``
   the columns are the sorted set of names found (sorted so the order does not depend on row order).

Fields are separated by ``sep`` (default ``,``) and parsed with the :mod:`csv` module, so quoted
fields may contain it. File names are relative to ``image_dir``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence

import torch

from .base import DatasetError, MultiLabelDataset

__all__ = ["CSVDataset"]


def _read_rows(csv_file: str, sep: str) -> tuple[list[str], list[list[str]]]:
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"CSV annotation file not found: {csv_file}")
    with open(csv_file, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter=sep) if r and any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetError(f"{csv_file} is empty (expected a header row)")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2:
        raise DatasetError(
            f"{csv_file}: header {header} needs a file-name column and at least one more column"
        )
    return header, rows[1:]


class CSVDataset(MultiLabelDataset):
    """Multi-label dataset from a CSV file (see the module docstring for the two layouts).

    Args:
        csv_file: the annotation file.
        image_dir: directory the file names are relative to.
        transform: applied to the uint8 ``(3, H, W)`` image.
        classes: expected class names, in the column order wanted. One-hot layout: the header's
            class columns must be exactly these names (any order; columns are reordered), else an
            error lists the missing and unexpected ones. List layout: a name outside ``classes`` is
            an error naming it and its row.
        delimiter: separator of class names inside the ``labels`` cell (list layout only).
        sep: CSV field separator.
        skip_bad_images: see :class:`~lcnet_fast.data.base.MultiLabelDataset`.
        label_errors: when a list, a row with an unknown class name or a bad label value is not an
            error: a message naming the file, line and image is appended and the name or value is
            ignored (how ``python -m lcnet_fast.data check`` lists every such row).
    """

    def __init__(
        self,
        csv_file: str,
        image_dir: str,
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
        delimiter: str = ";",
        sep: str = ",",
        skip_bad_images: bool = False,
        label_errors: list[str] | None = None,
    ) -> None:
        header, rows = _read_rows(csv_file, sep)
        if not rows:
            raise DatasetError(f"{csv_file} contains no images (only a header)")
        for n, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise DatasetError(
                    f"{csv_file} line {n}: {len(row)} fields, the header has {len(header)}"
                )
        files = [row[0].strip() for row in rows]
        if header[1:] == ["labels"]:
            classes, labels = self._list_layout(csv_file, rows, classes, delimiter, label_errors)
        else:
            classes, labels = self._onehot_layout(csv_file, header, rows, classes, label_errors)
        paths = [os.path.join(image_dir, f) for f in files]
        super().__init__(paths, labels, classes, transform, skip_bad_images, name=f"CSV {csv_file}")

    @staticmethod
    def _list_layout(csv_file, rows, classes, delimiter, label_errors=None):
        def split(cell: str) -> list[str]:
            pieces = cell.split() if delimiter == " " else cell.split(delimiter)
            return [p.strip() for p in pieces if p.strip()]

        names = [split(row[1]) for row in rows]
        if classes is None:
            classes = sorted({name for row in names for name in row})
            if not classes:
                raise DatasetError(
                    f"{csv_file}: no class name appears in the 'labels' column; pass classes="
                )
        classes = list(classes)
        column = {c: j for j, c in enumerate(classes)}
        labels = torch.zeros(len(rows), len(classes), dtype=torch.int8)
        for r, row in enumerate(names):
            for name in row:
                if name not in column:
                    message = (
                        f"{csv_file} line {r + 2} ({rows[r][0].strip()}): unknown class name "
                        f"{name!r}; classes are {classes}"
                    )
                    if label_errors is None:
                        raise DatasetError(message)
                    label_errors.append(message)
                    continue
                labels[r, column[name]] = 1
        return classes, labels

    @staticmethod
    def _onehot_layout(csv_file, header, rows, classes, label_errors=None):
        columns = header[1:]
        if len(set(columns)) != len(columns):
            raise DatasetError(f"{csv_file}: duplicate class columns in header {columns}")
        if classes is None:
            classes = columns
        classes = list(classes)
        missing = [c for c in classes if c not in columns]
        extra = [c for c in columns if c not in classes]
        if missing or extra:
            raise DatasetError(
                f"{csv_file}: class columns disagree with the given classes: missing columns "
                f"{missing}, unexpected columns {extra}"
            )
        order = [columns.index(c) + 1 for c in classes]
        labels = torch.zeros(len(rows), len(classes), dtype=torch.int8)
        for r, row in enumerate(rows):
            for j, k in enumerate(order):
                cell = row[k].strip()
                if cell not in ("1", "0", "-1"):
                    message = (
                        f"{csv_file} line {r + 2}, column {header[k]!r} ({row[0].strip()}): "
                        f"value {cell!r} is not 1, 0 or -1"
                    )
                    if label_errors is None:
                        raise DatasetError(message)
                    label_errors.append(message)
                    continue
                labels[r, j] = int(cell)
        return classes, labels
