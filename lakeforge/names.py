"""The one parser for dotted full names (`catalog.schema.asset`)."""

from __future__ import annotations

import re
from typing import NamedTuple

from lakeforge.errors import InvalidParameter

# Unity Catalog names: no dots, spaces, slashes or control characters; at most 255 characters.
_NAME = re.compile(r"^[^.\s/\x00-\x1f\x7f]{1,255}$")


def check_name(name: str | None, what: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidParameter(f"{what} is required")
    if not _NAME.match(name):
        raise InvalidParameter(
            f"Invalid {what} '{name}': names are 1-255 characters without '.', '/', spaces or control characters"
        )
    return name


class FullName(NamedTuple):
    catalog: str
    schema: str | None = None
    name: str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self if p is not None)

    def __str__(self) -> str:
        return ".".join(self.parts)


def parse(full_name: str | None, levels: int, what: str = "full name") -> FullName:
    """Parse a name with exactly `levels` parts (1 catalog, 2 schema, 3 asset)."""
    if not isinstance(full_name, str) or not full_name:
        raise InvalidParameter(f"{what} is required")
    parts = full_name.split(".")
    if len(parts) != levels:
        shape = ["catalog", "catalog.schema", "catalog.schema.name"][levels - 1]
        raise InvalidParameter(f"Invalid {what} '{full_name}': expected {shape}")
    for p in parts:
        check_name(p, what)
    return FullName(*parts)


def join(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)
