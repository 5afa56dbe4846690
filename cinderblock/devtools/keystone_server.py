"""Start a throw-away OpenStack Keystone on loopback, for development, tests and the conformance run.

PyPI's `keystone` is installed once into a venv of its own (`.venv-keystone` in the repository, or
`$CINDERBLOCK_KEYSTONE_VENV`). Everything a Keystone writes lives in its directory `<dir>`:
keystone.conf, the SQLite database, the fernet and credential key repositories, the pid file, the log
and `keystone.json` (what a caller needs). The start runs db_sync, fernet_setup, credential_setup and
bootstrap (user `admin`, project `admin`, region RegionOne, identity endpoints public, internal and
admin), creates the `cinder` service user (roles admin and service in project `service`), serves the
WSGI application on 127.0.0.1:<port> with the standard library's wsgiref (one thread per request),
and returns once `POST /v3/auth/tokens` answers. With a volume endpoint it also registers the
block-storage service (types `block-storage` and `volumev3`, public/internal/admin).

    python -m cinderblock.devtools.keystone_server start --dir /tmp/cb-keystone [--port P]
        [--volume-endpoint 'http://127.0.0.1:8776/v3/$(project_id)s']      # prints shell exports
    python -m cinderblock.devtools.keystone_server env|status|stop --dir /tmp/cb-keystone

`scripts/keystone` wraps this module. This file imports the standard library only: the server side
runs it as a script with the keystone venv's Python (`_serve`).
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
from typing import Any

try:
    from cinderblock.devtools import launch
except ImportError:  # run as a script under its own venv's Python, where cinderblock is not installed
    import launch  # type: ignore[no-redef]

_request, _free_port, _alive = launch.request, launch.free_port, launch.alive
_wait_dead, _tail = launch.wait_dead, launch.tail

KEYSTONE_VERSION = "30.0.0"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = os.environ.get("CINDERBLOCK_KEYSTONE_DIR", "/tmp/cinderblock-keystone")
REGION = "RegionOne"
DOMAIN = "Default"
VOLUME_SERVICE_TYPES = ("block-storage", "volumev3")
INTERFACES = ("public", "internal", "admin")


class KeystoneError(RuntimeError):
    pass


def default_venv() -> Path:
    return Path(os.environ.get("CINDERBLOCK_KEYSTONE_VENV") or REPO / ".venv-keystone")


@dataclass(frozen=True)
class Keystone:
    """A running Keystone: where it answers and who may use it."""

    root: str
    port: int
    pid: int
    url: str  # the v3 auth URL, http://127.0.0.1:<port>/v3
    admin_username: str
    admin_password: str
    admin_project: str
    service_username: str
    service_password: str
    service_project: str
    region: str = REGION
    user_domain: str = DOMAIN
    project_domain: str = DOMAIN

    def env(self) -> dict[str, str]:
        """OS_* variables for the admin (openstack CLI, openstacksdk, keystoneauth)."""
        return {"OS_AUTH_URL": self.url, "OS_AUTH_TYPE": "password", "OS_IDENTITY_API_VERSION": "3",
                "OS_USERNAME": self.admin_username, "OS_PASSWORD": self.admin_password,
                "OS_PROJECT_NAME": self.admin_project, "OS_USER_DOMAIN_NAME": self.user_domain,
                "OS_PROJECT_DOMAIN_NAME": self.project_domain, "OS_REGION_NAME": self.region}

    def authtoken_section(self, interface: str = "internal", username: str | None = None,
                          password: str | None = None) -> str:
        """A `[keystone_authtoken]` section for cinderblock (or Cinder) validating against this Keystone;
        another service user of the service project (see ensure_service_user) through username/password."""
        return authtoken_section(self.url, username or self.service_username, password or self.service_password,
                                 self.service_project, self.region, interface)

    def token(self, username: str | None = None, password: str | None = None,
              project: str | None = None) -> str:
        """A project-scoped token (the admin's unless told otherwise)."""
        return issue_token(self.url, username or self.admin_username, password or self.admin_password,
                           project or self.admin_project)


def authtoken_section(url: str, username: str, password: str, project: str = "service", region: str = REGION,
                      interface: str = "internal") -> str:
    """A `[keystone_authtoken]` section (keystonemiddleware) for a service user of the Keystone at url
    (its v3 URL): usable before that Keystone answers, e.g. by a Glance started alongside it."""
    return "\n".join([
        "[keystone_authtoken]",
        f"www_authenticate_uri = {url}",
        f"auth_url = {url}",
        "auth_type = password",
        f"username = {username}",
        f"password = {password}",
        f"project_name = {project}",
        f"user_domain_name = {DOMAIN}",
        f"project_domain_name = {DOMAIN}",
        f"region_name = {region}",
        f"interface = {interface}",
        "",
    ])


# -- files of one Keystone --------------------------------------------------------------------------

def _paths(root: Path) -> dict[str, Path]:
    return {"conf": root / "keystone.conf", "db": root / "keystone.db", "fernet": root / "fernet-keys",
            "credential": root / "credential-keys", "pid": root / "keystone.pid", "log": root / "keystone.log",
            "info": root / "keystone.json"}


CONF_TEMPLATE = """\
[DEFAULT]
debug = false
use_stderr = true

[database]
connection = sqlite:///{db}

[token]
provider = fernet
expiration = 14400

[fernet_tokens]
key_repository = {fernet}

[fernet_receipts]
# Its default is /etc/keystone/fernet-keys/: the same repository as the tokens keeps every key in {root}.
key_repository = {fernet}

[credential]
key_repository = {credential}

[identity]
# bcrypt's minimum: tests create many users, and 2 cores do not spare 0.25 s per password.
password_hash_rounds = 4

[cache]
# In this process's memory: without it a token validation runs some 150 SQL queries (about a second).
enabled = true
backend = dogpile.cache.memory

[oslo_policy]
enforce_new_defaults = true
enforce_scope = false
"""


# -- the keystone venv ------------------------------------------------------------------------------

def ensure_venv(venv: Path | None = None) -> Path:
    """The venv with PyPI keystone (created on first use, then reused through a stamp file)."""
    return launch.ensure_venv(venv or default_venv(), [f"keystone=={KEYSTONE_VERSION}"], "import keystone.server.wsgi",
                              f"keystone-{KEYSTONE_VERSION}", KeystoneError, lambda line: print(line, file=sys.stderr))


# -- HTTP helpers (standard library only) -----------------------------------------------------------

def issue_token(auth_url: str, username: str, password: str, project: str, domain: str = DOMAIN) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": username, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    status, headers, answer = _request(f"{auth_url}/auth/tokens", "POST", body)
    if status != 201:
        raise KeystoneError(f"POST {auth_url}/auth/tokens as {username}: {status} {answer}")
    token = {k.lower(): v for k, v in headers.items()}.get("x-subject-token")
    if not token:
        raise KeystoneError("Keystone answered 201 without X-Subject-Token")
    return token


class _Admin:
    """Just enough of the identity API to create projects, users, roles, services and endpoints."""

    def __init__(self, keystone: Keystone) -> None:
        self.url = keystone.url
        self.token = keystone.token()

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        status, _, answer = _request(self.url + path, method, body, self.token)
        if status not in expect:
            raise KeystoneError(f"{method} {path}: {status} {answer}")
        return answer

    def find(self, collection: str, key: str, **query: str) -> dict[str, Any] | None:
        text = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in query.items())
        found = self.call("GET", f"/{collection}" + (f"?{text}" if text else ""))[key]
        return found[0] if found else None

    def ensure(self, collection: str, key: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
        found = self.find(collection, collection, **query)
        if found is not None:
            return found
        return self.call("POST", f"/{collection}", {key: body})[key]  # type: ignore[no-any-return]

    def domain_id(self) -> str:
        return self.ensure("domains", "domain", {"name": DOMAIN}, name=DOMAIN)["id"]  # type: ignore[no-any-return]

    def ensure_project(self, name: str) -> str:
        domain = self.domain_id()
        return self.ensure("projects", "project", {"name": name, "domain_id": domain},  # type: ignore[no-any-return]
                           name=name, domain_id=domain)["id"]

    def ensure_role(self, name: str) -> str:
        return self.ensure("roles", "role", {"name": name}, name=name)["id"]  # type: ignore[no-any-return]

    def ensure_user(self, name: str, password: str, project_id: str) -> str:
        domain = self.domain_id()
        found = self.find("users", "users", name=name, domain_id=domain)
        if found is not None:
            self.call("PATCH", f"/users/{found['id']}", {"user": {"password": password}})
            return found["id"]  # type: ignore[no-any-return]
        return self.call("POST", "/users", {"user": {"name": name, "password": password, "domain_id": domain,  # type: ignore[no-any-return]
                                                     "default_project_id": project_id}})["user"]["id"]

    def grant(self, project_id: str, user_id: str, role_id: str) -> None:
        self.call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}")

    def ensure_service(self, service_type: str, name: str) -> str:
        return self.ensure("services", "service", {"type": service_type, "name": name,  # type: ignore[no-any-return]
                                                  "enabled": True}, type=service_type)["id"]

    def set_endpoints(self, service_id: str, url: str, region: str) -> None:
        """Exactly one endpoint per interface, at url."""
        endpoints = self.call("GET", f"/endpoints?service_id={service_id}")["endpoints"]
        for interface in INTERFACES:
            mine = [e for e in endpoints if e["interface"] == interface]
            for extra in mine[1:]:
                self.call("DELETE", f"/endpoints/{extra['id']}")
            if mine and mine[0]["url"] == url and mine[0].get("region_id") == region:
                continue
            if mine:
                self.call("PATCH", f"/endpoints/{mine[0]['id']}", {"endpoint": {"url": url, "region_id": region}})
            else:
                self.call("POST", "/endpoints", {"endpoint": {"service_id": service_id, "interface": interface,
                                                              "url": url, "region_id": region, "enabled": True}})


