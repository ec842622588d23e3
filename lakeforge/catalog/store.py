"""Catalog tables: securables (catalogs, schemas, tables, volumes, functions, registered models),
grants, model versions and aliases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base


class SecurableRow(Base):
    """One row per catalog object. Type-specific fields live in `spec` (JSON)."""

    __tablename__ = "lf_securables"
    __table_args__ = (
        UniqueConstraint("kind", "full_name"),
        Index("ix_securables_parent", "parent_id", "kind", "name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(800))
    catalog_name: Mapped[str] = mapped_column(String(255))
    schema_name: Mapped[str | None] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("lf_securables.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[str | None] = mapped_column(Text)  # JSON object of strings
    storage_root: Mapped[str | None] = mapped_column(Text)
    storage_location: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[str | None] = mapped_column(Text)  # JSON: columns, table_type, function body, ...
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(255))


class GrantRow(Base):
    """A privilege held by a principal on a securable. `securable_kind` also covers non-catalog
    objects governed by the same access function (secret scopes, serving endpoints, experiments)."""

    __tablename__ = "lf_grants"
    __table_args__ = (Index("ix_grants_principal", "principal_id"),)

    securable_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    securable_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("lf_principals.id", ondelete="CASCADE"), primary_key=True)
    privilege: Mapped[str] = mapped_column(String(40), primary_key=True)


class ModelVersionRow(Base):
    __tablename__ = "lf_model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("lf_securables.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(40))
    storage_location: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[str | None] = mapped_column(Text)  # JSON: manifest, tags, signature, ...
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(255))


class ModelAliasRow(Base):
    __tablename__ = "lf_model_aliases"

    model_id: Mapped[str] = mapped_column(ForeignKey("lf_securables.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
