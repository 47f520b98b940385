"""The lakehouse contract, run against every backend the session has (embedded always)."""
import datetime as dt
import json
import os
import threading

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.testing import assertDataFrameEqual

from mmcurate.lakehouse import (
    BackendUnavailableError,
    Lakehouse,
    LakehouseError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
    has_no_rows,
    no_rows,
)
from mmcurate.lakehouse.embedded import EmbeddedBackend
from mmcurate.lakehouse.native import has_delta_connector

SCHEMA = T.StructType(
    [
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("position", T.IntegerType(), False),
        T.StructField("payload", T.BinaryType(), True),
        T.StructField("score", T.DoubleType(), True),
        T.StructField("seen_at", T.TimestampType(), True),
        T.StructField("tags", T.ArrayType(T.StringType()), True),
    ]
)


def rows(n, offset=0):
    t0 = dt.datetime(2024, 4, 12, 10, 13, 54, 123456, tzinfo=dt.timezone.utc)
    return [
        (f"s{i:05d}", i % 7, os.urandom(16), i / 3.0, t0 + dt.timedelta(seconds=i), [f"t{i % 3}"])
        for i in range(offset, offset + n)
    ]


@pytest.fixture(params=["embedded", "native"])
def lake(request, spark, tmp_path):
    if request.param == "native" and not has_delta_connector(spark):
        pytest.skip("session has no Delta connector (native backend runs on Databricks/delta-spark clusters)")
    return Lakehouse.open(spark, str(tmp_path / "lake"), backend=request.param)


def frame(spark, data):
    return spark.createDataFrame(data, SCHEMA).repartition(3)


def test_write_then_read_round_trips_every_type(spark, lake):
    df = frame(spark, rows(50))
    result = lake.write(df, "items", mode="error")
    assert (result.version, result.rows_added) == (0, 50)
    back = lake.read("items")
    assert_df_equality(back, df, ignore_row_order=True, ignore_nullable=True)
    assert lake.tables() == ["items"]


def test_overwrite_keeps_history_and_time_travel_reads_old_versions(spark, lake):
    lake.write(frame(spark, rows(10)), "t", mode="overwrite")
    lake.write(frame(spark, rows(5, offset=100)), "t", mode="append")
    lake.write(frame(spark, rows(3, offset=200)), "t", mode="overwrite")
    assert lake.version("t") == 2
    assert [lake.read("t", version=v).count() for v in (0, 1, 2)] == [10, 15, 3]
    assert lake.read("t").agg(F.min("sample_id")).first()[0] == "s00200"
    history = lake.history("t").select("version", "operation").collect()
    assert [h.version for h in history] == [2, 1, 0]
    with pytest.raises(TableNotFoundError):
        lake.read("t", version=9).count()


def test_mode_error_and_ignore(spark, lake):
    lake.write(frame(spark, rows(2)), "t", mode="error")
    with pytest.raises(TableExistsError):
        lake.write(frame(spark, rows(2)), "t", mode="error")
    skipped = lake.write(frame(spark, rows(2)), "t", mode="ignore")
    assert skipped.skipped and lake.read("t").count() == 2


def test_append_with_other_columns_is_refused_with_the_differences(spark, lake):
    lake.write(frame(spark, rows(2)), "t")
    other = frame(spark, rows(2)).withColumn("score", F.col("score").cast("string")).drop("tags")
    with pytest.raises(SchemaMismatchError, match="missing column tags.*score: table has double, data has string"):
        lake.write(other, "t", mode="append")
    assert lake.version("t") == 0


def test_append_accepts_columns_in_another_order(spark, lake):
    lake.write(frame(spark, rows(2)), "t")
    df = frame(spark, rows(2, offset=10))
    lake.write(df.select(*reversed(df.columns)), "t")
    assert lake.read("t").where("sample_id = 's00010'").select("position").first()[0] == 3