# -- process control --------------------------------------------------------------------------------

def _pid(root: Path) -> int | None:
    try:
        pid = int(_paths(root)["pid"].read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _manage(venv: Path, conf: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "keystone-manage"), "--config-file", str(conf), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=conf.parent)
    if done.returncode != 0:
        raise KeystoneError(f"keystone-manage {args[0]} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")


def running(root: Path | str) -> Keystone | None:
    """The Keystone started in root, if its process is alive."""
    root = Path(root).resolve()
    paths = _paths(root)
    if _pid(root) is None or not paths["info"].exists():
        return None
    return Keystone(**json.loads(paths["info"].read_text()))


def start(root: Path | str, port: int | None = None, volume_endpoint: str | None = None,
          venv: Path | None = None, timeout: float = 90.0) -> Keystone:
    """Start (or find already running) the Keystone of root; register the volume endpoint if given."""
    root = Path(root).resolve()
    found = running(root)
    if found is not None:
        if port is not None and port != found.port:
            raise KeystoneError(f"a Keystone already runs from {root} on port {found.port}")
        if volume_endpoint:
            register_volume_service(found, volume_endpoint)
        return found
    venv = ensure_venv(venv)
    paths = _paths(root)
    root.mkdir(parents=True, exist_ok=True)
    fresh = not paths["db"].exists()
    if paths["info"].exists() and not fresh:  # restart over an existing database: same credentials
        old = json.loads(paths["info"].read_text())
        admin_password, service_password = old["admin_password"], old["service_password"]
        port = port or int(old["port"])
    else:
        admin_password, service_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/v3"
    paths["conf"].write_text(CONF_TEMPLATE.format(db=paths["db"], fernet=paths["fernet"],
                                                  credential=paths["credential"], root=root))
    owner = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
    conf = paths["conf"]
    _manage(venv, conf, "db_sync")
    if not (paths["fernet"] / "0").exists():
        _manage(venv, conf, "fernet_setup", *owner)
    if not (paths["credential"] / "0").exists():
        _manage(venv, conf, "credential_setup", *owner)
    if not (paths["fernet"] / "0").exists() or not (paths["credential"] / "0").exists():
        raise KeystoneError(f"keystone-manage did not write its keys under {root}")
    # --option=value: a password from token_urlsafe may begin with "-" (1 start in 64), which argparse
    # would read as an option ("expected one argument").
    _manage(venv, conf, "bootstrap", "--bootstrap-username", "admin", f"--bootstrap-password={admin_password}",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone", "--bootstrap-region-id", REGION,
            "--bootstrap-public-url", url, "--bootstrap-internal-url", url, "--bootstrap-admin-url", url)

    log = open(paths["log"], "ab")  # noqa: SIM115 -- handed to the child
    try:
        env = dict(os.environ, OS_KEYSTONE_CONFIG_DIR=str(root), OS_KEYSTONE_CONFIG_FILES="keystone.conf",
                   PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen([str(venv / "bin" / "python"), str(Path(__file__).resolve()), "_serve",
                                 "--port", str(port)], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    paths["pid"].write_text(str(proc.pid))
    keystone = Keystone(root=str(root), port=port, pid=proc.pid, url=url, admin_username="admin",
                        admin_password=admin_password, admin_project="admin", service_username="cinder",
                        service_password=service_password, service_project="service")
    try:
        _wait_ready(keystone, proc, timeout)
        _ensure_service_user(keystone)
        if volume_endpoint:
            register_volume_service(keystone, volume_endpoint)
    except BaseException:
        stop(root)
        raise
    paths["info"].write_text(json.dumps(asdict(keystone), indent=2))
    return keystone


def _wait_ready(keystone: Keystone, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KeystoneError(f"keystone exited with {proc.returncode}:\n"
                                f"{_tail(_paths(Path(keystone.root))['log'])}")
        try:
            keystone.token()
            return
        except (KeystoneError, OSError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise KeystoneError(f"keystone did not answer POST /v3/auth/tokens within {timeout:.0f}s ({last}):\n"
                        f"{_tail(_paths(Path(keystone.root))['log'])}")


def _ensure_service_user(keystone: Keystone) -> None:
    ensure_service_user(keystone, keystone.service_username, keystone.service_password)


def ensure_service_user(keystone: Keystone, username: str, password: str) -> None:
    """A service user (e.g. `glance`) with roles admin and service in the service project, as the
    `cinder` user: what keystonemiddleware needs to validate tokens. Its password is set to password."""
    admin = _Admin(keystone)
    project = admin.ensure_project(keystone.service_project)
    user = admin.ensure_user(username, password, project)
    for role in ("admin", "service"):
        admin.grant(project, user, admin.ensure_role(role))


def register_service(keystone: Keystone, service_type: str, name: str, url: str) -> None:
    """A catalog entry of service_type at url, one endpoint per interface (public, internal, admin)."""
    admin = _Admin(keystone)
    admin.set_endpoints(admin.ensure_service(service_type, name), url, keystone.region)


def register_volume_service(keystone: Keystone, url: str) -> None:
    """Catalog entries for the block-storage API at url (`$(project_id)s` allowed), every type and
    interface, so clients find it whatever service type and interface they ask for."""
    names = {"block-storage": "cinder", "volumev3": "cinderv3"}
    for service_type in VOLUME_SERVICE_TYPES:
        register_service(keystone, service_type, names[service_type], url)


def stop(root: Path | str, timeout: float = 10.0) -> bool:
    """Stop the Keystone of root (True if one was running). Its files stay in root."""
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


def status(root: Path | str) -> dict[str, Any]:
    root = Path(root).resolve()
    found = running(root)
    result: dict[str, Any] = {"dir": str(root), "running": found is not None, "pid": _pid(root)}
    if found is not None:
        result.update(url=found.url, port=found.port)
        try:
            found.token()
            result["answers"] = True
        except (KeystoneError, OSError) as exc:
            result["answers"] = False
            result["error"] = str(exc)
    return result


def env_lines(keystone: Keystone) -> list[str]:
    lines = [f"export {key}={value}" for key, value in keystone.env().items()]
    lines += [f"export CINDERBLOCK_KEYSTONE_DIR={keystone.root}",
              f"export CINDERBLOCK_KEYSTONE_SERVICE_USER={keystone.service_username}",
              f"export CINDERBLOCK_KEYSTONE_SERVICE_PASSWORD={keystone.service_password}"]
    return lines


# -- the server (runs in the keystone venv) ---------------------------------------------------------

def _serve(port: int) -> None:
    sys.argv = sys.argv[:1]  # keystone's oslo.config parses sys.argv; its files come from OS_KEYSTONE_CONFIG_*
    from keystone.server import wsgi

    launch.serve_wsgi_serially(wsgi.initialize_public_application(), port,
                               f"keystone serving on http://127.0.0.1:{port}/v3")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keystone", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("start", "stop", "status", "env", "register-volume"):
        p = sub.add_parser(command)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"this Keystone's files (default {DEFAULT_DIR})")
        if command == "start":
            p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
        if command in ("start", "register-volume"):
            p.add_argument("--volume-endpoint", required=command == "register-volume",
                           help="block-storage URL for the catalog, e.g. 'http://127.0.0.1:8776/v3/$(project_id)s'")
        if command in ("start", "env"):
            p.add_argument("--json", action="store_true", help="print JSON instead of shell exports")
    serve = sub.add_parser("_serve", help=argparse.SUPPRESS)
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "_serve":
        _serve(args.port)
        return 0
    root = Path(args.dir).resolve()
    try:
        if args.command == "start":
            began = time.monotonic()
            keystone = start(root, args.port, args.volume_endpoint)
            print(f"keystone {keystone.url} (pid {keystone.pid}) ready in {time.monotonic() - began:.1f}s; "
                  f"files in {root}", file=sys.stderr)
            print(json.dumps(asdict(keystone), indent=2) if args.json else "\n".join(env_lines(keystone)))
        elif args.command == "stop":
            print("stopped" if stop(root) else "not running", file=sys.stderr)
        elif args.command == "status":
            result = status(root)
            print(json.dumps(result, indent=2))
            return 0 if result["running"] else 3
        else:
            found = running(root)
            if found is None:
                print(f"keystone: none running from {root}", file=sys.stderr)
                return 1
            if args.command == "register-volume":
                register_volume_service(found, args.volume_endpoint)
            elif args.json:
                print(json.dumps(asdict(found), indent=2))
            else:
                print("\n".join(env_lines(found)))
    except KeystoneError as exc:
        print(f"keystone: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
