"""Keep one row per key: the rule every read (and every compaction) applies.

Within a key the winner is, in order: a preferred row (``runs``: status ``completed``) over the others, then the
newest ``created_at``, then the row that comes last in the input.  The order depends only on row contents
(except for exact ties, which are repeated writes of the same row), so de-duplicating a subset first and the
whole later gives the same answer: compaction can merge any subset of files.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metadata_store.schemas import TableSpec

_ROW = "__row"
_PREFER = "__prefer"


def deduplicate(table: pa.Table, spec: TableSpec) -> pa.Table:
    """``table`` with one row per ``spec.key`` (the winner by the rule above), sorted by key."""
    n = table.num_rows
    if n == 0:
        return table
    # a null created_at (hand-written files) counts as the epoch, so it loses to any dated row
    created = pc.fill_null(
        table["created_at"], pa.scalar(0, type=pa.int64()).cast(table.schema.field("created_at").type)
    )
    helper = (
        table.select(list(spec.key)).append_column("created_at", created).append_column(_ROW, pa.array(np.arange(n)))
    )
    sort_keys = [(k, "ascending") for k in spec.key]
    if spec.prefer is not None:
        column, value = spec.prefer
        preferred = pc.fill_null(pc.equal(table[column], pa.scalar(value)), False).cast(pa.int8())
        helper = helper.append_column(_PREFER, preferred)
        sort_keys.append((_PREFER, "ascending"))
    sort_keys += [("created_at", "ascending"), (_ROW, "ascending")]
    order = pc.sort_indices(helper, sort_keys=sort_keys)
    ordered = table.take(order)
    if n == 1:
        return ordered
    # the winner is the last row of each run of equal keys
    last = None
    for k in spec.key:
        column = ordered[k].combine_chunks()
        differs = pc.fill_null(pc.not_equal(column.slice(0, n - 1), column.slice(1)), True)
        last = differs if last is None else pc.or_(last, differs)
    mask = pa.concat_arrays([last, pa.array([True])])
    return ordered.filter(mask)