def test_idempotent_retry_is_not_applied_twice(spark, lake):
    df = frame(spark, rows(4))
    first = lake.write(df, "t", app_id="ingest-job", app_version=1)
    retry = lake.write(df, "t", app_id="ingest-job", app_version=1)
    assert not first.skipped and retry.skipped
    assert lake.read("t").count() == 4 and lake.version("t") == first.version
    lake.write(frame(spark, rows(4, offset=10)), "t", app_id="ingest-job", app_version=2)
    assert lake.read("t").count() == 8


def test_adopted_files_become_the_tables_rows_in_one_commit(spark, lake, tmp_path):
    """Parquet files written outside Spark (as ingest's tasks stage items) are appended as they are: moved into
    the table on the embedded backend, with statistics, idempotent per app_id; another schema is refused."""
    folder = lake.scratch("adopt") or str(tmp_path / "parts")  # native: anywhere Spark reads
    os.makedirs(folder)
    arrow = to_arrow_schema(SCHEMA, timezone="UTC")
    staged, first = rows(6), rows(2, offset=100)
    files = []
    for part in range(2):
        files.append(f"{folder}/items-{part}.parquet")
        pq.write_table(pa.Table.from_pylist([dict(zip(SCHEMA.fieldNames(), r)) for r in staged[3 * part:][:3]],
                                            arrow), files[-1])
    lake.write(frame(spark, first), "t")
    done = lake.adopt(files, "t", SCHEMA, app_id="job", app_version=1, commit_info={"step": "test"})
    assert lake.version("t") == 1 and lake.commit_infos("t", limit=1) == [(1, {"step": "test"})]
    assertDataFrameEqual(lake.read("t"), frame(spark, staged + first))
    if lake.scratch("adopt"):
        assert os.listdir(folder) == [] and (done.files_added, done.rows_added) == (2, 6)
        adds = pa.table(deltalake.DeltaTable(lake.location("t")).get_add_actions(flatten=True)).to_pylist()
        assert sorted((a["path"].rsplit("/", 1)[1], a["num_records"], a["min.sample_id"]) for a in adds
                      if "items-" in a["path"]) == [("items-0.parquet", 3, "s00000"), ("items-1.parquet", 3, "s00003")]
        assert lake.adopt(files, "t", SCHEMA, app_id="job", app_version=1).skipped  # before touching the files
        other = f"{folder}/other.parquet"
        pq.write_table(pa.table({"sample_id": ["x"]}), other)
        with pytest.raises(SchemaMismatchError, match="missing column position"):
            lake.adopt([other], "t", T.StructType([SCHEMA["sample_id"]]))
        assert os.path.exists(other) and lake.version("t") == 1


def test_failing_task_leaves_no_new_version(spark, lake):
    lake.write(frame(spark, rows(6)), "t")

    @F.udf("double")
    def explode_on_third(score):
        if score is not None and abs(score - 2 / 3.0) < 1e-9:
            raise RuntimeError("injected task failure")
        return score

    bad = frame(spark, rows(6)).withColumn("score", explode_on_third("score"))
    with pytest.raises(Exception, match="injected task failure"):
        lake.write(bad, "t")
    assert lake.version("t") == 0 and lake.read("t").count() == 6


def test_failed_write_leaves_no_files_behind(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(3)), "t")
    before = sorted(os.listdir(tmp_path / "t"))

    @F.udf("double")
    def fail(score):
        raise RuntimeError("injected task failure")

    with pytest.raises(Exception):
        lake.write(frame(spark, rows(3)).withColumn("score", fail("score")), "t")
    assert sorted(os.listdir(tmp_path / "t")) == before


def test_a_write_the_driver_cannot_see_fails_naming_shared_storage(spark, tmp_path, monkeypatch):
    """As with a Spark Connect server writing to a disk the client does not share: the files never appear here."""
    from pyspark.sql import DataFrameWriter

    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    monkeypatch.setattr(DataFrameWriter, "parquet", lambda self, path, *a, **k: None)
    with pytest.raises(LakehouseError, match="this process cannot see it.*same disk, or an object store"):
        lake.write(frame(spark, rows(3)), "t")
    assert not lake.exists("t")


