"""Lineage edges. Names (not ids) identify the ends so history survives drops and re-creates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base


class LineageEdgeRow(Base):
    __tablename__ = "lf_lineage_edges"
    __table_args__ = (
        Index("ix_lineage_source", "source_name"),
        Index("ix_lineage_target", "target_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_type: Mapped[str] = mapped_column(String(40))
    source_name: Mapped[str] = mapped_column(String(800))
    target_type: Mapped[str] = mapped_column(String(40))
    target_name: Mapped[str] = mapped_column(String(800))
    entity_type: Mapped[str | None] = mapped_column(String(40))  # JOB_RUN, QUERY, ENDPOINT, MODEL_VERSION
    entity_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(255))
