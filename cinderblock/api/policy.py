"""Authorisation through oslo.policy, with Cinder's rule names and persona defaults.

Defaults follow Cinder's personas (Xena rules): the admin role may do anything in any project, a
project member may change their own project's resources, a project reader may only read them. They rely
on Keystone's implied roles (admin ⇒ member ⇒ reader); noauth tokens imply them the same way
(api/auth.py). Operators override any rule in `[oslo_policy] policy_file` (YAML or JSON).

Item rules are checked with the caller's own project as the target: isolation (domain/common.py
`owned`) already hides every other project's resources from non-admins (404), so a policy answer
never depends on whether an id of another project exists.
"""
from __future__ import annotations

import functools
import logging
import os
import textwrap
import threading
import time
from collections.abc import Iterable
from typing import Any

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from cinderblock.config.settings import ConfigError
from cinderblock.model.errors import Forbidden
from cinderblock.model.records import RequestContext

LOG = logging.getLogger(__name__)

ADMIN = "rule:admin_api"
READER = "rule:xena_system_admin_or_project_reader"
MEMBER = "rule:xena_system_admin_or_project_member"
ANYONE = ""  # an empty check string always passes (a token is still required)

BASE_RULES: tuple[oslo_policy.RuleDefault, ...] = (
    oslo_policy.RuleDefault(
        "context_is_admin", "role:admin",
        description="Who is a cloud administrator: sees and acts on every project's resources "
                    "(all_tenants listings, ids of any project) and admin-only fields."),
    oslo_policy.RuleDefault("admin_api", "is_admin:True", description="Default rule for admin-only APIs."),
    oslo_policy.RuleDefault(
        "xena_system_admin_or_project_reader", "(role:admin) or (role:reader and project_id:%(project_id)s)",
        description="Administrators, and readers (members, project admins) of the resource's project."),
    oslo_policy.RuleDefault(
        "xena_system_admin_or_project_member", "(role:admin) or (role:member and project_id:%(project_id)s)",
        description="Administrators, and members (project admins) of the resource's project."),
)

