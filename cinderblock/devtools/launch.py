"""What the throw-away servers of the test tools share (Keystone, Glance, the conformance run): a venv
installed once behind a stamp and a lock, free ports, pids, log tails and small JSON requests.

Standard library only: keystone_server.py and glance_server.py also run as scripts under their own venv's
Python, where cinderblock is not importable (they then import this file as a sibling module).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock(2) on `path`: one installer at a time, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(venv: Path, requirements: Sequence[str], import_check: str, stamp_name: str,
                error: Callable[[str], Exception], say: Callable[[str], None]) -> Path:
    """`venv` with `requirements` installed (created on first use, then reused through a stamp file named
    `.installed-<stamp_name>`); `import_check` is Python that must import once installed."""
    stamp = venv / f".installed-{stamp_name}"
    if stamp.exists():
        return venv
    with locked(venv.parent / f".{venv.name}.lock"):
        if stamp.exists():
            return venv
        python = venv / "bin" / "python"
        if not (venv / "bin" / "pip").exists():  # none yet, or one whose creation was cut short
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        say(f"installing {' '.join(requirements)} into {venv} (first run only, about a minute)")
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               *requirements], capture_output=True, text=True)
        if done.returncode != 0:
            raise error(f"pip install {' '.join(requirements)} failed: {done.stderr.strip()[-3000:]}")
        subprocess.run([str(python), "-c", import_check], check=True, capture_output=True)
        for old in venv.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return venv


def request(url: str, method: str = "GET", body: bytes | Mapping[str, Any] | None = None,
            token: str | None = None, content_type: str = "application/json",
            timeout: float = 30.0) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or text) of one request; HTTP errors are answers, not exceptions."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    prepared = urllib.request.Request(url, data=data, method=method)
    prepared.add_header("Accept", "application/json")
    if data is not None:
        prepared.add_header("Content-Type", content_type)
    if token:
        prepared.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:  # noqa: S310 -- loopback URL
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as failure:
        raw = failure.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return failure.code, dict(failure.headers), parsed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def serve_wsgi_serially(app: Callable[..., Any], port: int, banner: str,
                        prepare: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve a WSGI app on 127.0.0.1:port until SIGTERM, one request at a time through the app.

    Keystone and Glance on SQLite: two threads that both read and then write deadlock and one fails
    at once with "database is locked" (a 500). Threads still accept and send, so a slow client does
    not hold the others up. `prepare(environ)` runs first, outside the lock."""
    import signal
    import socketserver
    import threading
    from wsgiref import simple_server

    serial = threading.Lock()

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if prepare is not None:
            prepare(environ)
        with serial:
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                if hasattr(body, "close"):
                    body.close()

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 64

        def server_bind(self) -> None:  # no reverse DNS of the address (HTTPServer.server_bind does one)
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = "127.0.0.1", port
            self.setup_environ()

    class Handler(simple_server.WSGIRequestHandler):
        def address_string(self) -> str:
            return str(self.client_address[0])

    server = Server(("127.0.0.1", port), Handler)
    server.set_app(application)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(banner, file=sys.stderr, flush=True)
    server.serve_forever()
