"""A real PostgreSQL server on loopback for the storage tests, started from the machine's binaries
(Debian's `postgresql` package; `scripts/setup.sh` installs it) in a throwaway data directory."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "fleet-test-pw"  # a throwaway server on loopback


def _bindir() -> Path:
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)),
                                           None)
    if found is None:
        raise RuntimeError("PostgreSQL's server binaries (pg_ctl, initdb) are not installed: run scripts/setup.sh, "
                           "or apt-get install postgresql")
    return Path(found).resolve().parent


@contextmanager
def postgres_server(port: int) -> Iterator[str]:
    """A PostgreSQL server with a password-protected `fleet` superuser on 127.0.0.1:port; yields
    its URL. The server refuses to run as root, so as root it runs as the `postgres` user (its data
    directory then sits in /tmp: pytest's own temp folders are closed to other users)."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD)
    run_as: list[str] = []
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")  # KeyError: no postgres user to run the server as
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        done = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "fleet", f"--pwfile={pwfile}", "--auth=scram-sha-256",
        "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://fleet:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)
