"""Conforming raw columns (CSV text, Parquet) to a dataset schema, with errors that name rows.

Every source column is converted by `conform`, which either returns a batch typed exactly as
`arrow_schema(schema)` or raises `DataError` naming the column, the problem, and the first
offending rows (1-based data rows, the header not counted). Text may not hold NUL bytes, and a
nested source column (a Parquet list or struct) fits only a categorical field, as a flat list.
Where an interactions ITEM_ID is nullable (next to a TAGS field: a row without an item is a tag
click), every row must carry an item or at least one non-empty tag.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sdk.types import FieldType, Role, Schema, SchemaField

__all__ = ["DataError", "arrow_schema", "arrow_type", "conform", "MAX_REPORTED_ROWS"]

MAX_REPORTED_ROWS = 5


class DataError(ValueError):
    """The data do not fit the schema. The message names column, problem and rows."""

    def __init__(self, message: str, *, column: str | None = None, rows: list[int] | None = None):
        super().__init__(message)
        self.column = column
        self.rows = rows or []


_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.STRING: pa.string(),
    FieldType.TEXT: pa.string(),
    FieldType.INT: pa.int64(),
    FieldType.FLOAT: pa.float64(),
    FieldType.BOOL: pa.bool_(),
    FieldType.TIMESTAMP: pa.timestamp("ms", tz="UTC"),  # Parquet has no seconds unit
    FieldType.CATEGORICAL: pa.list_(pa.string()),
}
_TYPE_WORDS = {
    FieldType.INT: "an integer",
    FieldType.FLOAT: "a number",
    FieldType.BOOL: "a boolean (true/false/1/0)",
    FieldType.TIMESTAMP: "a timestamp (epoch seconds or ISO 8601)",
    FieldType.STRING: "valid UTF-8 text",
    FieldType.TEXT: "valid UTF-8 text",
    FieldType.CATEGORICAL: "a list of strings",
}
# Epoch seconds past this (year 5138) are almost surely milliseconds: refuse rather than guess.
_MAX_EPOCH_SECONDS = 10**11


def arrow_type(field: SchemaField) -> pa.DataType:
    return _TYPES[field.type]


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema every snapshot of a dataset with `schema` is stored in."""
    return pa.schema([pa.field(f.name, arrow_type(f), nullable=f.nullable) for f in schema.fields])


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(field: SchemaField, col: pa.Array, ok: Callable[[object], bool], first_row: int,
          problem: str | None = None, lists: pa.Array | None = None) -> DataError:
    """Find the first offending rows of `col` (a slow path, taken only on failure).

    `col` may be the values of the list array `lists`: rows are then numbered by list.
    """
    parents = None if lists is None else pc.list_parent_indices(lists).to_numpy()
    rows: list[int] = []
    first_value: object = None
    for i, value in enumerate(col.to_pylist()):
        if value is not None and not ok(value):
            if not rows:
                first_value = value
            row = first_row + (i if parents is None else int(parents[i]))
            if row not in rows:
                rows.append(row)
            if len(rows) >= MAX_REPORTED_ROWS:
                break
    if not rows:  # the vectorized check failed but no single value does: report the batch
        rows = [first_row]
    what = problem or f"is not {_TYPE_WORDS[field.type]}"
    return DataError(
        f"column {field.name!r} ({field.type.value}): value {_show(first_value)} at row {rows[0]} "
        f"{what}; first offending rows: {', '.join(map(str, rows))}",
        column=field.name,
        rows=rows,
    )


def _scalar_ok(target: pa.DataType) -> Callable[[object], bool]:
    def ok(value: object) -> bool:
        try:
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if isinstance(value, str):
                value = value.strip()
            pa.scalar(value).cast(target)
            return True
        except (pa.ArrowException, UnicodeDecodeError, ValueError, TypeError):
            return False

    return ok


