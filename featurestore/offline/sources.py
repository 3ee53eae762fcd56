"""The Parquet sources of feature views: where their files are, their schemas and sizes.

Used by the engine (plain sources) and by batch-transformed sources alike, on the engine's
DuckDB database. Paths resolve against the feature repo; a source is a file, a directory
(every ``*.parquet`` below it) or a glob.

A view's rows are its source files, sorted by path, then its push log files in push order
(:mod:`featurestore.offline.push_log`, DESIGN G8): :meth:`Sources.pattern` gives every reader
that one list, so file ranks put pushed rows after source rows in the total order. A source
glob or directory never reads push log files, whatever it covers.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from featurestore.errors import SourceError
from featurestore.offline.push_log import PUSH_LOG_DIR, PushLog
from featurestore.offline.sql import SourceColumns
from featurestore.types import Array, DType, ScalarType, dtype_from_arrow

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.definitions import FeatureView

__all__ = ["SourceFiles", "Sources"]


@dataclass(frozen=True)
class SourceFiles:
    """A view's source as read now: its pattern, schema, column types and files.

    Attributes:
        pattern: The ``read_parquet`` pattern, or its list of files when the view has push
            files (or the pattern covers the push log).
        schema: The Arrow schema of the files (source column names).
        columns: The DuckDB type of each source column.
        files: The files ``read_parquet(pattern)`` reads: source files sorted by path, then
            push files in push order (their rank is the file component of the order "newer").
    """

    pattern: str | list[str]
    schema: pa.Schema
    columns: SourceColumns
    files: list[str]


class Sources:
    """The sources of one offline engine.

    Args:
        connect: A new DuckDB session on the engine's database.
        repo_root: The feature repo; relative source paths resolve against it.
        push_log: The repo's push log (default: ``<repo_root>/push_log``).
    """

    def __init__(
        self,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        repo_root: Path,
        push_log: PushLog | None = None,
    ) -> None:
        self._connect = connect
        self.repo_root = repo_root
        self.push_log = push_log if push_log is not None else PushLog(repo_root / PUSH_LOG_DIR)
        """Where pushed rows are kept, read after the source files."""

    def pattern(self, view: FeatureView) -> str | list[str]:
        """What ``read_parquet`` reads for a view: its source files, then its push files.

        The source's own pattern when the view has no push file and the pattern cannot
        cover the push log; otherwise the list of files in rank order.

        Raises:
            SourceError: The path does not exist or the glob matches no file.
        """
        base = self.source_pattern(view)
        pushed = self.push_log.files(view.name)
        if not pushed and not self._covers_push_log(base):
            return base
        return [*self._source_files(view, base), *pushed]

    def _covers_push_log(self, pattern: str) -> bool:
        """Whether a source glob may match files inside the push log."""
        if not glob.has_magic(pattern):
            return False
        parts = Path(pattern).parts
        fixed = Path(*parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))])
        root = self.push_log.root
        return root == fixed or fixed in root.parents

    def _source_files(self, view: FeatureView, pattern: str) -> list[str]:
        """The source's files sorted by path, without push log files.

        Raises:
            SourceError: Only push log files match the source's glob.
        """
        files = [f for f in self._files(view, pattern) if not self.push_log.contains(f)]
        if not files:
            msg = (
                f"Source of feature view '{view.name}': '{pattern}' matches only push log "
                "files. Write the source's Parquet files or fix ParquetSource(path=...)."
            )
            raise SourceError(msg)
        return files

    def source_pattern(self, view: FeatureView) -> str:
        """The ``read_parquet`` pattern of a view's source files alone, checked to match files.

        Raises:
            SourceError: The path does not exist or the glob matches no file.
        """
        raw = Path(view.source.path)
        path = raw if raw.is_absolute() else self.repo_root / raw
        text = str(path)
        if glob.has_magic(text):
            if not glob.glob(text, recursive=True):  # noqa: PTH207 (absolute patterns)
                msg = (
                    f"Source of feature view '{view.name}': glob '{text}' matches no file. "
                    "Write the Parquet files or fix ParquetSource(path=...)."
                )
                raise SourceError(msg)
            return text
        if path.is_dir():
            if not any(path.rglob("*.parquet")):
                msg = (
                    f"Source of feature view '{view.name}': directory '{path}' holds no "
                    "*.parquet file. Write the files or fix ParquetSource(path=...)."
                )
                raise SourceError(msg)
            return str(path / "**" / "*.parquet")
        if not path.exists():
            msg = (
                f"Source of feature view '{view.name}': '{path}' does not exist. Write the "
                "Parquet file or fix ParquetSource(path=...) (relative paths are relative to "
                "the feature repo)."
            )
            raise SourceError(msg)
        return text

    def read(self, view: FeatureView, *, check: bool = True) -> SourceFiles:
        """The view's source now: pattern, schema and files.

        Args:
            view: The feature view.
            check: Validate the schema against the view (:meth:`check`).

        Raises:
            SourceError: Missing path, unreadable files, or (``check``) missing or mistyped
                columns.
        """
        pattern = self.pattern(view)
        schema, columns = self._schema(view, pattern)
        if check:
            self.check(view, schema)
        files = pattern if isinstance(pattern, list) else self._files(view, pattern)
        return SourceFiles(pattern, schema, columns, files)

    def source_schema(self, view: FeatureView) -> pa.Schema:
        """The Arrow schema of a view's source files (what push files are written as).

        Raises:
            SourceError: Missing path or unreadable files.
        """
        pattern = self.source_pattern(view)
        if self._covers_push_log(pattern):
            return self._schema(view, self._source_files(view, pattern)[0])[0]
        return self._schema(view, pattern)[0]

    def _schema(
        self, view: FeatureView, pattern: str | list[str]
    ) -> tuple[pa.Schema, SourceColumns]:
        cursor = self._connect()
        try:
            rel = cursor.sql("SELECT * FROM read_parquet(?) LIMIT 0", params=[pattern])
            schema = rel.to_arrow_table().schema
            types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        except duckdb.Error as exc:
            msg = (
                f"Source of feature view '{view.name}': cannot read Parquet '{pattern}': {exc}. "
                "Check that the files are valid Parquet."
            )
            raise SourceError(msg) from exc
        finally:
            cursor.close()
        return schema, SourceColumns(types)

    def _files(self, view: FeatureView, pattern: str) -> list[str]:
        """The files ``read_parquet(pattern)`` reads, sorted by path (DuckDB's own glob)."""
        cursor = self._connect()
        try:
            rows = cursor.sql("SELECT file FROM glob(?) ORDER BY file", params=[pattern])
            return [str(r[0]) for r in rows.fetchall()]
        except duckdb.Error as exc:
            msg = f"Cannot list the files of feature view '{view.name}' ('{pattern}'): {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def row_count(self, view: FeatureView) -> int:
        """The number of rows of a view's source files (Parquet metadata only)."""
        cursor = self._connect()
        try:
            row = cursor.sql(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)",
                params=[self.pattern(view)],
            ).fetchall()[0]
        except duckdb.Error as exc:
            msg = f"Cannot read the Parquet metadata of feature view '{view.name}': {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def check(self, view: FeatureView, schema: pa.Schema) -> None:
        """Validate a source schema against the view (names after ``field_mapping``).

        The feature columns of a view with a batch transform are not checked (its output is).

        Raises:
            SourceError: A column is missing or has a type the view cannot read.
        """
        source = view.source
        renamed = {source.field_mapping.get(n, n): n for n in schema.names}

        def column(name: str, role: str) -> pa.DataType:
            if name not in renamed:
                origins = [s for s, d in source.field_mapping.items() if d == name]
                mapped = f" (field_mapping reads it from '{origins[0]}')" if origins else ""
                msg = (
                    f"Source of feature view '{view.name}' ('{source.path}') has no {role} "
                    f"column '{name}'{mapped}; its columns are {', '.join(schema.names)}. Add "
                    "the column, or fix the view (field_mapping renames source columns)."
                )
                raise SourceError(msg)
            return schema.field(renamed[name]).type

        for field_name, role in (
            (source.timestamp_field, "timestamp_field"),
            (source.created_timestamp_field, "created_timestamp_field"),
        ):
            if field_name is None:
                continue
            typ = column(field_name, role)
            if not (pa.types.is_timestamp(typ) or pa.types.is_date(typ) or pa.types.is_null(typ)):
                msg = (
                    f"Source of feature view '{view.name}': {role} '{field_name}' has type "
                    f"{typ}; it must be a timestamp or date column. Write it as a Parquet "
                    "timestamp."
                )
                raise SourceError(msg)
        for key in view.join_keys:
            column(key, "join key")
        if view.transform is not None:  # the transform's output is checked instead
            return
        for feature in view.schema:
            typ = column(feature.name, "feature")
            if not _castable(typ, feature.dtype):
                msg = (
                    f"Source of feature view '{view.name}': column '{feature.name}' has type "
                    f"{typ}, which cannot be read as the declared {feature.dtype}. Change the "
                    "Field's type or write the column with a compatible type."
                )
                raise SourceError(msg)

    def key_dtypes(self, view: FeatureView) -> dict[str, DType]:
        """Validate a view's source (schema only, no data scan) and infer its join key types.

        Raises:
            SourceError: Missing path, missing or mistyped columns, or a key type that
                cannot be a join key.
        """
        schema, _ = self._schema(view, self.pattern(view))
        self.check(view, schema)
        renamed = {view.source.field_mapping.get(n, n): n for n in schema.names}
        result: dict[str, DType] = {}
        for key in view.join_keys:
            typ = schema.field(renamed[key]).type
            dtype = dtype_from_arrow(typ)
            if not isinstance(dtype, ScalarType) or dtype.name in {"Float32", "Float64"}:
                msg = (
                    f"Source of feature view '{view.name}': join key '{key}' has type {typ}, "
                    "which cannot be a join key. Use an integer, string, bytes, bool or "
                    "timestamp column."
                )
                raise SourceError(msg)
            result[key] = dtype
        return result


def _castable(source: pa.DataType, dtype: DType) -> bool:
    """Whether a source column of Arrow type ``source`` can be read as feature type ``dtype``."""
    if pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return _castable(source.value_type, dtype)
    if isinstance(dtype, Array):
        if not (pa.types.is_list(source) or pa.types.is_large_list(source)):
            return False
        return _castable(source.value_type, dtype.inner)
    name = dtype.name
    if name in {"Int32", "Int64"}:
        return bool(pa.types.is_integer(source))
    if name in {"Float32", "Float64"}:
        return bool(pa.types.is_integer(source) or pa.types.is_floating(source))
    if name == "String":
        return bool(
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_string_view(source)
        )
    if name == "Bool":
        return bool(pa.types.is_boolean(source))
    if name == "Timestamp":
        return bool(pa.types.is_timestamp(source) or pa.types.is_date(source))
    return bool(
        pa.types.is_binary(source)
        or pa.types.is_large_binary(source)
        or pa.types.is_string(source)
        or pa.types.is_large_string(source)
    )