def test_native_without_delta_on_the_server_is_refused_naming_why(spark, tmp_path):
    if has_delta_connector(spark):
        pytest.skip("this session has Delta")
    with pytest.raises(BackendUnavailableError, match=r"needs Delta on the Spark server.*format\('delta'\) does not"):
        Lakehouse.open(spark, str(tmp_path), backend="native")
    assert Lakehouse.open(spark, str(tmp_path)).backend.name == "embedded"


def test_delta_log_folders_are_listed_by_spark(spark, tmp_path):
    """The native backend's path-root listing (no JVM gateway, so it works through Spark Connect)."""
    from mmcurate.lakehouse.native import delta_log_folders

    assert delta_log_folders(spark, str(tmp_path / "absent")) == []
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(2)), "b")
    lake.write(frame(spark, rows(2)), "a")
    (tmp_path / "not_a_table").mkdir()
    assert delta_log_folders(spark, str(tmp_path)) == ["a", "b"]


def test_tables_written_here_are_real_delta_for_other_readers(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    df = frame(spark, rows(30))
    lake.write(df, "items")
    table = deltalake.DeltaTable(str(tmp_path / "items"))
    arrow = table.to_pyarrow_table()
    assert arrow.num_rows == 30
    assert sorted(arrow.column("sample_id").to_pylist()) == [f"s{i:05d}" for i in range(30)]
    assert not pa.schema(table.schema().to_arrow()).field("sample_id").nullable

    log = (tmp_path / "items" / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
    actions = [json.loads(line) for line in log]
    kinds = {next(iter(a)) for a in actions}
    assert {"protocol", "metaData", "add", "commitInfo"} <= kinds
    adds = [a["add"] for a in actions if "add" in a]
    stats = [json.loads(a["stats"]) for a in adds]
    assert sum(s["numRecords"] for s in stats) == 30
    assert all("sample_id" in s["minValues"] and s["nullCount"]["score"] == 0 for s in stats)

    # Spark wrote the data: timestamps are INT64 micros, not legacy INT96
    first_file = tmp_path / "items" / adds[0]["path"]
    column = pq.ParquetFile(first_file).schema.column(4)
    assert column.name == "seen_at" and column.physical_type == "INT64"


def test_tables_written_by_delta_rs_read_here(spark, tmp_path):
    deltalake.write_deltalake(str(tmp_path / "ext"), pa.table({"a": [1, 2, 3], "b": ["x", "y", None]}))
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    assert sorted(r.a for r in lake.read("ext").collect()) == [1, 2, 3]


def test_partitioned_tables_are_refused_clearly(spark, tmp_path):
    deltalake.write_deltalake(str(tmp_path / "p"), pa.table({"a": [1, 2], "k": ["x", "y"]}), partition_by=["k"])
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    with pytest.raises(UnsupportedTableError, match="partitioning"):
        lake.read("p")


def test_concurrent_appends_both_land_and_the_log_stays_valid(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(1)), "t")
    errors = []

    def append(offset):
        try:
            lake.write(frame(spark, rows(5, offset=offset)), "t")
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(o,)) for o in (100, 200)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert lake.version("t") == 2 and lake.read("t").count() == 11
    assert deltalake.DeltaTable(str(tmp_path / "t")).to_pyarrow_table().num_rows == 11


def test_sql_sees_every_table_by_name(spark, lake):
    lake.write(frame(spark, rows(9)), "items")
    lake.write(spark.createDataFrame([("s00001", "blurry")], "sample_id string, reason string"), "drops")
    result = lake.sql(
        "SELECT count(*) AS n FROM items i LEFT ANTI JOIN drops d ON i.sample_id = d.sample_id"
    ).first()
    assert result.n == 8


def test_table_names_must_be_identifiers(lake):
    with pytest.raises(ValueError, match="identifiers"):
        lake.read("../etc")


