"""`lakeforge.Client`: a small typed client over the Lakeforge REST API.

    from lakeforge import Client
    lf = Client("http://127.0.0.1:8080", token="...")   # or LAKEFORGE_HOST / LAKEFORGE_TOKEN / a profile
    for c in lf.catalogs.list():
        print(c.name)
"""

from __future__ import annotations

from lakeforge.client import catalog, monitoring, platform, serving
from lakeforge.client.sql import Sql
from lakeforge.client.connection import ApiError, Connection, Record


class Client:
    def __init__(self, host: str | None = None, token: str | None = None, *, profile: str | None = None,
                 timeout: float = 60.0):
        self._conn = Connection(host, token, profile, timeout)
        self.host = self._conn.host
        self.catalogs = catalog.Catalogs(self._conn)
        self.schemas = catalog.Schemas(self._conn)
        self.tables = catalog.Tables(self._conn)
        self.volumes = catalog.Volumes(self._conn)
        self.models = catalog.Models(self._conn)
        self.grants = catalog.Grants(self._conn)
        self.users = platform.Users(self._conn)
        self.groups = platform.Groups(self._conn)
        self.service_principals = platform.ServicePrincipals(self._conn)
        self.tokens = platform.Tokens(self._conn)
        self.secrets = platform.Secrets(self._conn)
        self.audit = platform.Audit(self._conn)
        self.lineage = platform.Lineage(self._conn)
        self.sql = Sql(self._conn)
        self.serving = serving.Serving(self._conn)
        self.monitors = monitoring.Monitors(self._conn)

    def request(self, method: str, path: str, **kw):
        """Escape hatch: any REST call with this client's host, token and error handling."""
        return self._conn.request(method, path, **kw)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Client", "ApiError", "Record"]
