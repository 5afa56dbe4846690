"""Start a throw-away OpenStack Glance on loopback behind a Keystone, for the conformance run.

PyPI's `glance` is installed once into a venv of its own (`.venv-glance` in the repository, or
`$CINDERBLOCK_GLANCE_VENV`). Everything a Glance writes lives in its directory `<dir>`: glance-api.conf
and glance-api-paste.ini (keystonemiddleware in the pipeline, `[keystone_authtoken]` for the service
user `glance`), the SQLite database, the file store (`images/`), the staging area, the pid file, the
log and `glance.json` (what a caller needs). Glance 33 has no server of its own (`glance-api` only
says to use `glance.wsgi.api:application`): the WSGI application from `glance.common.wsgi_app` is
served on 127.0.0.1:<port> with the standard library's wsgiref, as keystone_server does.

Only the Keystone's URL is needed to start, so a Glance starts while its Keystone does; once that
Keystone answers, `register()` creates the `glance` service user and the catalog entry `image`
(public/internal/admin), and `upload_image()` stores an image.

    python -m cinderblock.devtools.glance_server start --dir D --keystone-dir K   # K: keystone_server's
    python -m cinderblock.devtools.glance_server stop|status --dir D

This file imports the standard library only (keystone_server on the caller's side): the server side
runs it as a script with the glance venv's Python (`_serve`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from cinderblock.devtools import launch
except ImportError:  # run as a script under its own venv's Python, where cinderblock is not installed
    import launch  # type: ignore[no-redef]

_free_port, _alive, _wait_dead, _tail = launch.free_port, launch.alive, launch.wait_dead, launch.tail

if TYPE_CHECKING:
    from cinderblock.devtools.keystone_server import Keystone

GLANCE_VERSION = "33.0.0"
REPO = Path(__file__).resolve().parents[2]
SERVICE_USER = "glance"


class GlanceError(RuntimeError):
    pass


def default_venv() -> Path:
    return Path(os.environ.get("CINDERBLOCK_GLANCE_VENV") or REPO / ".venv-glance")


@dataclass(frozen=True)
class Glance:
    """A running Glance: where it answers and the service user its keystonemiddleware logs in as."""

    root: str
    port: int
    pid: int
    url: str  # http://127.0.0.1:<port>, the image endpoint (clients add /v2)
    auth_url: str  # the Keystone it validates tokens with
    service_username: str
    service_password: str


# -- files of one Glance ----------------------------------------------------------------------------

def _paths(root: Path) -> dict[str, Path]:
    return {"conf": root / "glance-api.conf", "paste": root / "glance-api-paste.ini", "db": root / "glance.db",
            "images": root / "images", "staging": root / "staging", "pid": root / "glance.pid",
            "log": root / "glance.log", "info": root / "glance.json"}


CONF_TEMPLATE = """\
[DEFAULT]
debug = false
# the legacy single file store; staging (image import) in a directory of its own
node_staging_uri = file://{staging}
# Glance refuses to start unless both say the same (the new secure-RBAC defaults, as Keystone's)
enforce_secure_rbac = true

[database]
connection = sqlite:///{db}

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {images}

[paste_deploy]
flavor = keystone

[oslo_policy]
enforce_new_defaults = true

