"""Monitoring's metadata tables: monitors, their refreshes, alert rules and the breaches they found.

A monitor is attached to its table by the table's id, so renaming the table keeps the monitor, and a
table dropped and created again under the same name starts without one. The config is the
validated wire shape as JSON (config.py), so what a client sent is what it reads back.

Two rules live in the database itself, so they hold with several server processes:
- at most one PENDING or RUNNING refresh per monitor (`active_monitor_id`, unique, is set only while
  a refresh is PENDING or RUNNING);
- each breach is recorded once (unique per alert rule and breach key).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lakeforge.store.base import Base


class MonitorRow(Base):
    __tablename__ = "lf_monitors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    table_id: Mapped[str] = mapped_column(String(32), unique=True)  # the monitored table's securable id
    owner_id: Mapped[str] = mapped_column(String(32))  # the creator: refreshes run with its rights
    creator: Mapped[str] = mapped_column(String(255))
    config: Mapped[str] = mapped_column(Text)
    monitor_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(Text)  # latest_monitor_failure_msg
    profile_table_name: Mapped[str] = mapped_column(String(800))
    drift_table_name: Mapped[str] = mapped_column(String(800))
    # The next due time of an unpaused schedule; the scheduler advances it in the same conditional
    # UPDATE that queues the refresh, so one due time queues one refresh whichever process sees it.
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RefreshRow(Base):
    __tablename__ = "lf_monitor_refreshes"
    __table_args__ = (Index("ix_lf_monitor_refreshes_state", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # refresh_id on the wire
    monitor_id: Mapped[str] = mapped_column(String(32), ForeignKey("lf_monitors.id", ondelete="CASCADE"),
                                            index=True)
    state: Mapped[str] = mapped_column(String(20))  # PENDING | RUNNING | SUCCESS | FAILED | CANCELED
    # The monitor's id while PENDING or RUNNING, None once finished: unique, so one active refresh per monitor.
    active_monitor_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    trigger: Mapped[str] = mapped_column(String(20))  # MANUAL | SCHEDULE
    full: Mapped[bool] = mapped_column(Boolean, default=False)  # recompute every window
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)  # the engine's RefreshResult as JSON
    runner: Mapped[str | None] = mapped_column(String(255))  # host:pid:boot of the process running it
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class AlertRow(Base):
    __tablename__ = "lf_monitor_alerts"
    __table_args__ = (UniqueConstraint("monitor_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    monitor_id: Mapped[str] = mapped_column(String(32), ForeignKey("lf_monitors.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(255))
    rule: Mapped[str] = mapped_column(Text)  # the validated rule as JSON (alerts.parse_rule)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_id: Mapped[str] = mapped_column(String(32))  # secret references in the webhook URL resolve as it
    creator: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class BreachRow(Base):
    __tablename__ = "lf_monitor_breaches"
    __table_args__ = (UniqueConstraint("alert_id", "breach_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), ForeignKey("lf_monitor_alerts.id", ondelete="CASCADE"),
                                          index=True)
    monitor_id: Mapped[str] = mapped_column(String(32), index=True)
    # sha256 of (window, granularity, slice, column, model id, drift type): what makes a breach new
    breach_key: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    granularity: Mapped[str | None] = mapped_column(String(40))
    slice_key: Mapped[str | None] = mapped_column(Text)
    slice_value: Mapped[str | None] = mapped_column(Text)
    column_name: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(Text)
    drift_type: Mapped[str | None] = mapped_column(String(40))
    monitor_version: Mapped[int | None] = mapped_column(Integer)
    refresh_id: Mapped[int | None] = mapped_column(Integer)
    webhook_status: Mapped[str | None] = mapped_column(String(20))  # PENDING | DELIVERED | FAILED; None: no hook
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    fired_at: Mapped[datetime] = mapped_column(index=True)
