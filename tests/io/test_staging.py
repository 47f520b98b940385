"""Staged rows: what executors write to a scratch folder is read back whole, a part left unfinished never is."""
import pyarrow as pa

from mmcurate.io.staging import PART, Staging

SCHEMA = pa.schema([("key", pa.string()), ("blob", pa.binary())])


def batches(n: int, start: int = 0):
    for i in range(start, start + n):
        yield pa.RecordBatch.from_pylist([{"key": f"k{i}", "blob": bytes([i]) * 1000}], SCHEMA)


def test_parts_are_read_once_complete_and_removed_with_the_folder(spark, tmp_path):
    stage = Staging.new(str(tmp_path / "scratch"))
    keys = pa.Table.from_batches(list(stage.split(batches(3), SCHEMA, ["key"])))   # a task that finished
    assert keys.column_names == ["key", PART] and keys.column("key").to_pylist() == ["k0", "k1", "k2"]
    parts = set(keys.column(PART).to_pylist())
    abandoned = stage.split(batches(2, start=10), SCHEMA, ["key"])
    next(abandoned)                          # a task that stopped half-way: its part stays hidden, under another name
    retried = pa.Table.from_batches(list(stage.split(batches(1), SCHEMA, ["key"])))  # an attempt whose keys were lost
    assert len(list((tmp_path / "scratch").glob("*/*.parquet"))) == 3
    rows = stage.read(spark, "key string, blob binary", parts).orderBy("key").collect()
    assert [(r.key, r.blob) for r in rows] == [(f"k{i}", bytes([i]) * 1000) for i in range(3)]
    assert retried.num_rows == 1 and stage.read(spark, "key string, blob binary", []).count() == 0
    abandoned.close()
    stage.remove()
    stage.remove()                                             # gone already: nothing to do
    assert list((tmp_path / "scratch").iterdir()) == []
