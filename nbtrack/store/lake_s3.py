"""A team store's data on S3 (``?data=s3://bucket/prefix``): credentials and DuckDB's access.

The person's credentials come from where AWS's own tools find them, never from the URI or the
store: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), or a profile
(``AWS_PROFILE``, ``~/.aws/credentials``); the region from ``AWS_REGION`` or the profile; an
S3-compatible server's address from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` or the profile's
``endpoint_url``. boto3 resolves them (``pip install "nbtrack[team]"``) and they become a
temporary DuckDB secret scoped to the lake's prefix, made on each connection before the lake is
attached: it lives in that connection's memory only. ``httpfs`` is loaded only for such a lake.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from nbtrack.exceptions import NbtrackError
from nbtrack.store import lake_extensions

SCHEME = "s3://"
#: the name of the DuckDB secret that holds the person's S3 credentials
SECRET = "nbtrack_lake_s3"


class S3CredentialsError(NbtrackError):
    """No S3 credentials were found for a team store whose data is on S3."""


class S3AccessError(NbtrackError, PermissionError):
    """The object store refused a read or a write with the person's S3 credentials.

    A ``PermissionError`` (so an ``OSError``): a merge it stops keeps its values in the spool.
    """


#: how DuckDB's httpfs words a refused request
_FORBIDDEN = re.compile(r"URL (s3://\S+?):? Forbidden \(HTTP code 403\)")


def access_error(action: str, url: str, code: str) -> S3AccessError:
    """The error for a refused ``action`` ("read", "write") of ``url``, saying what to do."""
    return S3AccessError(
        f"The object store refused to {action} {url} ({code}): the S3 credentials in use "
        "(AWS_ACCESS_KEY_ID or AWS_PROFILE) do not allow it. A reader's credentials may read "
        "the team store but not write it; ask the team's maintainer for a writer's. Nothing "
        "was lost: logged values wait in this machine's spool, files where they came from.")


def refused(exc: BaseException, action: str) -> S3AccessError | None:
    """``access_error`` for a DuckDB error that is S3 refusing a request, else None."""
    found = _FORBIDDEN.search(str(exc))
    return access_error(action, found.group(1), "AccessDenied") if found else None


def is_s3(data: str) -> bool:
    """Whether a lake's data path is on S3."""
    return data.startswith(SCHEME)


def split(data: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as ``(bucket, prefix)`` (the prefix without slashes at its ends)."""
    bucket, _, prefix = data[len(SCHEME):].partition("/")
    return bucket, prefix.strip("/")


def check_uri(data: str) -> str:
    """The data path ``s3://bucket/prefix`` normalised, or a ``ValueError`` saying what is wrong."""
    bucket, prefix = split(data)
    if not bucket or (prefix and any(part in ("", ".", "..") for part in prefix.split("/"))):
        raise ValueError(f"?data={data} is not s3://bucket/prefix")
    return f"{SCHEME}{bucket}/{prefix}" if prefix else f"{SCHEME}{bucket}"


def session():
    """A boto3 session with the person's profile (``AWS_PROFILE``) and environment."""
    try:
        import boto3
    except ImportError:
        raise S3CredentialsError(
            'A team store with its data on S3 needs boto3: pip install "nbtrack[team]".') from None
    return boto3.Session()


def client():
    """An S3 client with the person's credentials, region and endpoint."""
    return session().client("s3")


def secret_sql(data: str) -> str:
    """``CREATE SECRET`` for DuckDB's httpfs with the person's credentials, scoped to ``data``."""
    found = session()
    credentials = found.get_credentials()
    if credentials is None:
        raise S3CredentialsError(
            f"No S3 credentials for the team store's data on {data}. Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a server other than AWS), or "
            "AWS_PROFILE naming a profile in ~/.aws/credentials; never put them in the URI.")
    frozen = credentials.get_frozen_credentials()
    endpoint = urlparse(found.client("s3").meta.endpoint_url)
    options = {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key,
               "REGION": found.region_name or "us-east-1", "SCOPE": data.rstrip("/") + "/"}
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    if not (endpoint.hostname or "").endswith("amazonaws.com"):  # an S3-compatible server
        options.update(ENDPOINT=endpoint.netloc, URL_STYLE="path",
                       USE_SSL="true" if endpoint.scheme == "https" else "false")
    listed = ", ".join(f"{key} {_literal(value)}" for key, value in options.items())
    return f"CREATE OR REPLACE TEMPORARY SECRET {SECRET} (TYPE s3, {listed})"


def _literal(value: str) -> str:
    if value in ("true", "false"):
        return value
    return "'" + value.replace("'", "''") + "'"


def prepare(raw, data: str) -> None:
    """Load httpfs and make the S3 secret on ``raw`` if the lake's data is on S3."""
    if is_s3(data):
        lake_extensions.load(raw, ("httpfs",))
        raw.execute(secret_sql(data))
