"""Image bytes kept out of Spark's cache: executors write the rows they produce to Parquet in a scratch folder
and hand Spark only the keys; the bytes are read back from the folder when they are written to a table.

A fetch of 10,000 images (1.8 GB) cached in Spark spent about 5 CPU seconds in the JVM converting the bytes to
cached column batches, writing them to the block manager's disk and reading them back for the keys: 1.27x the
bare loop's time, 1.02x staged (bench/fetch.py). The folder lives under the lakehouse root, which executors and
the driver both reach (`Lakehouse.scratch`), and is removed with the result that made it.

>>> stage = Staging.new(lake.scratch("fetch"))
>>> keys = urls.mapInArrow(stage.keeping(fetch_fn, FETCHED, ["url", "image_id"]),
...                        f"url string, image_id string, {PART} string").persist()
>>> parts = [r[0] for r in keys.select(PART).distinct().collect()]   # runs fetch_fn once
>>> stage.read(spark, from_arrow_schema(FETCHED), parts)              # the staged rows
>>> stage.remove()
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

PART = "staged_part"
"""The column `split` adds to the keys: the name of the part holding the row."""


@dataclass(frozen=True)
class Staging:
    """One scratch folder (a path or URI that pyarrow and Spark both open) of Parquet parts written by tasks."""

    location: str

    @classmethod
    def new(cls, folder: str) -> "Staging":
        """A new, empty staging folder inside `folder` (created now, so an empty result reads as no rows)."""
        stage = cls(f"{folder.rstrip('/')}/{uuid.uuid4().hex[:16]}")
        fs, path = pafs.FileSystem.from_uri(stage.location)
        fs.create_dir(path, recursive=True)
        return stage

    def keeping(self, produce: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]], schema: pa.Schema,
                keys: Sequence[str]) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
        """A mapInArrow function: `produce`'s batches (of `schema`) written here whole, their `keys` columns
        returned to Spark."""
        return lambda batches: self.split(produce(batches), schema, keys)

    def split(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema,
              keys: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """Executor side: every batch appended to one Parquet part of this task (a `Part`), its `keys` yielded with
        the part's name (column PART); `read` takes the parts the kept keys name, so a retried task's first part
        is not read twice."""
        part = Part(self, schema)
        try:
            for batch in batches:
                part.write(batch)
                yield pa.RecordBatch.from_arrays([*batch.select(list(keys)).columns,
                                                  pa.array([part.name] * batch.num_rows, pa.string())],
                                                 names=[*keys, PART])
        finally:  # also when the task stops early: the part stays hidden
            part.close()
        part.publish()

    def path(self, part: str) -> str:
        """Where the part of this name lies."""
        return f"{self.location}/{part}"

    def read(self, spark: SparkSession, schema: Union[str, StructType], parts: Sequence[str]) -> DataFrame:
        """The rows of these parts (names from the PART column), of Spark type `schema`."""
        if not parts:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(*[self.path(part) for part in sorted(parts)])

    def remove(self) -> None:
        """Delete the folder and what is in it (nothing to do when it is gone already)."""
        fs, path = pafs.FileSystem.from_uri(self.location)
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            pass


class Part:
    """One Parquet part a task writes into a staging folder, under a hidden name (`_...`, which Spark's reader skips)
    until `publish` gives it its own: a part its task left half-written is never read."""

    def __init__(self, stage: Staging, schema: pa.Schema, prefix: str = "part"):
        self.fs, folder = pafs.FileSystem.from_uri(stage.location)
        uid = uuid.uuid4().hex
        self.name = f"{prefix}-{uid}.parquet"
        self._hidden, self._visible = f"{folder}/_{uid}.parquet", f"{folder}/{self.name}"
        self._schema = schema
        self._sink = self._writer = None
        self.rows = 0

    def write(self, rows: Union[pa.RecordBatch, pa.Table]) -> None:
        """Append `rows` (a batch, or a table written as one row group)."""
        if self._writer is None:
            # image bytes are compressed already: only the other columns get snappy
            codecs = {f.name: "none" if pa.types.is_binary(f.type) else "snappy" for f in self._schema}
            self._sink = self.fs.open_output_stream(self._hidden)
            self._writer = pq.ParquetWriter(self._sink, self._schema, compression=codecs)
        if isinstance(rows, pa.Table):
            self._writer.write_table(rows, row_group_size=rows.num_rows)
        else:
            self._writer.write_batch(rows)
        self.rows += rows.num_rows

    def close(self) -> None:
        """Finish the file (still hidden); again: nothing."""
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None

    def publish(self) -> None:
        """Close it and give it its name, when anything was written."""
        if self._sink is not None:
            self.close()
            self.fs.move(self._hidden, self._visible)


def release(frames: Iterable[DataFrame], stage: Optional[Staging] = None) -> None:
    """Unpersist `frames` and remove `stage`'s folder: what a step holds while its rows wait to be written."""
    for frame in frames:
        frame.unpersist()
    if stage is not None:
        stage.remove()
