"""Global options before or after the sub-command (`cinderblock serve --config-file X`, as operators type
Cinder's `cinder-volume --config-file X`): issue 12 §5. Before the change the second form exited 2 with
"unrecognized arguments"."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cinderblock import cli


@pytest.mark.parametrize("argv", [
    ["--config-file", "a.conf", "--state-path", "/s", "--debug", "serve", "--port", "9"],
    ["serve", "--config-file", "a.conf", "--state-path", "/s", "--debug", "--port", "9"],
    ["--debug", "serve", "--port", "9", "--state-path", "/s", "--config-file", "a.conf"],
])
def test_global_options_anywhere(argv: list[str]) -> None:
    args = cli.parse(argv)
    assert (args.command, args.config_file, args.state_path, args.debug, args.port) == \
        ("serve", ["a.conf"], "/s", True, 9)


def test_files_before_and_after_add_up_and_later_state_path_wins() -> None:
    args = cli.parse(["--config-file", "a", "--state-path", "/early", "db", "sync", "--config-file", "b",
                      "--state-path", "/late"])
    assert (args.db_command, args.revision, args.config_file, args.state_path) == ("sync", "head", ["a", "b"], "/late")
    assert not hasattr(args, "late_config_file")


def test_db_sync_with_the_config_file_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "cinder.conf"
    config.write_text(f"[database]\nconnection = sqlite:///{tmp_path / 'c.db'}\n")
    done = subprocess.run([sys.executable, "-m", "cinderblock", "db", "sync", "--config-file", str(config),
                           "--state-path", str(tmp_path / "state")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c.db").stat().st_size > 0
    wrong = subprocess.run([sys.executable, "-m", "cinderblock", "db", "sync", "--bogus"], capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr
