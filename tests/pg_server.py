"""A real PostgreSQL server for tests: its own data folder, an unprivileged user, loopback only.

One server per test session (``postgres_server``, session-scoped); each test makes its own
databases and roles on it (``PostgresServer.create_database``, ``create_role``), so tests never
see each other's catalogs. Use it from a test module with::

    from pg_server import postgres_server  # noqa: F401  (a pytest fixture)

It skips, saying why, only where the PostgreSQL binaries (``initdb``, ``pg_ctl``, ``psql``) are
absent; CI installs them. As root, the server runs as the ``postgres`` user (initdb refuses
root). The superuser logs in with a password over TCP on 127.0.0.1 (``scram-sha-256``), as a
team's server would; tests that need other people create roles with their own passwords.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

SUPERUSER = "nbtrack_admin"


def postgres_bin_dir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``/``psql``: Debian's newest version, else the PATH."""
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for candidate in sorted(root.glob("*/bin"), reverse=True):
            if (candidate / "initdb").is_file() and (candidate / "psql").is_file():
                return candidate
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl") and shutil.which("psql"):
        return Path(found).parent
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A started server: where it listens, the superuser's password, and a few admin helpers."""

    def __init__(self, bin_dir: Path, root: Path, run_as: list[str]) -> None:
        self.bin_dir, self.root, self.run_as = bin_dir, root, run_as
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = SUPERUSER
        self.password = secrets.token_hex(12)
        self.data = root / "data"

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        self.give_to_server(pwfile)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "-E", "UTF8", "--no-locale")
        pwfile.unlink()
        self.resume()

    def resume(self) -> None:
        """Start the server on its data folder (after ``stop``); wait until TCP answers."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
                   "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l",
                  str(self.root / "log"), "-o", options, "start")
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waits for the socket; be sure TCP answers too
            try:
                self.psql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data),
                        "-m", "fast", "stop"], capture_output=True, check=False)

    def give_to_server(self, path: Path) -> None:
        if self.run_as:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self.run_as, str(self.bin_dir / program), *args],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            log = self.root / "log"
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr}"
                               + (log.read_text() if log.exists() else ""))

    # administration -------------------------------------------------------------------------
    def psql(self, sql: str, database: str = "postgres", user: str | None = None,
             password: str | None = None) -> str:
        """Run SQL with ``psql`` (as the superuser unless told); return its unaligned output."""
        env = {**os.environ, "PGPASSWORD": self.password if user is None else (password or "")}
        done = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", user or self.user, "-d", database,
             "-c", sql],
            capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, "psql", done.stdout,
                                                done.stderr)
        return done.stdout.strip()

    def create_database(self, prefix: str = "nbtrack") -> str:
        """A new, empty database with a unique name; returns the name."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def create_role(self, prefix: str = "person", password: str | None = None,
                    superuser: bool = False) -> tuple[str, str]:
        """A new login role with a password; returns ``(name, password)``."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        password = password or secrets.token_hex(12)
        self.psql(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"
                  + (" SUPERUSER" if superuser else ""))
        return name, password

    def libpq(self, database: str, user: str | None = None, password: str | None = None,
              with_password: bool = True) -> str:
        """A libpq key/value connection string (what DuckDB's postgres extension takes)."""
        text = f"host={self.host} port={self.port} dbname={database} user={user or self.user}"
        if with_password:
            text += f" password={password if user else self.password}"
        return text

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A ``postgresql://user:password@host:port/db`` URL."""
        secret = password if user else self.password
        return (f"postgresql://{quote(user or self.user)}:{quote(secret or '')}@{self.host}:"
                f"{self.port}/{database}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the test session, stopped and removed at its end."""
    yield from running_server()


def running_server() -> Iterator[PostgresServer]:
    """Start a server of its own (skipping where PostgreSQL is missing); stop it afterwards.

    A test that stops its server (an outage) uses one of these rather than the session's.
    """
    # CI installs PostgreSQL and sets NBTRACK_REQUIRE_POSTGRES=1: there, a skip is a failure
    missing = pytest.fail if os.environ.get("NBTRACK_REQUIRE_POSTGRES") == "1" else pytest.skip
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing("PostgreSQL is not installed (initdb, pg_ctl and psql are needed; "
                "on Debian: apt-get install postgresql)")
    assert bin_dir is not None
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="nbtrack-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root, and there is no postgres user to run the server as")
        run_as = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir, root, run_as)
    server.give_to_server(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
