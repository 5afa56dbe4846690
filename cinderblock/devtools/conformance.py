"""Run OpenStack Tempest's volume API tests (and cinder-tempest-plugin's) against cinderblock.

Everything runs on loopback and is stopped at the end: a throw-away Keystone (keystone_server), a
Glance behind it (glance_server, started alongside the Keystone; catalog type `image`, one small public
raw image uploaded as admin for `[compute] image_ref`), then cinderblock (`python -m cinderblock ...
serve`) with auth_strategy = keystone, two file backends (the first replicating to a
replication_device) and Cinder's default quotas, registered in Keystone's catalog as `block-storage`
and `volumev3`. tempest.conf uses dynamic credentials and describes what
cinderblock offers (read from its pools for the backend names, protocol and vendor). Tempest 47.0.0
and cinder-tempest-plugin 1.23.0 live in a venv of their own (`.venv-tempest`, installed on first use),
Glance 33.0.0 in `.venv-glance`.

The run passes when every failure is on tests/conformance/expected-failures.txt (each line names the
family of features, not yet built, that the test needs). Results (subunit stream, summary, logs of
Keystone, Glance, cinderblock and Tempest) go to `conformance-results/` or `--results DIR`.

    python -m cinderblock.devtools.conformance [--regex R] [--concurrency N] [--results DIR]
        [--work DIR [--keep] [--reuse-cinderblock]] [-- extra tempest run arguments]

This file imports the standard library only: `_summarize` runs it with the tempest venv's Python to
read the subunit stream.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from cinderblock.devtools import conformance_results
    from cinderblock.devtools import launch
except ImportError:  # run as a script under the Tempest venv's Python (reading the subunit stream)
    import conformance_results  # type: ignore[no-redef]
    import launch  # type: ignore[no-redef]

REPO, EXPECTED_FAILURES = conformance_results.REPO, conformance_results.EXPECTED_FAILURES
ConformanceError = conformance_results.ConformanceError

_free_port, _alive = launch.free_port, launch.alive
TEMPEST_PACKAGES = ("tempest==47.0.0", "cinder-tempest-plugin==1.23.0")
DEFAULT_REGEX = r"^(tempest\.api\.volume|cinder_tempest_plugin\.api)"
BACKENDS = ("file-1", "file-2")
IMAGE_NAME = "cinderblock-conformance-image"
IMAGE_SIZE = 4 * 1024 * 1024
MIN_MICROVERSION, MAX_MICROVERSION = "3.0", "3.71"

# [volume-feature-enabled]: what cinderblock offers. A flag is off only where the feature is missing.
FEATURE_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("multi_backend", "true", "two file backends, file-1 and file-2, each with its volume_backend_name"),
    ("backup", "false", "no backup API (/backups) in cinderblock yet"),
    ("snapshot", "true", "snapshots: create, list, update, delete, metadata, reset-status, force-delete"),
    ("clone", "true", "volumes from source_volid (sparse copy or reflink on the file backend)"),
    ("manage_snapshot", "false", "no manage/unmanage of snapshots (os-snapshot-manage) yet"),
    ("manage_volume", "false", "no manage/unmanage of volumes (os-volume-manage) yet"),
    ("replication", "true", "file-1 replicates to a replication_device; replication_enabled types, 3.38 groups"),
    ("api_extensions", "all", "Tempest's default; only test_extensions reads it (no /extensions API yet)"),
    ("extend_attached_volume", "false", "needs Nova to attach the volume to a server; no Nova here"),
    ("extend_attached_encrypted_volume", "false", "needs Nova and volume encryption; neither here"),
    ("extend_volume_with_snapshot", "true", "the file backend extends volumes that have snapshots"),
    ("enable_volume_image_dep_tests", "true", "volume/snapshot/image dependency tests (cinder-tempest-plugin)"),
    ("volume_image_dep_tests", "true", "cinder-tempest-plugin's deprecated name of the flag above"),
    ("consistency_group", "true", "consistency groups and cgsnapshots (/consistencygroups, /cgsnapshots)"),
    ("volume_revert", "true", "revert to snapshot (API 3.40) on the file backend"),
    ("concurrency_tests", "true", "concurrent creates work (scenario tests only: outside this run's regex)"),
)


def _say(message: str) -> None:
    print(f"[conformance {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# -- the tempest venv -------------------------------------------------------------------------------

def tempest_venv() -> Path:
    return Path(os.environ.get("CINDERBLOCK_TEMPEST_VENV") or REPO / ".venv-tempest")


def ensure_tempest(venv: Path) -> Path:
    return launch.ensure_venv(venv, TEMPEST_PACKAGES, "import tempest, cinder_tempest_plugin, subunit",
                              "-".join(TEMPEST_PACKAGES).replace("==", "_"), ConformanceError, _say)


def _tail(path: Path, lines: int = 40) -> str:
    return launch.tail(path, lines)


# -- small HTTP and process helpers -----------------------------------------------------------------

def _get(url: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group that pid leads (it was started in its own session), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


# -- cinderblock ------------------------------------------------------------------------------------

def cinder_conf(work: Path, port: int, authtoken: str) -> str:
    state = work / "cinderblock"
    sections = [f"""\
