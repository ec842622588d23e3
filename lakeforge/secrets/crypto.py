"""Encryption of secret values: AES-256-GCM with a random 96-bit nonce per value.

The associated data binds each ciphertext to its scope id and key name, so a row copied onto another
scope or key fails to decrypt instead of revealing one secret under another's name.

The master key comes from `LAKEFORGE_SECRETS_KEY` (base64 of 32 bytes) or from `<home>/secrets.key`,
generated at first start with mode 0600. The key itself is never logged or put in a message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lakeforge.errors import FailedPrecondition, InternalError

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "secrets.key"
_AAD_PREFIX = b"lakeforge-secret-v1\x00"


class SecretsKeyError(FailedPrecondition):
    """The master key is missing, malformed or too openly readable: the server refuses to start."""


class SecretCipher:
    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"The secrets key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings) -> SecretCipher:
        if settings.secrets_key:
            return cls(decode_key(settings.secrets_key, "LAKEFORGE_SECRETS_KEY"))
        return cls(load_or_create_key_file(Path(settings.home) / KEY_FILE))

    def encrypt(self, scope_id: str, key: str, plaintext: bytes) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext with its 16-byte tag)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, plaintext, _aad(scope_id, key))

    def decrypt(self, scope_id: str, key: str, nonce: bytes, ciphertext: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, _aad(scope_id, key))
        except InvalidTag:
            # A different master key, or a row moved or tampered with. Name the row, never the bytes.
            log.error("secret %r in scope id %s failed authentication (wrong key or tampered row)", key, scope_id)
            raise InternalError("A stored secret could not be decrypted; see the server log") from None


def _aad(scope_id: str, key: str) -> bytes:
    # Scope ids and key names never contain NUL, so the encoding is unambiguous.
    return _AAD_PREFIX + scope_id.encode() + b"\x00" + key.encode()


def decode_key(text: str, source: str) -> bytes:
    """Standard or URL-safe base64 of exactly 32 bytes."""
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeyError(f"{source} is not valid base64 (expected base64 of {KEY_BYTES} bytes)") from None
    if len(raw) != KEY_BYTES:
        raise SecretsKeyError(f"{source} must be base64 of {KEY_BYTES} bytes; it decodes to {len(raw)} bytes. "
                              f"Generate one with: python -c \"import os,base64;"
                              f"print(base64.b64encode(os.urandom(32)).decode())\"")
    return raw


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it (0600, written to a temporary file and linked into place, so a
    crash or a second process starting at the same time never leaves a half-written key)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)  # left by a crash of an earlier process with this pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            log.info("generated a new secrets key file at %s", path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretsKeyError(f"The secrets key file {path} is readable by others (mode {mode:o}); "
                              f"run: chmod 600 {path}")
    return decode_key(path.read_text(), str(path))


__all__ = ["KEY_FILE", "SecretCipher", "SecretsKeyError"]