# (name, check string, description, operations as "METHOD path" strings)
_API_RULES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # volumes
    ("volume:create", MEMBER, "Create a volume.", ("POST /volumes",)),
    ("volume:get", READER, "Show a volume.", ("GET /volumes/{volume_id}",)),
    ("volume:get_all", READER, "List volumes or their summary.",
     ("GET /volumes", "GET /volumes/detail", "GET /volumes/summary")),
    ("volume:update", MEMBER, "Update a volume, or its bootable flag.",
     ("PUT /volumes/{volume_id}", "POST /volumes/{volume_id}/action (os-set_bootable)")),
    ("volume:delete", MEMBER, "Delete a volume.", ("DELETE /volumes/{volume_id}",)),
    ("volume:force_delete", ADMIN, "Delete a volume with force=true (3.23).", ("DELETE /volumes/{volume_id}",)),
    ("volume_extension:volume_host_attribute", ADMIN, "See the host of volumes (os-vol-host-attr:host).",
     ("GET /volumes/{volume_id}", "GET /volumes/detail")),
    ("volume_extension:volume_tenant_attribute", READER, "See the project of volumes (os-vol-tenant-attr).",
     ("GET /volumes/{volume_id}", "GET /volumes/detail")),
    ("volume_extension:volume_mig_status_attribute", ADMIN, "See the migration status of volumes.",
     ("GET /volumes/{volume_id}", "GET /volumes/detail")),
    ("volume:get_volume_metadata", READER, "Show a volume's metadata or one key of it.",
     ("GET /volumes/{volume_id}/metadata", "GET /volumes/{volume_id}/metadata/{key}")),
    ("volume:create_volume_metadata", MEMBER, "Merge keys into a volume's metadata.",
     ("POST /volumes/{volume_id}/metadata",)),
    ("volume:update_volume_metadata", MEMBER, "Replace a volume's metadata or set one key.",
     ("PUT /volumes/{volume_id}/metadata", "PUT /volumes/{volume_id}/metadata/{key}")),
    ("volume:delete_volume_metadata", MEMBER, "Delete one key of a volume's metadata.",
     ("DELETE /volumes/{volume_id}/metadata/{key}",)),
    # volume actions
    ("volume:extend", MEMBER, "Extend a volume.", ("POST /volumes/{volume_id}/action (os-extend)",)),
    ("volume:revert_to_snapshot", MEMBER, "Revert a volume to its latest snapshot.",
     ("POST /volumes/{volume_id}/action (revert)",)),
    ("volume:update_readonly_flag", MEMBER, "Set a volume's read-only flag.",
     ("POST /volumes/{volume_id}/action (os-update_readonly_flag)",)),
    *((f"volume_extension:volume_actions:{name}", MEMBER, f"Volume action os-{name}.",
       (f"POST /volumes/{{volume_id}}/action (os-{name})",))
      for name in ("initialize_connection", "terminate_connection", "attach", "detach", "reserve", "unreserve",
                   "begin_detaching", "roll_detaching")),
    ("volume_extension:volume_admin_actions:reset_status", ADMIN, "Reset a volume's status fields.",
     ("POST /volumes/{volume_id}/action (os-reset_status)",)),
    ("volume_extension:volume_admin_actions:force_delete", ADMIN, "Force-delete a volume.",
     ("POST /volumes/{volume_id}/action (os-force_delete)",)),
    # snapshots
    ("volume:get_all_snapshots", READER, "List snapshots.", ("GET /snapshots", "GET /snapshots/detail")),
    ("volume:get_snapshot", READER, "Show a snapshot.", ("GET /snapshots/{snapshot_id}",)),
    ("volume:create_snapshot", MEMBER, "Snapshot a volume.", ("POST /snapshots",)),
    ("volume:update_snapshot", MEMBER, "Rename a snapshot or change its description.",
     ("PUT /snapshots/{snapshot_id}",)),
    ("volume:delete_snapshot", MEMBER, "Delete a snapshot.", ("DELETE /snapshots/{snapshot_id}",)),
    ("volume_extension:extended_snapshot_attributes", READER, "See a snapshot's progress and project.",
     ("GET /snapshots/{snapshot_id}", "GET /snapshots/detail")),
    ("volume:get_snapshot_metadata", READER, "Show a snapshot's metadata or one key of it.",
     ("GET /snapshots/{snapshot_id}/metadata", "GET /snapshots/{snapshot_id}/metadata/{key}")),
    ("volume:update_snapshot_metadata", MEMBER, "Merge, replace or set keys of a snapshot's metadata.",
     ("POST /snapshots/{snapshot_id}/metadata", "PUT /snapshots/{snapshot_id}/metadata",
      "PUT /snapshots/{snapshot_id}/metadata/{key}")),
    ("volume:delete_snapshot_metadata", MEMBER, "Delete one key of a snapshot's metadata.",
     ("DELETE /snapshots/{snapshot_id}/metadata/{key}",)),
    ("volume_extension:volume_replication:show", ADMIN,
     "Show a volume's replication lag per target (cinderblock's own resource).",
     ("GET /volumes/{volume_id}/replication",)),
    ("volume_extension:snapshot_admin_actions:reset_status", ADMIN, "Reset a snapshot's status.",
     ("POST /snapshots/{snapshot_id}/action (os-reset_status)",)),
    ("volume_extension:snapshot_admin_actions:force_delete", ADMIN, "Force-delete a snapshot.",
     ("POST /snapshots/{snapshot_id}/action (os-force_delete)",)),
    ("snapshot_extension:snapshot_actions:update_snapshot_status", MEMBER,
     "Report a snapshot's status and progress (Nova's assisted snapshots).",
     ("POST /snapshots/{snapshot_id}/action (os-update_snapshot_status)",)),
    # volume types (private types stay invisible to projects without access, whatever the rule)
    ("volume_extension:type_get_all", ANYONE, "List volume types.", ("GET /types",)),
    ("volume_extension:type_get", ANYONE, "Show a volume type.", ("GET /types/{type_id}",)),
    ("volume_extension:types_manage", ADMIN, "Create, update or delete a volume type.",
     ("POST /types", "PUT /types/{type_id}", "DELETE /types/{type_id}")),
    ("volume_extension:access_types_extra_specs", ADMIN, "See extra_specs in volume type views.",
     ("GET /types", "GET /types/{type_id}")),
    ("volume_extension:access_types_qos_specs_id", ADMIN, "See qos_specs_id in volume type views.",
     ("GET /types", "GET /types/{type_id}")),
    ("volume_extension:types_extra_specs:index", ADMIN, "List a volume type's extra specs.",
     ("GET /types/{type_id}/extra_specs",)),
    ("volume_extension:types_extra_specs:show", ADMIN, "Show one extra spec.",
     ("GET /types/{type_id}/extra_specs/{key}",)),
    ("volume_extension:types_extra_specs:create", ADMIN, "Set extra specs.", ("POST /types/{type_id}/extra_specs",)),
    ("volume_extension:types_extra_specs:update", ADMIN, "Set one extra spec.",
     ("PUT /types/{type_id}/extra_specs/{key}",)),
    ("volume_extension:types_extra_specs:delete", ADMIN, "Delete one extra spec.",
     ("DELETE /types/{type_id}/extra_specs/{key}",)),
    ("volume_extension:volume_type_access:get_all_for_type", ADMIN, "List the projects given a private type.",
     ("GET /types/{type_id}/os-volume-type-access",)),
    ("volume_extension:volume_type_access:addProjectAccess", ADMIN, "Give a project a private type.",
     ("POST /types/{type_id}/action (addProjectAccess)",)),
    ("volume_extension:volume_type_access:removeProjectAccess", ADMIN, "Take a private type from a project.",
     ("POST /types/{type_id}/action (removeProjectAccess)",)),
    # QoS specs
    *((f"volume_extension:qos_specs_manage:{name}", ADMIN, f"QoS specs: {name}.", operations)
      for name, operations in (("get_all", ("GET /qos-specs",)), ("get", ("GET /qos-specs/{qos_id}",)),
                               ("create", ("POST /qos-specs",)), ("update", ("PUT /qos-specs/{qos_id}",)),
                               ("delete", ("DELETE /qos-specs/{qos_id}",)))),
    # services, pools, capabilities, zones
    ("volume_extension:services:index", ADMIN, "List services.", ("GET /os-services",)),
    ("volume_extension:services:update", ADMIN, "Enable, disable, freeze, thaw services or set log levels.",
     ("PUT /os-services/{action}",)),
    ("volume:freeze_host", ADMIN, "Freeze a backend.", ("PUT /os-services/freeze",)),
    ("volume:thaw_host", ADMIN, "Thaw a backend.", ("PUT /os-services/thaw",)),
    ("volume:failover_host", ADMIN, "Fail a backend over to a replication target.",
     ("PUT /os-services/failover_host", "PUT /os-services/failover")),
    ("scheduler_extension:scheduler_stats:get_pools", ADMIN, "List the scheduler's pools.",
     ("GET /scheduler-stats/get_pools",)),
    ("volume_extension:capabilities", ADMIN, "Show a backend's capabilities.", ("GET /capabilities/{host}",)),
    ("volume_extension:availability_zone_list", ANYONE, "List availability zones.", ("GET /os-availability-zone",)),
    # quotas and limits (the target is the project named in the URL or query)
    ("volume_extension:quotas:show", READER, "Show a project's quotas or their defaults.",
     ("GET /os-quota-sets/{project_id}", "GET /os-quota-sets/{project_id}/defaults")),
    ("volume_extension:quotas:update", ADMIN, "Change a project's quotas.", ("PUT /os-quota-sets/{project_id}",)),
    ("volume_extension:quotas:delete", ADMIN, "Reset a project's quotas.", ("DELETE /os-quota-sets/{project_id}",)),
    ("limits_extension:used_limits", READER, "Show a project's absolute limits and usage.", ("GET /limits",)),
    # user messages
    ("message:get_all", READER, "List user messages.", ("GET /messages",)),
    ("message:get", READER, "Show a user message.", ("GET /messages/{message_id}",)),
    ("message:delete", MEMBER, "Delete a user message.", ("DELETE /messages/{message_id}",)),
    # generic groups, group snapshots, group types
    ("group:get_all", READER, "List groups.", ("GET /groups", "GET /groups/detail")),
    ("group:get", READER, "Show a group.", ("GET /groups/{group_id}",)),
    ("group:create", MEMBER, "Create a group.", ("POST /groups",)),
    ("group:create_from_src", MEMBER, "Create a group from a group snapshot or another group.",
     ("POST /groups/action (create-from-src)",)),
    ("group:update", MEMBER, "Update a group.", ("PUT /groups/{group_id}",)),
    ("group:delete", MEMBER, "Delete a group.", ("POST /groups/{group_id}/action (delete)",)),
    ("group:reset_status", ADMIN, "Reset a group's status.", ("POST /groups/{group_id}/action (reset_status)",)),
    ("group:enable_replication", MEMBER, "Enable replication of a group.",
     ("POST /groups/{group_id}/action (enable_replication)",)),
    ("group:disable_replication", MEMBER, "Disable replication of a group.",
     ("POST /groups/{group_id}/action (disable_replication)",)),
    ("group:failover_replication", MEMBER, "Fail a group over to a replication target, or back.",
     ("POST /groups/{group_id}/action (failover_replication)",)),
    ("group:list_replication_targets", MEMBER, "List the replication targets of a group's backend.",
     ("POST /groups/{group_id}/action (list_replication_targets)",)),
    ("group:get_all_group_snapshots", READER, "List group snapshots.",
     ("GET /group_snapshots", "GET /group_snapshots/detail")),
    ("group:get_group_snapshot", READER, "Show a group snapshot.", ("GET /group_snapshots/{group_snapshot_id}",)),
    ("group:create_group_snapshot", MEMBER, "Create a group snapshot.", ("POST /group_snapshots",)),
    ("group:update_group_snapshot", MEMBER, "Update a group snapshot.",
     ("PUT /group_snapshots/{group_snapshot_id}",)),
    ("group:delete_group_snapshot", MEMBER, "Delete a group snapshot.",
     ("DELETE /group_snapshots/{group_snapshot_id}",)),
    ("group:reset_group_snapshot_status", ADMIN, "Reset a group snapshot's status.",
     ("POST /group_snapshots/{group_snapshot_id}/action (reset_status)",)),
    ("group:group_types_manage", ADMIN, "Create, update or delete a group type.",
     ("POST /group_types", "PUT /group_types/{group_type_id}", "DELETE /group_types/{group_type_id}")),
    ("group:group_types_specs", ADMIN, "Show, set or delete the specs of a group type.",
     ("GET /group_types/{group_type_id}/group_specs", "POST /group_types/{group_type_id}/group_specs",
      "GET /group_types/{group_type_id}/group_specs/{key}", "PUT /group_types/{group_type_id}/group_specs/{key}",
      "DELETE /group_types/{group_type_id}/group_specs/{key}")),
    ("group:access_group_types_specs", ADMIN, "See group_specs in group type views.",
     ("GET /group_types", "GET /group_types/{group_type_id}")),
    # attachments (3.27)
    ("volume:attachment_create", MEMBER, "Create an attachment.", ("POST /attachments",)),
    ("volume:attachment_update", MEMBER, "Update an attachment.", ("PUT /attachments/{attachment_id}",)),
    ("volume:attachment_delete", MEMBER, "Delete an attachment.", ("DELETE /attachments/{attachment_id}",)),
    ("volume:attachment_complete", MEMBER, "Mark an attachment complete.",
     ("POST /attachments/{attachment_id}/action (os-complete)",)),
)