{authtoken}"""

# Glance's keystone pipeline without cors, healthcheck, proxy headers and osprofiler: nothing here
# uses them.
PASTE = """\
[pipeline:glance-api-keystone]
pipeline = versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
"""


# -- the glance venv --------------------------------------------------------------------------------

def ensure_venv(venv: Path | None = None) -> Path:
    """The venv with PyPI glance (created on first use, then reused through a stamp file)."""
    return launch.ensure_venv(venv or default_venv(), [f"glance=={GLANCE_VERSION}"],
                              "import glance.common.wsgi_app, keystonemiddleware.auth_token",
                              f"glance-{GLANCE_VERSION}", GlanceError, lambda line: print(line, file=sys.stderr))


# -- HTTP and process helpers (standard library only) -----------------------------------------------

def _request(url: str, method: str = "GET", body: bytes | Mapping[str, Any] | None = None,
             token: str | None = None, content_type: str = "application/json",
             timeout: float = 60.0) -> tuple[int, Any]:
    status, _, answer = launch.request(url, method, body, token, content_type, timeout)
    return status, answer


def _pid(root: Path) -> int | None:
    try:
        pid = int(_paths(root)["pid"].read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


# -- start, register, stop --------------------------------------------------------------------------

def running(root: Path | str) -> Glance | None:
    """The Glance started in root, if its process is alive."""
    root = Path(root).resolve()
    paths = _paths(root)
    if _pid(root) is None or not paths["info"].exists():
        return None
    return Glance(**json.loads(paths["info"].read_text()))


def start(root: Path | str, auth_url: str, port: int | None = None, venv: Path | None = None,
          timeout: float = 120.0) -> Glance:
    """Start (or find already running) the Glance of root, validating tokens with the Keystone at
    auth_url (its v3 URL), which need not answer yet. Returns once Glance answers GET /versions;
    requests with a token work after register()."""
    from cinderblock.devtools import keystone_server  # the caller's side; _serve runs without the package

    root = Path(root).resolve()
    found = running(root)
    if found is not None:
        if found.auth_url != auth_url:
            raise GlanceError(f"a Glance already runs from {root} against {found.auth_url}, not {auth_url}")
        return found
    venv = ensure_venv(venv)
    paths = _paths(root)
    root.mkdir(parents=True, exist_ok=True)
    paths["images"].mkdir(exist_ok=True)
    paths["staging"].mkdir(exist_ok=True)
    if paths["info"].exists() and paths["db"].exists():  # restart over an existing database: same user
        old = json.loads(paths["info"].read_text())
        password, port = old["service_password"], port or int(old["port"])
    else:
        password = secrets.token_urlsafe(16)
    port = port or _free_port()
    authtoken = keystone_server.authtoken_section(auth_url, SERVICE_USER, password)
    paths["conf"].write_text(CONF_TEMPLATE.format(staging=paths["staging"], db=paths["db"], images=paths["images"],
                                                  authtoken=authtoken))
    paths["paste"].write_text(PASTE)
    done = subprocess.run([str(venv / "bin" / "glance-manage"), "--config-file", str(paths["conf"]), "db_sync"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    if done.returncode != 0:
        raise GlanceError(f"glance-manage db_sync failed ({done.returncode}): {done.stderr.strip()[-3000:]}")

    log = open(paths["log"], "ab")  # noqa: SIM115 -- handed to the child
    try:
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=str(root), PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen([str(venv / "bin" / "python"), str(Path(__file__).resolve()), "_serve",
                                 "--port", str(port)], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    paths["pid"].write_text(str(proc.pid))
    glance = Glance(root=str(root), port=port, pid=proc.pid, url=f"http://127.0.0.1:{port}", auth_url=auth_url,
                    service_username=SERVICE_USER, service_password=password)
    try:
        _wait_ready(glance, proc, timeout)
    except BaseException:
        stop(root)
        raise
    paths["info"].write_text(json.dumps(asdict(glance), indent=2))
    return glance


def _wait_ready(glance: Glance, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GlanceError(f"glance exited with {proc.returncode}:\n{_tail(_paths(Path(glance.root))['log'])}")
        try:
            status, _ = _request(f"{glance.url}/versions", timeout=5.0)
            if status == 200:
                return
            last = f"GET /versions: {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise GlanceError(f"glance did not answer GET /versions within {timeout:.0f}s ({last}):\n"
                      f"{_tail(_paths(Path(glance.root))['log'])}")


def register(glance: Glance, keystone: Keystone) -> None:
    """Glance's service user (roles admin and service, for keystonemiddleware) and the catalog entry
    `image` (public, internal, admin) in keystone, which must be the Keystone at glance.auth_url."""
    from cinderblock.devtools import keystone_server

    if keystone.url != glance.auth_url:
        raise GlanceError(f"this Glance validates tokens with {glance.auth_url}, not {keystone.url}")
    keystone_server.ensure_service_user(keystone, glance.service_username, glance.service_password)
    keystone_server.register_service(keystone, "image", "glance", glance.url)


def upload_image(glance: Glance, token: str, name: str, data: bytes, disk_format: str = "raw",
                 container_format: str = "bare", visibility: str = "public", timeout: float = 60.0) -> str:
    """Create an image, store data as its file and wait until it is active; returns its id.
    A public image needs an admin's token (Glance's default policy)."""
    status, image = _request(f"{glance.url}/v2/images", "POST", {
        "name": name, "disk_format": disk_format, "container_format": container_format,
        "visibility": visibility}, token)
    if status != 201:
        raise GlanceError(f"POST /v2/images: {status} {image}")
    image_id: str = image["id"]
    status, answer = _request(f"{glance.url}/v2/images/{image_id}/file", "PUT", data, token,
                              content_type="application/octet-stream", timeout=timeout)
    if status != 204:
        raise GlanceError(f"PUT /v2/images/{image_id}/file: {status} {answer}")
    deadline = time.monotonic() + timeout
    while True:
        status, image = _request(f"{glance.url}/v2/images/{image_id}", token=token)
        if status == 200 and image["status"] == "active":
            return image_id
        if time.monotonic() > deadline or (status == 200 and image["status"] in ("killed", "deleted")):
            raise GlanceError(f"image {image_id} is not active: {status} {image}")
        time.sleep(0.2)


def ensure_image(glance: Glance, token: str, name: str, data: bytes, **options: Any) -> str:
    """The id of the active image called name (a Glance kept from an earlier run has it), else of a
    new one uploaded with upload_image."""
    status, found = _request(f"{glance.url}/v2/images?name={urllib.parse.quote(name)}&status=active", token=token)
    if status != 200:
        raise GlanceError(f"GET /v2/images?name={name}: {status} {found}")
    for image in found["images"]:
        if image.get("size") == len(data):
            return image["id"]  # type: ignore[no-any-return]
    return upload_image(glance, token, name, data, **options)


def stop(root: Path | str, timeout: float = 10.0) -> bool:
    """Stop the Glance of root (True if one was running). Its files stay in root."""
    root = Path(root).resolve()
    pid = _pid(root)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and nothing else
    if not _wait_dead(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_dead(pid, 5.0)
    _paths(root)["pid"].unlink(missing_ok=True)
    return True


# -- the server (runs in the glance venv) -----------------------------------------------------------

def _dechunk(stream: Any) -> bytes:
    """A chunked request body (Tempest uploads image files so) read whole: wsgiref passes the raw
    socket stream on, and Glance reads to Content-Length."""
    parts: list[bytes] = []
    while True:
        size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):  # trailers, up to the blank line
                pass
            return b"".join(parts)
        parts.append(stream.read(size))
        stream.readline()  # the CRLF after the chunk


def _serve(port: int) -> None:
    import concurrent.futures.thread  # noqa: F401 -- Glance's atexit hook imports it late otherwise, and fails
    import io

    sys.argv = sys.argv[:1]  # glance's oslo.config reads its files from OS_GLANCE_CONFIG_DIR
    from glance.common import wsgi_app

    def dechunk(environ: dict[str, Any]) -> None:
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = _dechunk(environ["wsgi.input"])
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]

    launch.serve_wsgi_serially(wsgi_app.init_app(), port, f"glance serving on http://127.0.0.1:{port}", dechunk)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glance", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("start", "stop", "status"):
        p = sub.add_parser(command)
        p.add_argument("--dir", required=True, help="this Glance's files")
        if command == "start":
            p.add_argument("--keystone-dir", required=True, help="the directory of a running keystone_server")
            p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    serve = sub.add_parser("_serve", help=argparse.SUPPRESS)
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "_serve":
        _serve(args.port)
        return 0
    root = Path(args.dir).resolve()
    try:
        if args.command == "start":
            from cinderblock.devtools import keystone_server

            keystone = keystone_server.running(args.keystone_dir)
            if keystone is None:
                print(f"glance: no Keystone runs from {args.keystone_dir}", file=sys.stderr)
                return 1
            glance = start(root, keystone.url, args.port)
            register(glance, keystone)
            print(json.dumps(asdict(glance), indent=2))
        elif args.command == "stop":
            print("stopped" if stop(root) else "not running", file=sys.stderr)
        else:
            found = running(root)
            print(json.dumps({"dir": str(root), "running": found is not None,
                              **({"url": found.url, "pid": found.pid} if found else {})}, indent=2))
            return 0 if found else 3
    except GlanceError as exc:
        print(f"glance: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