[DEFAULT]
state_path = {state}
host = conformance
enabled_backends = {",".join(BACKENDS)}
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {port}
auth_strategy = keystone
# Cinder's default quotas
quota_volumes = 10
quota_snapshots = 10
quota_gigabytes = 1000
quota_groups = 10
quota_backups = 10
quota_backup_gigabytes = 1000
per_volume_size_limit = -1
"""]
    for index, name in enumerate(BACKENDS):
        lines = [f"[{name}]", "volume_driver = file", f"volume_backend_name = {name}",
                 f"file_pool_paths = {name}:{state / name}"]
        if index == 0:
            lines.append(f"replication_device = backend_id:{name}-replica, path:{work / (name + '-replica')}")
        sections.append("\n".join(lines) + "\n")
    sections.append(authtoken)
    return "\n".join(sections)


@dataclass(frozen=True)
class Cinderblock:
    url: str  # http://127.0.0.1:<port>/v3
    pid: int
    log: Path


def start_cinderblock(work: Path, conf: Path, port: int, log: Path) -> Cinderblock:
    pid_file = work / "cinderblock.pid"
    handle = open(log, "ab")  # noqa: SIM115 -- handed to the child
    try:
        # `python -m cinderblock` from the repository: the code of this checkout, whichever it is.
        proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "-m", "cinderblock", "--config-file",
                                 str(conf), "serve"], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        handle.close()
    pid_file.write_text(str(proc.pid))
    return Cinderblock(f"http://127.0.0.1:{port}/v3", proc.pid, log)


def running_cinderblock(work: Path, port: int, log: Path) -> Cinderblock | None:
    try:
        pid = int((work / "cinderblock.pid").read_text())
    except (OSError, ValueError):
        return None
    return Cinderblock(f"http://127.0.0.1:{port}/v3", pid, log) if _alive(pid) else None


def wait_pools(cinderblock: Cinderblock, token: str, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Until cinderblock answers and every backend reported its pools; returns them."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not _alive(cinderblock.pid):
            raise ConformanceError(f"cinderblock exited:\n{_tail(cinderblock.log)}")
        try:
            status, body = _get(f"{cinderblock.url}/scheduler-stats/get_pools?detail=true", token)
            last = (status, body)
            if status == 200:
                pools = body["pools"]
                names = {p["capabilities"].get("volume_backend_name") for p in pools}
                if all(name in names for name in BACKENDS):
                    return pools  # type: ignore[no-any-return]
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise ConformanceError(f"cinderblock did not report pools of {', '.join(BACKENDS)} within {timeout:.0f}s "
                           f"(last answer: {last}):\n{_tail(cinderblock.log)}")


# -- tempest ----------------------------------------------------------------------------------------

def image_bytes() -> bytes:
    """The raw disk image for [compute] image_ref: zeros with a marker at the start of each MiB, so
    a copy into a volume can be told from an empty volume."""
    mib = 1024 * 1024
    return b"".join(f"cinderblock conformance image, MiB {n}\n".encode().ljust(mib, b"\0")
                    for n in range(IMAGE_SIZE // mib))


def tempest_conf(keystone: Any, pools: Sequence[dict[str, Any]], image_id: str, logs: Path, locks: Path) -> str:
    caps = [p["capabilities"] for p in pools]
    protocols = sorted({str(c.get("storage_protocol")) for c in caps})
    vendors = sorted({str(c.get("vendor_name")) for c in caps})
    if len(protocols) != 1 or len(vendors) != 1:
        raise ConformanceError(f"backends disagree on storage_protocol {protocols} or vendor_name {vendors}")
    flags = "\n".join(f"# {why}\n{name} = {value}" for name, value, why in FEATURE_FLAGS)
    return f"""\
