"""Secret tables. Values are stored only as AES-GCM ciphertext."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base


class SecretScopeRow(Base):
    __tablename__ = "lf_secret_scopes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    backend_type: Mapped[str] = mapped_column(String(40), default="DATABRICKS")
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))


class SecretRow(Base):
    __tablename__ = "lf_secrets"

    scope_id: Mapped[str] = mapped_column(ForeignKey("lf_secret_scopes.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
