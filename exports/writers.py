"""Rows into a file, batch by batch: what the page shows, as CSV or as JSON.

CSV is the console's own (``integrations.views._csv_lines``): UTF-8 with a byte
order mark (spreadsheet programs then read it as UTF-8), the csv module's
default dialect, cells as the page reads them (``cell_text``), and a cell that
would run as a formula made text. JSON is an array of one object per row with
the cells as stored (null, true/false, integers, text), as the API gives them.
"""
from __future__ import annotations

import csv
import json
from typing import IO, Protocol

from integrations.kinds.cells import Cell, cell_text
from integrations.views import _csv_safe


class Writer(Protocol):
    def write(self, columns: list[str], rows: list[list[Cell]]) -> None: ...

    def close(self) -> None: ...


class CsvWriter:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.csv = csv.writer(handle)
        self.started = False

    def write(self, columns: list[str], rows: list[list[Cell]]) -> None:
        if not self.started:
            self.started = True
            self.handle.write("\ufeff")
            self.csv.writerow([_csv_safe(c) for c in columns])
        self.csv.writerows([_csv_safe(cell_text(v)) for v in row] for row in rows)

    def close(self) -> None:
        if not self.started:
            self.handle.write("\ufeff")


class JsonWriter:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.keys: list[str] | None = None
        self.first = True

    def write(self, columns: list[str], rows: list[list[Cell]]) -> None:
        if self.keys is None:
            self.keys = object_keys(columns)
            self.handle.write("[")
        keys = self.keys
        self.handle.write("".join(
            ("\n" if i == 0 and self.first else ",\n") + json.dumps(dict(zip(keys, row)), ensure_ascii=False)
            for i, row in enumerate(rows)))
        if rows:
            self.first = False

    def close(self) -> None:
        self.handle.write(("[" if self.keys is None else "") + "\n]\n")


def object_keys(columns: list[str]) -> list[str]:
    """Column names as object keys; a repeated name (``select 1 a, 2 a``) gets ``_2``, ``_3``…
    so that no value is lost to a later one."""
    keys: list[str] = []
    taken: set[str] = set()
    for name in columns:
        key, n = name, 1
        while key in taken:
            n += 1
            key = f"{name}_{n}"
        taken.add(key)
        keys.append(key)
    return keys


def writer_for(fmt: str, handle: IO[str]) -> Writer:
    return JsonWriter(handle) if fmt == "json" else CsvWriter(handle)