[DEFAULT]
log_dir = {logs}
log_file = tempest-workers.log
use_stderr = false

[oslo_concurrency]
lock_path = {locks}

[auth]
use_dynamic_credentials = true
admin_username = {keystone.admin_username}
admin_password = {keystone.admin_password}
admin_project_name = {keystone.admin_project}
admin_domain_name = {keystone.user_domain}
default_credentials_domain_name = {keystone.user_domain}
create_isolated_networks = false

[identity]
uri_v3 = {keystone.url}
auth_version = v3
region = {keystone.region}
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[enforce_scope]
# cinderblock enforces Cinder's new policy defaults (project reader / member / admin personas):
# Tempest then reads through a project_reader where Cinder's gate does
cinder = true

[service_available]
cinder = true
# glance_server's Glance, in the catalog as `image`
glance = true
nova = false
swift = false
neutron = false

[image]
catalog_type = image
endpoint_type = publicURL
region = {keystone.region}

[compute]
# no Nova: the volume tests read their image from here (imageRef). One small public raw image.
image_ref = {image_id}
image_ref_alt = {image_id}

[volume]
# registered by keystone_server.register_volume_service (also as volumev3)
catalog_type = block-storage
endpoint_type = publicURL
region = {keystone.region}
backend_names = {",".join(BACKENDS)}
# as cinderblock's pools report them (GET /v3/scheduler-stats/get_pools?detail=true)
storage_protocol = {protocols[0]}
vendor_name = {vendors[0]}
min_microversion = {MIN_MICROVERSION}
max_microversion = {MAX_MICROVERSION}
volume_size = 1
# a file volume is ready in well under a second: a minute means it is stuck
build_timeout = 60
build_interval = 1

