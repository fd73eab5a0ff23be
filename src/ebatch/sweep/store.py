"""A sweep's results: ``DIR/results.parquet``, a folder of Parquet part files that grows as runs finish.

Life cycle::

    store = ResultStore("out/results.parquet")      # creates the folder; heals a half-finished rewrite
    done = store.config_hashes()                    # the runs already there (resume skips them)
    store.declare(config.columns() for config in configs)   # column types of the whole sweep
    store.append([result.row() for result in batch])        # one part file per batch, written atomically
    pandas.read_parquet("out/results.parquet")      # every row so far, one per run

Every part file has the same schema, so pandas and pyarrow read the folder as one table. Column types
come from all the values a column takes in the sweep (declared before the first run) and, for the summary
columns, from the first batch: whole numbers as int64, numbers as float64, true/false as bool, text as
string; a column that mixes kinds (``timesteps`` 8 and ``"auto"``) is stored as text. A resumed sweep that
adds columns or widens a type (int64 to float64, all-null to a type) rewrites the earlier parts to the
new schema; one that would turn a numeric column into text is refused with a one-line ``ValueError``.
A part is written under a hidden temporary name and renamed, so a killed sweep leaves only whole parts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ResultStore", "arrow_type"]

_PART = "part-{:06d}.parquet"


def arrow_type(kinds: set[type]) -> pa.DataType:
    """The column type for values of these Python types (``None`` left out)."""
    if not kinds:
        return pa.null()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _kinds(rows: Iterable[dict]) -> dict[str, set[type]]:
    """The Python types of each column's values; a column first seen in a later row is placed after the
    column that precedes it in that row (so ``param_timesteps`` sits with the other parameters)."""
    kinds: dict[str, set[type]] = {}
    order: list[str] = []
    for row in rows:
        previous = None
        for key, value in row.items():
            if key not in kinds:
                kinds[key] = set()
                order.insert(order.index(previous) + 1 if previous is not None else len(order), key)
            if value is not None:
                kinds[key].add(type(value))
            previous = key
    return {key: kinds[key] for key in order}


def _column(values: list, kind: pa.DataType) -> pa.Array:
    if pa.types.is_string(kind):
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=kind)


class ResultStore:
    """The part files under ``path`` (created if missing). Raises ``ValueError`` when ``path`` cannot be
    created or holds parts that cannot share one schema."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"out: cannot create {str(self.path)!r} ({exc.strerror or exc})") from None
        for stale in self.path.glob(".part-*.tmp"):  # a part a killed sweep was writing
            stale.unlink()
        self.declared: dict[str, pa.DataType] = {}
        self.schema: pa.Schema | None = None
        self._settle(None)

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def config_hashes(self) -> set[str]:
        """The ``config_hash`` of every stored run."""
        done: set[str] = set()
        for part in self.parts():
            done.update(pq.read_table(part, columns=["config_hash"]).column(0).to_pylist())
        return done

    def declare(self, rows: Iterable[dict]) -> None:
        """Fix the types of the columns these rows have, from every value they take (the whole sweep);
        raises ``ValueError`` when the stored runs cannot take them."""
        self.declared = {key: arrow_type(kinds) for key, kinds in _kinds(rows).items()}
        if self.schema is not None:  # stored runs: settle the types now, before anything runs
            self._settle(pa.schema([pa.field(key, kind) for key, kind in self.declared.items()]))

    def append(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` as one new part file; returns its path (``None`` for no rows)."""
        if not rows:
            return None
        if self.schema is None or any(key not in self.schema.names for key in rows[0]):
            found = {key: arrow_type(kinds) for key, kinds in _kinds(rows).items()}
            types = {**self.declared, **{k: v for k, v in found.items() if k not in self.declared}}
            self._settle(pa.schema([pa.field(key, kind) for key, kind in types.items()]))
        table = pa.table({f.name: _column([row.get(f.name) for row in rows], f.type) for f in self.schema})
        numbers = [int(p.name[len("part-"):-len(".parquet")]) for p in self.parts()]
        path = self.path / _PART.format(max(numbers, default=-1) + 1)
        self._write(table, path)
        return path

    def _write(self, table: pa.Table, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, temporary)
        os.replace(temporary, path)

    def _settle(self, new: pa.Schema | None) -> None:
        """Make every part (and later ones) share one schema: the parts' and ``new``'s, unified."""
        parts = self.parts()
        schemas = [pq.read_schema(p) for p in parts] + ([new] if new is not None else [])
        if not schemas:
            return
        try:
            unified = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            raise ValueError(f"results: {str(self.path)!r} holds runs whose columns cannot take this sweep's "
                             f"values ({' '.join(str(exc).split())}); write this sweep to a new --out") from None
        for part, schema in zip(parts, schemas):
            if not schema.equals(unified):
                table = pq.read_table(part)
                columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
                           else pa.nulls(table.num_rows, f.type) for f in unified]
                self._write(pa.table(columns, schema=unified), part)
        self.schema = unified
