"""Identity tables: principals, group membership, tokens (stored only as a hash)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base

USER, GROUP, SERVICE_PRINCIPAL = "user", "group", "service_principal"


class PrincipalRow(Base):
    __tablename__ = "lf_principals"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # userName for users, displayName for groups, applicationId for service principals.
    name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_id: Mapped[str | None] = mapped_column(String(255))
    # JSON: emails, entitlements and other SCIM attributes we keep but do not interpret.
    attributes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class GroupMemberRow(Base):
    __tablename__ = "lf_group_members"

    group_id: Mapped[str] = mapped_column(ForeignKey("lf_principals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("lf_principals.id", ondelete="CASCADE"), primary_key=True)


class TokenRow(Base):
    __tablename__ = "lf_tokens"
    __table_args__ = (Index("ix_tokens_principal", "principal_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("lf_principals.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
