"""Secret references in configuration strings: `{{secrets/<scope>/<key>}}`.

Serving endpoints, the AI gateway and jobs keep references, never values, in their configs.
`check_readable` validates the references at create time without decrypting anything;
`resolve` substitutes the values at the moment they are used. Both check READ on each scope for
the principal on whose behalf the config runs. Errors name the reference, never a value.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

from lakeforge.catalog.privileges import P
from lakeforge.errors import InvalidParameter, NotFound, PermissionDenied
from lakeforge.identity.principal import Principal
from lakeforge.secrets.store import SecretRow

if TYPE_CHECKING:
    from lakeforge.secrets.service import SecretsService

_PART = r"[A-Za-z0-9_.\-]{1,128}"
REFERENCE = re.compile(r"\{\{secrets/(" + _PART + r")/(" + _PART + r")\}\}")
_OPENING = re.compile(r"\{\{\s*secrets/")


def find_references(text: str | None) -> list[tuple[str, str]]:
    """The (scope, key) pairs referenced in `text`, in order, without repeats. A `{{secrets/` that
    is not a well-formed reference is an error rather than text silently passed on."""
    if not text:
        return []
    well_formed = {m.start() for m in REFERENCE.finditer(text)}
    for m in _OPENING.finditer(text):
        if m.start() not in well_formed:
            snippet = text[m.start():m.start() + 60].split("}}")[0]
            raise InvalidParameter(f"Malformed secret reference '{snippet}...': expected "
                                   "{{secrets/<scope>/<key>}}")
    out: list[tuple[str, str]] = []
    for m in REFERENCE.finditer(text):
        if (m.group(1), m.group(2)) not in out:
            out.append((m.group(1), m.group(2)))
    return out


def _label(scope: str, key: str) -> str:
    return "{{secrets/" + scope + "/" + key + "}}"


class SecretReferences:
    def __init__(self, secrets: SecretsService):
        self.secrets = secrets

    def check_readable(self, text: str | None, principal: Principal) -> list[tuple[str, str]]:
        """Every reference exists and `principal` may READ it; nothing is decrypted."""
        refs = find_references(text)
        if refs:
            with self.secrets.db.read() as s:
                for scope, key in refs:
                    with _about(scope, key):
                        row = self.secrets.authorized_scope(s, principal, scope, P.READ)
                    if s.get(SecretRow, (row.id, key)) is None:
                        raise InvalidParameter(f"Secret reference {_label(scope, key)}: secret '{key}' does not "
                                               f"exist in scope '{scope}'")
        return refs

    def resolve(self, text: str | None, principal: Principal) -> str | None:
        """`text` with every reference replaced by the secret's value (UTF-8 text)."""
        refs = find_references(text)
        if not refs:
            return text
        values: dict[tuple[str, str], str] = {}
        for scope, key in refs:
            with _about(scope, key):
                raw = self.secrets.reveal(principal, scope, key)
            try:
                values[(scope, key)] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidParameter(f"Secret reference {_label(scope, key)}: the value is binary, not UTF-8 "
                                       "text, and cannot be substituted into a configuration") from None
        return REFERENCE.sub(lambda m: values[(m.group(1), m.group(2))], text)


@contextlib.contextmanager
def _about(scope: str, key: str):
    """A missing scope or key becomes a 400 naming the reference; a denial stays a 403, named too."""
    try:
        yield
    except NotFound as e:
        raise InvalidParameter(f"Secret reference {_label(scope, key)}: {e.message}") from None
    except PermissionDenied as e:
        raise PermissionDenied(f"Secret reference {_label(scope, key)}: {e.message}") from None


__all__ = ["REFERENCE", "SecretReferences", "find_references"]