def test_overwrite_may_change_the_schema_and_old_versions_keep_theirs(spark, lake):
    lake.write(frame(spark, rows(3)), "t")
    lake.write(spark.createDataFrame([("a", 1.5)], "image_id string, sharpness double"), "t", mode="overwrite")
    assert lake.read("t").columns == ["image_id", "sharpness"]
    assert lake.read("t", version=0).columns == SCHEMA.fieldNames()


def test_bad_write_arguments_fail_before_any_work(spark, lake):
    df = frame(spark, rows(1))
    with pytest.raises(ValueError, match="mode must be one of"):
        lake.write(df, "t", mode="upsert")
    with pytest.raises(ValueError, match="pass both or neither"):
        lake.write(df, "t", app_id="job")
    assert not lake.exists("t")


def test_vacuum_removes_unreferenced_files_and_abandoned_write_folders(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(5)), "t")
    lake.write(frame(spark, rows(3, offset=50)), "t", mode="overwrite")
    abandoned = tmp_path / "t" / "data-killeddriver0000"  # what a driver killed before its commit leaves
    abandoned.mkdir()
    (abandoned / "part-00000.parquet").write_bytes(b"PAR1 never committed")
    recent = tmp_path / "t" / "data-inprogress00000"  # a write still running: too young to touch
    recent.mkdir()

    kept_an_hour = lake.vacuum("t", retention_hours=1)
    assert kept_an_hour == [] and abandoned.exists() and recent.exists()
    os.utime(abandoned, (0, 0))
    removed = lake.vacuum("t", retention_hours=0)
    assert "data-killeddriver0000/" in removed and not abandoned.exists()
    assert any(r.endswith(".parquet") for r in removed)  # version 0's files
    assert sorted(r.sample_id for r in lake.read("t").collect()) == ["s00050", "s00051", "s00052"]
    with pytest.raises(ValueError):
        lake.vacuum("t", retention_hours=-1)


def test_replace_where_replaces_only_the_matching_rows_in_one_commit(spark, lake):
    ledger = "recipe string, item int"
    lake.write(spark.createDataFrame([("a", 1), ("a", 2), ("b", 1)], ledger), "drops")
    result = lake.write(spark.createDataFrame([("a", 9)], ledger), "drops", mode="overwrite",
                        replace_where={"recipe": "a"}, commit_info={"recipe": "a"})
    assert result.version == 1
    assert sorted(tuple(r) for r in lake.read("drops").collect()) == [("a", 9), ("b", 1)]
    assert sorted(tuple(r) for r in lake.read("drops", version=0).collect()) == [("a", 1), ("a", 2), ("b", 1)]
    # a new column (an older ledger without it) is added, null for the rows kept
    wider = spark.createDataFrame([("b", 5, "x")], ledger + ", detail string")
    lake.write(wider, "drops", mode="overwrite", replace_where={"recipe": "b"})
    assert sorted(tuple(r) for r in lake.read("drops").collect()) == [("a", 9, None), ("b", 5, "x")]
    with pytest.raises(ValueError, match="replace_where needs mode='overwrite'"):
        lake.write(wider, "drops", mode="append", replace_where={"recipe": "b"})


def test_replacing_rows_that_fill_whole_files_touches_no_other_file(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    ledger = "recipe string, item int"
    lake.write(spark.createDataFrame([("a", i) for i in range(5)], ledger), "drops")
    lake.write(spark.createDataFrame([("b", i) for i in range(3)], ledger), "drops")
    files = lambda: set(deltalake.DeltaTable(lake.location("drops")).file_uris())  # noqa: E731
    before = files()
    lake.write(spark.createDataFrame([("a", 7)], ledger).coalesce(1), "drops", mode="overwrite",
               replace_where={"recipe": "a"})
    after = files()
    b_files = {f for f in before if f in after}
    assert b_files and len(after - before) == 1  # b's files are the same files; one new file for a
    assert sorted(tuple(r) for r in lake.read("drops").collect()) == [("a", 7), ("b", 0), ("b", 1), ("b", 2)]
    assert lake.read("drops", version=1).count() == 8


def test_commit_info_is_recorded_and_read_back_newest_first(spark, lake):
    df = spark.createDataFrame([("s", 0)], "sample_id string, position int")
    lake.write(df, "t", commit_info={"stage": "x", "params": {"n": 1}})
    lake.write(df, "t")
    lake.write(df, "t", commit_info={"stage": "x", "params": {"n": 2}})
    assert lake.commit_infos("t") == [(2, {"stage": "x", "params": {"n": 2}}), (0, {"stage": "x", "params": {"n": 1}})]
    assert '"n": 2' in lake.history("t").where("version = 2").first().user_metadata


def test_the_users_session_settings_are_left_as_they_were(spark, tmp_path):
    keys = ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType")
    spark.conf.set(keys[0], "America/Chicago")
    spark.conf.set(keys[1], "INT96")
    try:
        lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
        lake.write(frame(spark, rows(3)), "items")
        assert [spark.conf.get(k) for k in keys] == ["America/Chicago", "INT96"]
        footer = pq.ParquetFile(next((tmp_path / "lake" / "items").rglob("*.parquet"))).schema_arrow
        assert footer.field("seen_at").type == pa.timestamp("us", tz="UTC")  # written as Delta wants, not INT96
    finally:
        spark.conf.set(keys[0], "UTC")
        spark.conf.unset(keys[1])


def test_connect_registers_every_table_for_sql(spark, tmp_path):
    from mmcurate.lakehouse import connect

    root = str(tmp_path / "lake")
    Lakehouse.open(spark, root, backend="embedded").write(frame(spark, rows(4)), "items")
    lake = connect(root, spark=spark, backend="embedded")
    assert lake.spark is spark and lake.tables() == ["items"]
    assert spark.sql("SELECT count(*) AS n FROM items").first().n == 4


def _log_files(lake, table):
    return sorted(os.listdir(os.path.join(lake.location(table), "_delta_log")))


def test_a_checkpoint_every_ten_commits_bounds_what_reads_replay(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    for i in range(25):
        lake.write(frame(spark, rows(1, offset=i)).coalesce(1), "t", app_id="job", app_version=i,
                   commit_info={"step": "append", "i": i})
    assert [f for f in _log_files(lake, "t") if "checkpoint" in f] == [
        "00000000000000000010.checkpoint.parquet", "00000000000000000020.checkpoint.parquet", "_last_checkpoint"]
    for v in range(10):  # what Delta's log cleanup removes: readers must not need it any more
        os.remove(os.path.join(lake.location("t"), "_delta_log", f"{v:020d}.json"))
    assert lake.version("t") == 24
    assert sorted(r.sample_id for r in lake.read("t").collect()) == [f"s{i:05d}" for i in range(25)]
    assert lake.read("t", version=15).count() == 16
    assert [r.version for r in lake.history("t", limit=3).collect()] == [24, 23, 22]
    assert lake.commit_infos("t", limit=2) == [(24, {"step": "append", "i": 24}), (23, {"step": "append", "i": 23})]
    assert lake.newest_commit_info("t", lambda info: info["i"] == 12) == (12, {"step": "append", "i": 12})
    assert lake.write(frame(spark, rows(1)), "t", app_id="job", app_version=24).skipped  # txn from the checkpoint


def test_the_tables_checkpoint_interval_is_honoured(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(1)).coalesce(1), "t")
    deltalake.DeltaTable(lake.location("t")).alter.set_table_properties({"delta.checkpointInterval": "3"})
    for i in range(5):
        lake.write(frame(spark, rows(1, offset=i + 1)).coalesce(1), "t")
    assert lake.version("t") == 6
    assert [f for f in _log_files(lake, "t") if f.endswith(".checkpoint.parquet")] == [
        "00000000000000000003.checkpoint.parquet", "00000000000000000006.checkpoint.parquet"]


def test_vacuum_keeps_old_folders_that_a_retained_version_reads(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(frame(spark, rows(4)), "t")
    for folder in (tmp_path / "t").glob("data-*"):  # written long ago
        os.utime(folder, (0, 0))
    lake.write(frame(spark, rows(2, offset=10)), "t", mode="overwrite")  # replaced just now
    lake.vacuum("t", retention_hours=168)
    assert len(lake.read("t", version=0).collect()) == 4


def test_optimize_compacts_small_files_and_keeps_every_version(spark, lake):
    for i in range(4):
        lake.write(frame(spark, rows(5, offset=10 * i)), "t", app_id="job", app_version=i, commit_info={"i": i})
    files = lambda: deltalake.DeltaTable(lake.location("t")).file_uris()  # noqa: E731
    before, version_before, many = lake.read("t"), lake.version("t"), len(files())
    expected = before.collect()
    result = lake.optimize("t")
    assert many > 4 and len(files()) == 1
    assert (result.files_removed, result.files_added, result.version) == (many, 1, version_before + 1)
    assert result.bytes_added > 0 and result.bytes_removed > 0 and result.vacuumed == ()
    after = lake.read("t")
    assert after.schema == before.schema  # same types and nullability as Spark reads them
    assertDataFrameEqual(after, spark.createDataFrame(expected, before.schema))
    assertDataFrameEqual(lake.read("t", version=version_before), spark.createDataFrame(expected, before.schema))
    assert lake.commit_infos("t")[0] == (3, {"i": 3})
    assert lake.write(frame(spark, rows(5)), "t", app_id="job", app_version=3).skipped
    assert lake.optimize("t").files_removed == 0  # nothing small is left


def test_compacted_files_have_statistics_and_micros_timestamps(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    for i in range(3):
        lake.write(frame(spark, rows(4, offset=10 * i)), "t")
    lake.optimize("t")
    [add] = pa.table(deltalake.DeltaTable(lake.location("t")).get_add_actions(flatten=True)).to_pylist()
    assert (add["num_records"], add["min.sample_id"], add["max.sample_id"]) == (12, "s00000", "s00023")
    footer = pq.ParquetFile(os.path.join(lake.location("t"), add["path"])).schema_arrow
    assert footer.field("seen_at").type == pa.timestamp("us", tz="UTC")


def test_optimize_then_vacuum_frees_the_replaced_files(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    for i in range(3):
        lake.write(frame(spark, rows(4, offset=10 * i)), "t")
    result = lake.optimize("t", retention_hours=0)
    assert sum(r.endswith(".parquet") for r in result.vacuumed) == result.files_removed
    [live] = deltalake.DeltaTable(lake.location("t")).file_uris()
    assert [str(p) for p in (tmp_path / "t").rglob("*.parquet")] == [live]
    assert lake.read("t").count() == 12
    with pytest.raises(ValueError):
        lake.optimize("t", target_size=0)


def test_a_frame_known_to_be_empty_is_committed_without_a_spark_job(spark, lake):
    data = frame(spark, rows(4))
    sc = spark.sparkContext
    sc.setJobGroup("empty-writes", "writes of no_rows frames")
    try:
        created = lake.write(no_rows(data), "t", commit_info={"step": "test"}, app_id="a", app_version=1)
        appended = lake.write(no_rows(data), "t", commit_info={"step": "again"}, app_id="a", app_version=2)
        again = lake.write(no_rows(data), "t", app_id="a", app_version=2)  # seen: skipped
    finally:
        sc.setJobGroup("other", "")
    if isinstance(lake.backend, EmbeddedBackend):
        assert sc.statusTracker().getJobIdsForGroup("empty-writes") == []
    assert (created.version, created.rows_added, appended.version, appended.rows_added) == (0, 0, 1, 0)
    assert again.skipped
    assert lake.read("t").schema.fieldNames() == data.schema.fieldNames() and lake.read("t").count() == 0
    assert [info["step"] for _, info in lake.commit_infos("t")] == ["again", "test"]
    lake.write(data, "t")
    assert lake.read("t").count() == 4
    assert has_no_rows(no_rows(data)) and not has_no_rows(no_rows(data).select("*")) and not has_no_rows(data)
