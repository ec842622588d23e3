"""The serving endpoint table. Configs are stored as JSON documents in their wire shape (after
validation), so what a client sent is what it reads back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base


class ServingEndpointRow(Base):
    __tablename__ = "lf_serving_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_id: Mapped[str] = mapped_column(String(32))  # the creator: holds CAN_MANAGE, models run on its behalf
    creator: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[str | None] = mapped_column(Text)  # the config serving now (None until the first one is up)
    pending_config: Mapped[str | None] = mapped_column(Text)  # a config being deployed
    config_update: Mapped[str] = mapped_column(String(20))  # NOT_UPDATING | IN_PROGRESS | UPDATE_FAILED | ...
    update_message: Mapped[str | None] = mapped_column(Text)  # why the last update failed
    ai_gateway: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