[volume-feature-enabled]
{flags}
"""


def run_tempest(venv: Path, workspace: Path, conf: Path, regex: str, concurrency: int, extra: Sequence[str],
                log: Path) -> int:
    (workspace / ".stestr.conf").unlink(missing_ok=True)  # `tempest run` writes it for this venv
    cmd = [str(venv / "bin" / "tempest"), "run", "--config-file", str(conf), "--regex", regex,
           "--concurrency", str(concurrency), *extra]
    _say("running " + " ".join(cmd[1:]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    with open(log, "wb") as out:
        # Its own session: stopped with its workers if this run is interrupted.
        proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                text = line.decode(errors="replace")
                # subunit-trace's one line per test, not the tracebacks (the summary repeats what failed)
                if re.match(r"\{\d+\} |^=+$|^Totals|^ - |^Sum of|^Worker Balance", text):
                    sys.stdout.write(text)
                    sys.stdout.flush()
            return proc.wait()
        finally:
            if proc.poll() is None:
                _stop_group(proc.pid)


def export_subunit(venv: Path, workspace: Path, target: Path) -> None:
    with open(target, "wb") as out:
        done = subprocess.run([str(venv / "bin" / "stestr", ), "last", "--subunit"], cwd=workspace, stdout=out,
                              stderr=subprocess.PIPE)
    if done.returncode != 0 or target.stat().st_size == 0:
        raise ConformanceError(f"no subunit stream from the run: {done.stderr.decode(errors='replace')[-2000:]}")


# -- the run ----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--regex", default=DEFAULT_REGEX, help=f"tests to run (default {DEFAULT_REGEX})")
    parser.add_argument("--concurrency", type=int, default=2, help="tempest workers (default 2)")
    parser.add_argument("--results", default=str(REPO / "conformance-results"),
                        help="where the subunit stream, summary and logs go (default conformance-results/)")
    parser.add_argument("--work", help="working directory (Keystone, cinderblock state, tempest workspace); "
                        "default: a temporary one, removed at the end")
    parser.add_argument("--keep", action="store_true",
                        help="leave Keystone, Glance and cinderblock running in --work after the run")
    parser.add_argument("--reuse-cinderblock", action="store_true",
                        help="use the cinderblock a previous --keep run left in --work instead of a fresh one")
    parser.add_argument("tempest_args", nargs="*", help="after --: more `tempest run` arguments")
    sub_summary = argparse.ArgumentParser(add_help=False)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["_summarize"]:  # the tempest venv's side
        sub_summary.add_argument("stream")
        print(json.dumps(conformance_results._summarize(Path(sub_summary.parse_args(argv[1:]).stream))))
        return 0
    args = parser.parse_args(argv)
    if (args.keep or args.reuse_cinderblock) and not args.work:
        parser.error("--keep and --reuse-cinderblock need --work DIR")
    began = time.monotonic()
    try:
        expected = conformance_results.read_expected(EXPECTED_FAILURES)
    except ConformanceError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2

    results = Path(args.results).resolve()
    if results.exists():
        shutil.rmtree(results)
    results.mkdir(parents=True)
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="cinderblock-conformance-"))
    work.mkdir(parents=True, exist_ok=True)

    from cinderblock.devtools import glance_server, keystone_server

    keystone_dir = work / "keystone"
    glance_dir = work / "glance"
    cinderblock: Cinderblock | None = None
    # Glance (its first install, db_sync, its server) starts while Keystone and cinderblock do; it
    # needs Keystone's URL only, hence Keystone's port chosen here.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glance")

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    status = 2
    try:
        venv = ensure_tempest(tempest_venv())
        _say(f"tempest venv ready ({time.monotonic() - began:.0f}s)")
        found = keystone_server.running(keystone_dir)
        keystone_port = found.port if found else _free_port()
        glance_start = background.submit(glance_server.start, glance_dir,
                                         f"http://127.0.0.1:{keystone_port}/v3")
        keystone = keystone_server.start(keystone_dir, port=keystone_port)
        _say(f"keystone at {keystone.url} ({time.monotonic() - began:.0f}s)")

        port_file = work / "cinderblock.port"
        cinder_log = work / "cinderblock.log"
        if args.reuse_cinderblock and port_file.exists():
            port = int(port_file.read_text())
            cinderblock = running_cinderblock(work, port, cinder_log)
            if cinderblock is None:
                _say("no cinderblock running in --work: starting one")
        if cinderblock is None:
            port = _free_port()
            port_file.write_text(str(port))
            conf = work / "cinder.conf"
            conf.write_text(cinder_conf(work, port, keystone.authtoken_section()))
            keystone_server.register_volume_service(keystone, f"http://127.0.0.1:{port}/v3/$(project_id)s")
            cinderblock = start_cinderblock(work, conf, port, cinder_log)
        glance = glance_start.result()  # while cinderblock starts
        glance_server.register(glance, keystone)
        image_id = glance_server.ensure_image(glance, keystone.token(), IMAGE_NAME, image_bytes())
        _say(f"glance at {glance.url} (pid {glance.pid}), image {image_id} ({time.monotonic() - began:.0f}s)")
        pools = wait_pools(cinderblock, keystone.token())
        _say(f"cinderblock at {cinderblock.url} (pid {cinderblock.pid}), pools: "
             f"{', '.join(p['name'] for p in pools)} ({time.monotonic() - began:.0f}s)")

        workspace = work / "tempest"
        (workspace / "etc").mkdir(parents=True, exist_ok=True)
        (workspace / "locks").mkdir(exist_ok=True)
        tempest_conf_path = workspace / "etc" / "tempest.conf"
        tempest_conf_path.write_text(tempest_conf(keystone, pools, image_id, results, workspace / "locks"))
        shutil.copy(tempest_conf_path, results / "tempest.conf")
        ran_at = time.monotonic()
        tempest_status = run_tempest(venv, workspace, tempest_conf_path, args.regex, args.concurrency,
                                     args.tempest_args, results / "tempest.log")
        _say(f"tempest run exited {tempest_status} after {time.monotonic() - ran_at:.0f}s")
        stream = results / "tempest.subunit"
        export_subunit(venv, workspace, stream)
        done = subprocess.run([str(venv / "bin" / "python"), str(Path(__file__).resolve()), "_summarize",
                               str(stream)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ConformanceError(f"reading the subunit stream failed: {done.stderr[-2000:]}")
        data, lines = conformance_results.report(json.loads(done.stdout), expected, whole=args.regex == DEFAULT_REGEX)
        data["wall_seconds"] = round(time.monotonic() - began, 1)
        data["tempest_seconds"] = round(time.monotonic() - ran_at, 1)
        (results / "summary.json").write_text(json.dumps(data, indent=2))
        (results / "summary.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines[1:]))
        counts = data["counts"]
        print(f"\ntempest: {counts['passed']} passed, {counts['failed']} failed (of them "
              f"{counts['expected_failures']} on the expected-failure list), {counts['skipped']} skipped; "
              f"tempest {data['tempest_seconds']:.0f}s, all {data['wall_seconds']:.0f}s")
        # The closing line counts as failed what is not on the expected-failure list (the exit status).
        print(f"conformance: {counts['passed']} passed, {counts['unexpected_failures']} failed, "
              f"{counts['skipped']} skipped")
        if counts["passed"] + counts["failed"] == 0:
            print("conformance: no test ran: that is a failure", file=sys.stderr)
            status = 1
        else:
            status = 1 if counts["unexpected_failures"] else 0
    except (ConformanceError, glance_server.GlanceError, keystone_server.KeystoneError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    except SystemExit as exc:
        status = int(exc.code or 1)
    finally:
        if not args.keep:  # everything that runs from the working directory stops, reused or not
            if cinderblock is not None:
                _stop_group(cinderblock.pid)
                (work / "cinderblock.pid").unlink(missing_ok=True)
            background.shutdown(wait=True)  # a Glance still starting has written its pid file by then
            glance_server.stop(glance_dir)
            keystone_server.stop(keystone_dir)
        for source, name in ((work / "cinderblock.log", "cinderblock.log"), (keystone_dir / "keystone.log",
                                                                             "keystone.log"),
                             (glance_dir / "glance.log", "glance.log"), (work / "cinder.conf", "cinder.conf")):
            if source.exists():
                shutil.copy(source, results / name)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"conformance: Keystone, Glance and cinderblock still run from {work}: rerun with --work "
                  f"{work} --reuse-cinderblock, stop with `scripts/keystone stop --dir {keystone_dir}`, "
                  f"`.venv/bin/python -m cinderblock.devtools.glance_server stop --dir {glance_dir}` and "
                  f"`kill -- -$(cat {work}/cinderblock.pid)`", file=sys.stderr)
        print(f"conformance: results, subunit stream and logs in {results}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
