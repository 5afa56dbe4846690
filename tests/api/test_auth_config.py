"""noauth's safety net, policy files and defaults, and that every rule the routers use exists."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cinderblock import cli
from cinderblock.api.auth import parse_noauth_token
from cinderblock.api.policy import RULE_NAMES, Policy, defaults_yaml
from cinderblock.config.settings import ConfigError, Settings, build_config, load_settings
from cinderblock.volume.loading import driver_options
from tests.api.helpers import assert_fault, headers
from tests.conftest import Cloud

ROOT = Path(__file__).resolve().parents[2]


def settings_from(tmp_path: Path, text: str, **overrides: str) -> Settings:
    config = tmp_path / "c.conf"
    config.write_text(text)
    return load_settings(build_config(config_files=[str(config)]), driver_options, state_path=str(tmp_path / "s"),
                         **overrides)


@pytest.mark.parametrize("listen", ["0.0.0.0", "192.0.2.10", "::", "node1.example"])
def test_noauth_refuses_a_remote_listen_address(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError, match="noauth_allow_remote"):
        settings_from(tmp_path, f"[DEFAULT]\nosapi_volume_listen = {listen}\n")
    allowed = settings_from(tmp_path, f"[DEFAULT]\nosapi_volume_listen = {listen}\nnoauth_allow_remote = true\n")
    assert allowed.listen == listen


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_noauth_on_loopback_is_fine(tmp_path: Path, listen: str) -> None:
    assert settings_from(tmp_path, f"[DEFAULT]\nosapi_volume_listen = {listen}\n").listen == listen


def test_serve_host_flag_is_checked_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["--state-path", str(tmp_path / "s"), "serve", "--host", "0.0.0.0", "--port", "1"])
    assert status == 2
    assert "noauth_allow_remote" in capsys.readouterr().err


def test_noauth_tokens_imply_roles_like_keystone() -> None:
    assert parse_noauth_token("u:p").roles == ("admin", "member", "reader")
    assert parse_noauth_token("u:p:member").roles == ("member", "reader")
    assert parse_noauth_token("u:p:reader").roles == ("reader",)
    assert parse_noauth_token("u:p:reader,member").roles == ("reader", "member")
    assert not parse_noauth_token("u:p:observer").is_admin


def test_policy_defaults_command_prints_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "defaults"]) == 0
    printed = capsys.readouterr().out
    assert printed == defaults_yaml()
    rules = yaml.safe_load(printed)
    assert set(rules) == RULE_NAMES
    assert rules["volume:create"] == "rule:xena_system_admin_or_project_member"
    assert rules["volume_extension:volume_admin_actions:reset_status"] == "rule:admin_api"
    assert rules["volume:get"] == "rule:xena_system_admin_or_project_reader"


def test_every_rule_the_api_checks_is_registered() -> None:
    """An unregistered rule would be a 500 (oslo.policy's PolicyNotRegistered)."""
    sources = "\n".join(p.read_text() for p in (ROOT / "cinderblock" / "api").rglob("*.py"))
    used = set(re.findall(r'"((?:volume|volume_extension|scheduler_extension|limits_extension|message|group)'
                          r':[a-zA-Z_:]+)"', sources))
    used |= {f"volume_extension:volume_type_access:{n}" for n in ("addProjectAccess", "removeProjectAccess")}
    used |= {f"volume_extension:types_extra_specs:{n}" for n in ("index", "show", "create", "update", "delete")}
    assert len(used) > 40
    assert used <= RULE_NAMES, used - RULE_NAMES


def test_policy_file_overrides_a_rule(make_cloud: Callable[..., Cloud], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"volume:create": "role:admin"\n"volume_extension:services:index": "role:reader"\n')
    cloud = make_cloud(f"[oslo_policy]\npolicy_file = {policy}\n")
    member = headers(token="u:0a0a:member")
    assert_fault(cloud.client.post("/v3/volumes", headers=member, json={"volume": {"size": 1}}), 403, "forbidden",
                 "Policy doesn't allow volume:create to be performed.")
    assert cloud.client.get("/v3/os-services", headers=member).status_code == 200
    # The file is read again when it changes, without a restart (oslo.policy checks its mtime).
    policy.write_text('"volume:get_all": "!"\n')
    assert cloud.client.get("/v3/volumes", headers=headers()).status_code == 403


def test_policy_file_errors_stop_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "c1.conf"
    missing.write_text(f"[oslo_policy]\npolicy_file = {tmp_path / 'nope.yaml'}\n")
    with pytest.raises(ConfigError, match="not found"):
        Policy.from_config_files([str(missing)])
    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text('"volume:create": [unclosed\n')
    broken = tmp_path / "c2.conf"
    broken.write_text(f"[oslo_policy]\npolicy_file = {broken_file}\n")
    with pytest.raises(ConfigError, match="policy_file"):
        Policy.from_config_files([str(broken)])
    assert cli.main(["--config-file", str(broken), "--state-path", str(tmp_path / "s"), "db", "sync"]) == 2


def test_a_policy_file_broken_while_running_keeps_the_last_rules(make_cloud: Callable[..., Cloud],
                                                                 tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"volume:create": "role:admin"\n')
    cloud = make_cloud(f"[oslo_policy]\npolicy_file = {policy}\n")
    member = headers(token="u:0a0a:member")
    assert cloud.client.post("/v3/volumes", headers=member, json={"volume": {"size": 1}}).status_code == 403
    policy.write_text('"volume:create": [unclosed\n')
    assert cloud.client.post("/v3/volumes", headers=member, json={"volume": {"size": 1}}).status_code == 403
    assert cloud.client.get("/v3/volumes", headers=member).status_code == 200
