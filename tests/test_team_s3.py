"""The team store with its data on S3 (``?data=s3://bucket/prefix``), on a real moto server.

Each test gets a bucket of its own and a new lake in a new PostgreSQL database; the person's
credentials come from the AWS environment that ``s3_server`` sets, never the URI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from s3_server import (  # noqa: F401  (s3_server: a pytest fixture)
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    s3_server,
    start_s3_server,
    use_server,
)

import nbtrack
from nbtrack.store import registry
from nbtrack.store.ducklake_store import DuckLakeStore, TeamStoreURIError, parse_uri
from nbtrack.store.lake_s3 import S3AccessError, S3CredentialsError
from nbtrack.tracking.state import state

pytestmark = pytest.mark.slow


class S3Lake:
    """A test's team store on S3: its URI, bucket and prefix."""

    def __init__(self, pg, s3, tmp_path, spool: str = "spool", bucket: str = "") -> None:
        self.pg, self.s3 = pg, s3
        self.database = pg.create_database("s3lake")
        self.bucket = bucket or s3.create_bucket("team")
        self.prefix = "lake/exp"
        self.tmp_path = tmp_path
        self.uri = self.machine_uri(spool)

    def machine_uri(self, spool: str) -> str:
        """The URI as a machine with its own spool folder writes it."""
        return (f"ducklake:postgresql://{self.pg.user}@{self.pg.host}:{self.pg.port}/"
                f"{self.database}?data=s3://{self.bucket}/{self.prefix}"
                f"&spool={self.tmp_path / spool}")


@pytest.fixture
def lake(postgres_server, s3_server, tmp_path, monkeypatch):  # noqa: F811  (fixtures)
    """A new team store with its data on a new bucket, made as ``nbtrack team init`` does."""
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    made = S3Lake(postgres_server, s3_server, tmp_path)
    DuckLakeStore(made.uri, create=True).close()
    yield made
    state.reset()
    registry.forget_stores()
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{made.database}" WITH (FORCE)')


def test_the_uri_takes_a_bucket_and_prefix_and_refuses_odd_ones():
    parts = parse_uri("ducklake:postgresql://me@db/team?data=s3://bucket/some/prefix/")
    assert parts["data"] == "s3://bucket/some/prefix"
    for bad in ("s3://", "s3:///prefix", "s3://bucket/a/../b", "gs://bucket/x"):
        with pytest.raises(TeamStoreURIError):
            parse_uri(f"ducklake:postgresql://me@db/team?data={bad}")


def test_runs_and_search_keep_their_parquet_files_in_the_bucket(lake):
    nbtrack.set_tracking_uri(lake.uri)
    for lr in (0.1, 0.2, 0.3):
        with nbtrack.start_run():
            nbtrack.log_param("lr", lr)
            for step in range(30):  # more rows than DuckLake inlines: a Parquet file
                nbtrack.log_metric("loss", lr * step, step=step)
    runs = nbtrack.search_runs(filter_string="params.lr != '0.1'", order_by=["params.lr"])
    assert list(runs["params.lr"]) == ["0.2", "0.3"]
    history = nbtrack.Client().get_metric_history(runs["run_id"][0], "loss")
    assert [m.step for m in history] == list(range(30))
    parquet = [k for k in lake.s3.keys(lake.bucket) if k.endswith(".parquet")]
    assert parquet and all(k.startswith(lake.prefix + "/") for k in parquet)
    assert not list(lake.tmp_path.rglob("*.parquet")), "no data file may be local"


def test_sql_reaches_neither_local_files_nor_other_buckets(lake):
    other = lake.s3.create_bucket("other")
    lake.s3.client().put_object(Bucket=other, Key="secret.csv", Body=b"a\n1\n")
    lake.s3.client().put_object(Bucket=lake.bucket, Key="lake/exp2/secret.csv", Body=b"a\n1\n")
    nbtrack.set_tracking_uri(lake.uri)
    with nbtrack.start_run():
        nbtrack.log_metric("m", 1.0)
    assert len(nbtrack.sql("SELECT * FROM runs")) == 1
    for query in ("SELECT * FROM read_text('/etc/passwd')",
                  f"SELECT * FROM read_csv('s3://{other}/secret.csv')",
                  f"SELECT * FROM read_csv('s3://{lake.bucket}/lake/exp2/secret.csv')",
                  f"COPY (SELECT 1) TO 's3://{other}/out.parquet'"):
        with pytest.raises(Exception, match=r"refused|disabled|read-only SELECT"):
            nbtrack.sql(query)
    assert lake.s3.keys(other) == ["secret.csv"]