def _operations(items: Iterable[str]) -> list[Any]:  # oslo.policy Operation dicts
    return [{"method": method, "path": path} for method, _, path in (item.partition(" ") for item in items)]


API_RULES: tuple[oslo_policy.DocumentedRuleDefault, ...] = tuple(
    oslo_policy.DocumentedRuleDefault(name=name, check_str=check, description=text, operations=_operations(ops))
    for name, check, text, ops in _API_RULES)
RULE_NAMES = frozenset(rule.name for rule in (*BASE_RULES, *API_RULES))


class PolicyFileError(ConfigError):
    """The configured policy file is missing or cannot be parsed."""


def library_conf(config_files: Iterable[str]) -> cfg.ConfigOpts:
    """A ConfigOpts of its own on the service's files, for a library that registers its options."""
    conf = cfg.ConfigOpts()
    conf(args=[], project="cinderblock", default_config_files=list(config_files))
    return conf


class Policy:
    """Decisions are cached: oslo.policy spends ~0.2 ms per enforce (it looks for the policy file and
    introspects every check), several times per request. A decision depends only on the rule set and
    on (rule, caller, target project); the cache is dropped when the policy file changes (checked by a
    stat per call) and at least every RELOAD_SECONDS (new files, policy.d directories)."""

    RELOAD_SECONDS = 1.0

    def __init__(self, enforcer: oslo_policy.Enforcer) -> None:
        self.enforcer = enforcer
        self._lock = threading.Lock()
        self._loaded_at = time.monotonic()
        self._stamp = self._file_stamp()
        self._decide = functools.lru_cache(maxsize=8192)(self._enforce)

    @classmethod
    def from_config_files(cls, config_files: Iterable[str]) -> "Policy":
        conf = library_conf(config_files)
        enforcer = oslo_policy.Enforcer(conf)
        enforcer.register_defaults([*BASE_RULES, *API_RULES])
        explicit = conf.get_location("policy_file", "oslo_policy")
        try:
            enforcer.load_rules()
        except Exception as exc:  # oslo.policy raises parser errors of several kinds
            raise PolicyFileError(f"[oslo_policy] policy_file {conf.oslo_policy.policy_file!r}: {exc}") from exc
        if explicit is not None and explicit.location != cfg.Locations.opt_default and not enforcer.policy_path:
            raise PolicyFileError(f"[oslo_policy] policy_file {conf.oslo_policy.policy_file!r} was not found")
        return cls(enforcer)

    def is_admin(self, user_id: str, project_id: str, roles: Iterable[str], system_scope: str | None) -> bool:
        """`context_is_admin` for a caller not yet in a RequestContext (the middleware builds it)."""
        self._refresh()
        return self._decide("context_is_admin", user_id, project_id, tuple(roles), system_scope, False, project_id)

    def check(self, context: RequestContext, rule: str, project_id: str | None = None) -> bool:
        """May the caller do `rule` to resources of `project_id` (default: their own project)?"""
        self._refresh()
        target = context.project_id if project_id is None else project_id
        return self._decide(rule, context.user_id, context.project_id, tuple(context.roles), context.system_scope,
                            context.is_admin, target)

    def authorize(self, context: RequestContext, rule: str, project_id: str | None = None) -> None:
        if not self.check(context, rule, project_id):
            raise Forbidden(f"Policy doesn't allow {rule} to be performed.")

    def _enforce(self, rule: str, user_id: str, project_id: str, roles: tuple[str, ...], system_scope: str | None,
                 is_admin: bool, target_project: str) -> bool:
        # A token scoped to the system or a domain has no project: None, not "", so that no
        # `project_id:%(project_id)s` matches it (oslo.policy compares "" with "" as equal, and None with
        # a target of None too, as "None" == str(None)).
        creds: dict[str, Any] = {"user_id": user_id, "project_id": project_id or None, "roles": list(roles),
                                 "system_scope": system_scope, "is_admin": is_admin}
        return bool(self.enforcer.enforce(rule, {"project_id": target_project, "user_id": user_id}, creds))

    def _file_stamp(self) -> tuple[int, int] | None:
        path = self.enforcer.policy_path
        try:
            stat = os.stat(path) if path else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat else None

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp and time.monotonic() - self._loaded_at < self.RELOAD_SECONDS:
            return
        with self._lock:
            try:
                self.enforcer.load_rules()
            except Exception:  # a file broken while running: keep the rules last loaded, say why
                LOG.exception("policy file %s cannot be loaded; the rules loaded before stay in force",
                              self.enforcer.policy_path)
            self._loaded_at, self._stamp = time.monotonic(), self._file_stamp()
            self._decide.cache_clear()


def defaults_yaml() -> str:
    """The default rules as a commented policy file (`cinderblock policy defaults`)."""
    lines: list[str] = []
    for rule in (*BASE_RULES, *API_RULES):
        lines.extend(f"# {line}" for line in textwrap.wrap(rule.description or "", 96))
        for operation in getattr(rule, "operations", ()):
            lines.append(f"# {operation['method']}  {operation['path']}")
        lines.append(f'"{rule.name}": "{rule.check_str}"')
        lines.append("")
    return "\n".join(lines)
