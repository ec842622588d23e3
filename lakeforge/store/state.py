"""Small key/value facts about this installation (metastore id, bootstrap done)."""

from __future__ import annotations

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lakeforge.store.base import Base


class PlatformState(Base):
    __tablename__ = "lf_platform_state"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def get_state(s: Session, key: str) -> str | None:
    return s.scalar(select(PlatformState.value).where(PlatformState.key == key))


def set_state(s: Session, key: str, value: str) -> None:
    row = s.get(PlatformState, key)
    if row is None:
        s.add(PlatformState(key=key, value=value))
    else:
        row.value = value
