"""The conformance run's results: the expected-failure list, the subunit stream read into tests, and
the report (passed, failed as expected or not, skipped by reason).

Standard library only, like conformance.py: `summarize` runs under the tempest venv's Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXPECTED_FAILURES = REPO / "tests" / "conformance" / "expected-failures.txt"
# The closed set of families a test may be expected to fail for: features other issues build.
FAMILIES = frozenset({"glance", "attachments", "retype", "migration", "manage", "transfers", "backups", "qos",
                      "hosts", "quota-classes", "extensions", "encryption", "default-types", "clusters"})


class ConformanceError(RuntimeError):
    pass


# -- expected failures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    family: str
    pattern: str
    line: int

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.pattern, name) is not None


def read_expected(path: Path) -> list[Expected]:
    """`<family> <regex of a test id>` per line (`#` comments); the regex must match the whole id
    without its `[...]` attributes, or the class for a failure of setUpClass."""
    result: list[Expected] = []
    if not path.exists():
        return result
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConformanceError(f"{path}:{number}: want '<family> <test id regex>', got {raw!r}")
        family, pattern = parts
        if family not in FAMILIES:
            raise ConformanceError(f"{path}:{number}: family {family!r} is not one of {', '.join(sorted(FAMILIES))}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConformanceError(f"{path}:{number}: bad regex {pattern!r}: {exc}") from None
        result.append(Expected(family, pattern, number))
    return result


def test_name(test_id: str) -> str:
    """A subunit id without its attributes; `setUpClass (module.Class)` becomes `module.Class`."""
    found = re.fullmatch(r"(?:setUpClass|tearDownClass|setUpModule|tearDownModule) \((.*)\)", test_id)
    if found:
        test_id = found.group(1)
    return test_id.split("[", 1)[0]


def _summarize(stream: Path) -> dict[str, Any]:
    """Runs in the tempest venv: one entry per test from the subunit v2 stream."""
    import subunit
    import testtools

    tests: list[dict[str, Any]] = []

    def on_test(test: Any) -> None:  # testtools' TestDict
        details = {name: content.as_text() for name, content in test["details"].items()
                   if getattr(content.content_type, "type", "") == "text"}
        start, stop = test["timestamps"]
        tests.append({"id": test["id"], "status": test["status"], "details": details,
                      "seconds": (stop - start).total_seconds() if start and stop else None})

    with open(stream, "rb") as handle:
        result = testtools.StreamToDict(on_test)
        result.startTestRun()
        subunit.ByteStreamToStreamResult(handle, non_subunit_name="stdout").run(result)
        result.stopTestRun()
    return {"tests": tests}


def reason_of(status: str, details: dict[str, str]) -> str:
    """The first lines of what a failure raised, or a skip's reason."""
    if status == "skip":
        return (details.get("reason") or "").strip().replace("\n", " ")[:300]
    text = details.get("traceback") or ""
    lines = text.rstrip().splitlines()
    start = 0
    for index, line in enumerate(lines):  # the exception follows the last frame of the last traceback
        if line.startswith("Traceback (most recent call last)"):
            start = index
    tail = [line for line in lines[start + 1:] if line and not line.startswith(" ")]
    message = " | ".join(line.strip() for line in tail[:4]) or text.strip()[-300:]
    # The last call into a Tempest service client names the API request that failed.
    calls = re.findall(r'/services/(?:volume/v3/)?(\w+_client)\.py", line \d+, in (\w+)', text)
    if calls:
        message = f"{calls[-1][0]}.{calls[-1][1]}: {message}"
    return message[:600]


def signature(reason: str) -> str:
    """A reason without its ids, to group failures that fail the same way."""
    reason = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", reason)
    reason = re.sub(r"\b[0-9a-f]{32}\b", "<id>", reason)
    reason = reason.replace("HTTP response body is invalid json or xml | Details: ", "")
    return reason[:240]


def report(summary: dict[str, Any], expected: list[Expected], whole: bool = True) -> tuple[dict[str, Any], list[str]]:
    passed, failed, skipped = [], [], []
    for test in summary["tests"]:
        status = test["status"]
        entry = {"id": test["id"], "name": test_name(test["id"]), "reason": reason_of(status, test["details"]),
                 "seconds": test["seconds"]}
        if status in ("success", "xfail"):
            passed.append(entry)
        elif status == "skip":
            skipped.append(entry)
        elif status in ("fail", "uxsuccess"):
            failed.append(entry)
    def family(name: str) -> str | None:
        for rule in expected:
            if rule.matches(name):
                return rule.family
        return None
    unexpected = [f for f in failed if family(f["name"]) is None]
    known = [dict(f, family=family(f["name"])) for f in failed if family(f["name"]) is not None]
    now_passing = [dict(p, family=family(p["name"])) for p in passed if family(p["name"]) is not None]
    unused = [rule for rule in expected
              if not any(rule.matches(t["name"]) for t in failed + passed + skipped)]

    lines = [f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped "
             f"({len(known)} of the failures expected, {len(unexpected)} not)"]
    if unexpected:
        lines.append("")
        lines.append(f"FAILED, not on {EXPECTED_FAILURES.relative_to(REPO)} ({len(unexpected)}):")
        for entry in sorted(unexpected, key=lambda e: e["name"]):
            lines.append(f"  {entry['name']}")
            lines.append(f"      {entry['reason']}")
    if known:
        lines.append("")
        lines.append(f"failed as expected ({len(known)}):")
        for entry in sorted(known, key=lambda e: (e["family"], e["name"])):
            lines.append(f"  [{entry['family']}] {entry['name']}: {entry['reason'][:160]}")
    if now_passing:
        lines.append("")
        lines.append(f"PASSED although on the expected-failure list (take them off it): {len(now_passing)}")
        lines.extend(f"  [{e['family']}] {e['name']}" for e in now_passing)
    if unused and whole:  # a subset leaves most lines unmatched
        lines.append("")
        lines.append("expected-failure lines that matched no test of this run:")
        lines.extend(f"  line {r.line}: {r.family} {r.pattern}" for r in unused)
    if skipped:
        groups: dict[str, list[str]] = {}
        for entry in skipped:
            groups.setdefault(entry["reason"], []).append(entry["name"])
        lines.append("")
        lines.append(f"skipped ({len(skipped)}), by reason:")
        for reason, names in sorted(groups.items(), key=lambda item: -len(item[1])):
            lines.append(f"  {len(names):3d}  {reason}")
            lines.extend(f"         {name}" for name in sorted(names))
    if failed:
        groups = {}
        for entry in failed:
            groups.setdefault(signature(entry["reason"]), []).append(entry["name"])
        lines.append("")
        lines.append("failures grouped by reason:")
        for reason, names in sorted(groups.items(), key=lambda item: -len(item[1])):
            lines.append(f"  {len(names):3d}  {reason}")
    data = {"passed": passed, "failed": unexpected, "expected_failures": known, "skipped": skipped,
            "expected_but_passed": now_passing,
            "counts": {"passed": len(passed), "failed": len(failed), "skipped": len(skipped),
                       "unexpected_failures": len(unexpected), "expected_failures": len(known)}}
    return data, lines