def test_without_credentials_the_error_says_where_they_come_from(lake, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(S3CredentialsError, match=r"AWS_ACCESS_KEY_ID.*AWS_PROFILE"):
        DuckLakeStore(lake.machine_uri("spool-2"))


def test_credentials_come_from_a_profile_too(lake, monkeypatch, tmp_path):
    key, secret = lake.s3.environment()["AWS_ACCESS_KEY_ID"], "from-the-profile"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    profile = tmp_path / "credentials"
    profile.write_text(f"[team]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(profile))
    monkeypatch.setenv("AWS_PROFILE", "team")
    nbtrack.set_tracking_uri(lake.machine_uri("spool-2"))
    with nbtrack.start_run():
        nbtrack.log_metric("m", 2.0)
    assert list(nbtrack.search_runs()["metrics.m"]) == [2.0]


MACHINE_TWO = """
import sys
import nbtrack
nbtrack.set_tracking_uri(sys.argv[1])
import nbtrack.sklearn
for uri in sys.argv[2:]:
    print(nbtrack.sklearn.load_model(uri).predict([[4.0]])[0])
"""


def test_artifacts_and_models_live_in_the_bucket_and_load_on_another_machine(lake, tmp_path):
    from sklearn.linear_model import LinearRegression

    nbtrack.set_tracking_uri(lake.uri)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with nbtrack.start_run() as run:
        nbtrack.log_artifact(str(notes), "docs")
        nbtrack.log_text("more", "docs/more.txt")
        info = nbtrack.sklearn.log_model(LinearRegression().fit([[0], [1]], [0, 2]), name="model",
                                         registered_model_name="line")
    run_id = run.info.run_id
    keys = lake.s3.keys(lake.bucket, f"{lake.prefix}/artifacts/{run_id}/")
    assert f"{lake.prefix}/artifacts/{run_id}/docs/notes.txt" in keys
    assert any(k.endswith("/MLmodel") for k in keys)
    with pytest.raises(Exception, match="climbs out"):
        nbtrack.log_text("x", "../../escape.txt")  # no active run: the check comes first
    # another machine: its own spool, so its own (empty) artifact cache
    other = lake.machine_uri("spool-2")
    nbtrack.set_tracking_uri(other)
    client = nbtrack.Client()
    assert [f.path for f in client.list_artifacts(run_id, "docs")] == ["docs/more.txt",
                                                                        "docs/notes.txt"]
    copied = client.download_artifacts(run_id, "docs/notes.txt", tmp_path / "out")
    assert Path(copied).read_text() == "hello"
    done = subprocess.run(
        [sys.executable, "-c", MACHINE_TWO, lake.machine_uri("spool-3"), info.model_uri,
         "models:/line/1"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(nbtrack.__file__))})
    assert done.returncode == 0, done.stderr
    assert [round(float(x), 6) for x in done.stdout.split()] == [8.0, 8.0]
    assert (tmp_path / "spool-3" / "artifacts" / run_id / "model" / "MLmodel").is_file()
    # a key that someone put in the bucket to climb out of the run is refused, never fetched
    lake.s3.client().put_object(Bucket=lake.bucket, Body=b"x",
                                Key=f"{lake.prefix}/artifacts/{run_id}/a/../../../../escaped")
    with pytest.raises(Exception, match="climbs out"):
        client.list_artifacts(run_id)
    assert not list(tmp_path.rglob("escaped"))


def _iam_user(iam, name: str, actions: list[str]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture
def enforcing_s3(monkeypatch):
    """A moto server of this test's own that enforces IAM: a writer's and a reader's keys."""
    import boto3

    server = start_s3_server()
    try:
        iam = boto3.client("iam", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                           aws_secret_access_key=SECRET_KEY, region_name=REGION)
        keys = {"writer": _iam_user(iam, "writer", ["s3:*"]),
                "reader": _iam_user(iam, "reader", ["s3:GetObject", "s3:ListBucket"])}
        bucket = server.create_bucket("team")
        # from here on every request needs an IAM user's key, and its policy is checked
        assert requests_post(f"{server.endpoint}/moto-api/reset-auth", b"0")["status"] == "ok"
        yield server, keys, bucket
    finally:
        server.stop()


def requests_post(url: str, body: bytes) -> dict:
    """POST ``body`` to ``url``; the JSON answer."""
    from urllib.request import Request, urlopen

    request = Request(url, data=body, headers={"Content-Type": "text/plain"})
    with urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_a_readers_s3_key_reads_everything_but_its_writes_are_refused_clearly(
        postgres_server, enforcing_s3, monkeypatch, tmp_path):
    server, keys, bucket = enforcing_s3
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    use_server(monkeypatch, server, *keys["writer"])
    made = S3Lake(postgres_server, server, tmp_path, bucket=bucket)
    DuckLakeStore(made.uri, create=True).close()
    nbtrack.set_tracking_uri(made.uri)
    notes = tmp_path / "notes.txt"
    notes.write_text("by the writer")
    with nbtrack.start_run() as run:
        nbtrack.log_artifact(str(notes))
        for step in range(30):
            nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
    state.reset()
    registry.forget_stores()

    use_server(monkeypatch, server, *keys["reader"])  # another person, another machine
    nbtrack.set_tracking_uri(made.machine_uri("reader-spool"))
    client = nbtrack.Client()
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 30
    copied = client.download_artifacts(run.info.run_id, "notes.txt", tmp_path / "out")
    assert Path(copied).read_text() == "by the writer"
    url = f"s3://{made.bucket}/{made.prefix}/artifacts/{run.info.run_id}/more.txt"
    with pytest.raises(S3AccessError, match=f"refused to write {url} \\(AccessDenied\\)"):
        client.log_text(run.info.run_id, "by the reader", "more.txt")
    assert "more.txt" not in [f.path for f in client.list_artifacts(run.info.run_id)]

    with nbtrack.start_run() as mine:  # logging never blocks nor raises ...
        for step in range(30):  # more than DuckLake inlines: a Parquet file to write
            nbtrack.log_metric("acc", step / 30, step=step)
    data = f"s3://{made.bucket}/{made.prefix}/main/"
    with pytest.raises(S3AccessError, match=f"refused to write {data}.*reader's credentials"):
        nbtrack.search_runs()  # ... the merge is refused, and says so
    with pytest.raises(S3AccessError):
        registry.forget_stores()  # closing tries once more
    state.reset()
    use_server(monkeypatch, server, *keys["writer"])  # the same machine, a writer's key
    nbtrack.set_tracking_uri(made.machine_uri("reader-spool"))
    history = nbtrack.Client().get_metric_history(mine.info.run_id, "acc")
    assert len(history) == 30, "the refused values waited in the spool"
    state.reset()
    registry.forget_stores()
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{made.database}" WITH (FORCE)')