def _to_text(col: pa.Array, field: SchemaField, first_row: int, lists: pa.Array | None = None) -> pa.Array:
    """Binary/string → validated UTF-8 string without NUL bytes (`lists`: whose values `col` are)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = col.cast(pa.string())
    elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        try:
            text = col.cast(pa.string())
        except pa.ArrowInvalid:
            raise _fail(field, col, _scalar_ok(pa.string()), first_row,
                        "is not valid UTF-8 text", lists) from None
    else:
        return col.cast(pa.string())  # numbers given for a string column: their text
    _refuse_nul(text, field, first_row, lists)
    return text


def _refuse_nul(text: pa.Array, field: SchemaField, first_row: int, lists: pa.Array | None = None) -> None:
    """NUL bytes in text are binary data (or a broken export), not text: name the rows.

    `text` may be the values of the list array `lists`: rows are then numbered by list.
    """
    data = text.buffers()[2]
    # No zero byte anywhere in the values' buffer: the common case, at memory speed.
    if data is None or data.size == 0 or np.frombuffer(data, np.uint8).min() > 0:
        return
    found = pc.indices_nonzero(pc.match_substring(text, "\x00").fill_null(False))
    if not len(found):
        return  # the zero byte was outside this slice of the buffer
    first_value = text[found[0].as_py()].as_py()
    rows = found if lists is None else pc.unique(pc.list_parent_indices(lists).take(found))
    offending = [first_row + i for i in rows.to_pylist()[:MAX_REPORTED_ROWS]]
    raise DataError(
        f"column {field.name!r} ({field.type.value}): value {_show(first_value)} at row {offending[0]} "
        f"has a NUL byte (\\x00), binary data rather than text; first offending rows: "
        f"{', '.join(map(str, offending))}",
        column=field.name,
        rows=offending,
    )


def _timestamps(col: pa.Array, field: SchemaField, first_row: int) -> pa.Array:
    target = _TYPES[FieldType.TIMESTAMP]
    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            col = pc.assume_timezone(col, "UTC")
        return col.cast(target, safe=False)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return _epoch_seconds(col.cast(pa.int64(), safe=False), field, first_row)
    text = pc.utf8_trim_whitespace(_to_text(col, field, first_row))
    is_epoch = pc.match_substring_regex(text, r"^-?[0-9]+$")
    epoch = _epoch_seconds(pc.if_else(is_epoch, text, None).cast(pa.int64()), field, first_row)
    if pc.all(pc.or_kleene(is_epoch, text.is_null())).as_py():
        return epoch
    iso = pc.if_else(is_epoch, None, text)
    # Parsed at microseconds (Python's isoformat() writes them), then truncated to the stored ms.
    for attempt in (lambda: iso.cast(pa.timestamp("us", tz="UTC")).cast(target, safe=False),
                    lambda: pc.assume_timezone(iso.cast(pa.timestamp("us")), "UTC")
                    .cast(target, safe=False)):
        try:
            return pc.if_else(is_epoch, epoch, attempt())
        except pa.ArrowInvalid:
            continue
    if not _all_ok(text, _timestamp_ok):
        raise _fail(field, text, _timestamp_ok, first_row)
    # Each value parses alone, but some carry a zone offset and some do not: report the rows
    # unlike the first ISO value.
    first_aware = _has_offset(next(v for v in iso.to_pylist() if v is not None))
    raise _fail(field, iso, lambda v: _has_offset(v) == first_aware, first_row,
                "mixes ISO 8601 times with and without a zone offset (earlier rows "
                f"{'have' if first_aware else 'lack'} one)")


def _all_ok(col: pa.Array, ok: Callable[[object], bool]) -> bool:
    return all(ok(v) for v in col.to_pylist() if v is not None)


def _epoch_seconds(seconds: pa.Array, field: SchemaField, first_row: int) -> pa.Array:
    too_big = pc.greater(pc.abs(seconds), _MAX_EPOCH_SECONDS)
    if pc.any(too_big).as_py():
        raise _fail(field, seconds, lambda v: abs(v) <= _MAX_EPOCH_SECONDS, first_row,
                    "is too large for epoch seconds (milliseconds? divide by 1000)")
    return seconds.cast(pa.timestamp("s")).cast(_TYPES[FieldType.TIMESTAMP])


def _has_offset(value: object) -> bool:
    try:
        pa.scalar(str(value).strip()).cast(pa.timestamp("us", tz="UTC"))
        return True
    except pa.ArrowException:
        return False


def _timestamp_ok(value: object) -> bool:
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return abs(int(text)) <= _MAX_EPOCH_SECONDS
    for t in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            pa.scalar(text).cast(t)
            return True
        except pa.ArrowException:
            continue
    return False


def _categorical(col: pa.Array, field: SchemaField, delimiter: str, first_row: int) -> pa.Array:
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        values = _to_text(col.flatten(), field, first_row, lists=col)
        return pa.ListArray.from_arrays(col.offsets, values, mask=col.is_null())
    text = _to_text(col, field, first_row)
    parts = pc.split_pattern(text, delimiter)
    trimmed = pc.utf8_trim_whitespace(parts.flatten())
    return pa.ListArray.from_arrays(parts.offsets, trimmed, mask=parts.is_null())


def _convert(col: pa.Array, field: SchemaField, delimiter: str, first_row: int) -> pa.Array:
    target = _TYPES[field.type]
    if col.type == target:  # as stored, but text must still be free of NUL bytes
        if field.type == FieldType.CATEGORICAL:
            _refuse_nul(col.flatten(), field, first_row, lists=col)
        elif pa.types.is_string(target):
            _refuse_nul(col, field, first_row)
        return col
    if field.type in (FieldType.STRING, FieldType.TEXT):
        return _to_text(col, field, first_row)
    if field.type == FieldType.TIMESTAMP:
        return _timestamps(col, field, first_row)
    if field.type == FieldType.CATEGORICAL:
        return _categorical(col, field, delimiter, first_row)
    source = col
    if pa.types.is_binary(col.type) or pa.types.is_string(col.type):
        source = pc.utf8_trim_whitespace(_to_text(col, field, first_row))
        if field.type == FieldType.BOOL:
            source = pc.utf8_lower(source)
    try:
        return source.cast(target)  # safe cast: no silent truncation of 1.5 to 1
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _fail(field, source, _scalar_ok(target), first_row) from None


def _check_nesting(col: pa.Array, field: SchemaField) -> None:
    """A nested source column fits only a categorical field, and only as a list of scalars."""
    inner = col.type
    if field.type == FieldType.CATEGORICAL and (pa.types.is_list(inner) or pa.types.is_large_list(inner)):
        inner = inner.value_type
    if pa.types.is_nested(inner):
        raise DataError(f"column {field.name!r} ({field.type.value}): the source column holds "
                        f"{col.type} values; expected {_TYPE_WORDS[field.type]} in each row",
                        column=field.name)


def conform(batch: pa.RecordBatch | pa.Table, schema: Schema, first_row: int) -> pa.RecordBatch:
    """Convert `batch` to the dataset's Arrow schema; `first_row` numbers its first row.

    Raises:
        DataError: a column is missing or nested where a scalar is expected, a value does not
            convert or holds a NUL byte, a non-nullable field is empty, or a row has neither
            an item nor a tag.
    """
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else \
            pa.RecordBatch.from_pylist([], schema=batch.schema)
    names = set(batch.schema.names)
    columns = []
    for field in schema.fields:
        if field.name not in names:
            raise DataError(f"column {field.name!r} is missing", column=field.name)
        source = batch.column(field.name)
        _check_nesting(source, field)
        try:
            col = _convert(source, field, schema.categorical_delimiter, first_row)
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise DataError(f"column {field.name!r} ({field.type.value}): the source column's "
                            f"{source.type} values cannot be read as {_TYPE_WORDS[field.type]}",
                            column=field.name) from None
        if not field.nullable and col.null_count:
            nulls = pc.indices_nonzero(col.is_null()).to_pylist()[:MAX_REPORTED_ROWS]
            rows = [first_row + i for i in nulls]
            role = f", role {field.role.value}" if field.role else ""
            raise DataError(
                f"column {field.name!r}{role} may not be empty: {col.null_count} empty value(s), "
                f"first at rows {', '.join(map(str, rows))}",
                column=field.name,
                rows=rows,
            )
        columns.append(col)
    out = pa.RecordBatch.from_arrays(columns, schema=arrow_schema(schema))
    _check_item_or_tag(out, schema, first_row)
    return out


def _check_item_or_tag(batch: pa.RecordBatch, schema: Schema, first_row: int) -> None:
    """A row without an item (a nullable ITEM_ID) is a tag click: it needs a non-empty tag."""
    item, tags = schema.field_for(Role.ITEM_ID), schema.field_for(Role.TAGS)
    if item is None or tags is None or not item.nullable or not batch.column(item.name).null_count:
        return
    lists = batch.column(tags.name)
    nonempty = pc.fill_null(pc.greater(pc.utf8_length(lists.values), 0), False).to_numpy(zero_copy_only=False)
    total = np.concatenate(([0], np.cumsum(nonempty)))
    offsets = lists.offsets.to_numpy()
    has_tag = (total[offsets[1:]] > total[offsets[:-1]]) & lists.is_valid().to_numpy(zero_copy_only=False)
    empty = batch.column(item.name).is_null().to_numpy(zero_copy_only=False) & ~has_tag
    if empty.any():
        bad = np.flatnonzero(empty)
        rows = [first_row + int(i) for i in bad[:MAX_REPORTED_ROWS]]
        raise DataError(
            f"row {rows[0]} has neither an item nor a tag: column {item.name!r} (role ITEM_ID) is empty "
            f"and column {tags.name!r} (role TAGS) holds no tag; a row without an item is a tag click and "
            f"needs one. {len(bad)} such row(s), first at rows {', '.join(map(str, rows))}",
            column=item.name, rows=rows)
