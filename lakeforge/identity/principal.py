"""Who is calling: the resolved principal of a request."""

from __future__ import annotations

from dataclasses import dataclass, field

ADMINS_GROUP = "admins"
# Every user and service principal is a member (like Databricks' `users` group).
USERS_GROUP = "users"


@dataclass(frozen=True)
class Principal:
    id: str
    kind: str  # user | service_principal | group
    name: str  # userName, applicationId, or group displayName
    display_name: str | None = None
    # Every group this principal belongs to, directly or through nested groups.
    group_ids: frozenset[str] = field(default_factory=frozenset)
    group_names: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False

    @property
    def identity_ids(self) -> frozenset[str]:
        """The ids whose grants and ownerships apply to this principal."""
        return self.group_ids | {self.id}
