"""Catalog areas of the SDK: catalogs, schemas, tables, volumes, functions, models, grants."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lakeforge.client.connection import Connection, Record

UC = "/api/2.1/unity-catalog"


class _Area:
    def __init__(self, conn: Connection):
        self._c = conn


class Catalogs(_Area):
    def create(self, name: str, comment: str | None = None, properties: dict[str, str] | None = None,
               storage_root: str | None = None) -> Record:
        return self._c.request("POST", f"{UC}/catalogs", json={"name": name, "comment": comment,
                                                               "properties": properties, "storage_root": storage_root})

    def get(self, name: str) -> Record:
        return self._c.request("GET", f"{UC}/catalogs/{name}")

    def list(self) -> Iterator[Record]:
        return self._c.paginate(f"{UC}/catalogs", "catalogs")

    def update(self, name: str, *, new_name: str | None = None, comment: str | None = None,
               owner: str | None = None, properties: dict[str, str] | None = None) -> Record:
        return self._c.request("PATCH", f"{UC}/catalogs/{name}", json={"new_name": new_name, "comment": comment,
                                                                       "owner": owner, "properties": properties})

    def delete(self, name: str, force: bool = False) -> None:
        self._c.request("DELETE", f"{UC}/catalogs/{name}", params={"force": force})


class Schemas(_Area):
    def create(self, full_name: str, comment: str | None = None, properties: dict[str, str] | None = None) -> Record:
        catalog, name = full_name.split(".", 1)
        return self._c.request("POST", f"{UC}/schemas", json={"catalog_name": catalog, "name": name,
                                                              "comment": comment, "properties": properties})

    def get(self, full_name: str) -> Record:
        return self._c.request("GET", f"{UC}/schemas/{full_name}")

    def list(self, catalog: str) -> Iterator[Record]:
        return self._c.paginate(f"{UC}/schemas", "schemas", {"catalog_name": catalog})

    def update(self, full_name: str, *, new_name: str | None = None, comment: str | None = None,
               owner: str | None = None) -> Record:
        return self._c.request("PATCH", f"{UC}/schemas/{full_name}",
                               json={"new_name": new_name, "comment": comment, "owner": owner})

    def delete(self, full_name: str, force: bool = False) -> None:
        self._c.request("DELETE", f"{UC}/schemas/{full_name}", params={"force": force})


class Tables(_Area):
    def get(self, full_name: str) -> Record:
        return self._c.request("GET", f"{UC}/tables/{full_name}")

    def list(self, schema: str) -> Iterator[Record]:
        catalog, name = schema.split(".", 1)
        return self._c.paginate(f"{UC}/tables", "tables", {"catalog_name": catalog, "schema_name": name})

    def create(self, full_name: str, columns: list[dict[str, Any]], *, table_type: str = "MANAGED",
               storage_location: str | None = None, comment: str | None = None) -> Record:
        catalog, schema, name = full_name.split(".")
        return self._c.request("POST", f"{UC}/tables", json={
            "catalog_name": catalog, "schema_name": schema, "name": name, "table_type": table_type,
            "data_source_format": "DELTA", "columns": columns, "storage_location": storage_location,
            "comment": comment})

    def exists(self, full_name: str) -> bool:
        return bool(self._c.request("GET", f"{UC}/tables/{full_name}/exists").get("table_exists"))

    def delete(self, full_name: str) -> None:
        self._c.request("DELETE", f"{UC}/tables/{full_name}")

    # ---- data (Lakeforge extension: Arrow IPC streams) -----------------------------------------
    def write(self, data: Any, full_name: str, mode: str = "append", schema_mode: str | None = None) -> Record:
        """Append or overwrite rows from a pyarrow Table/RecordBatchReader, pandas or polars DataFrame;
        creates a managed table on the first write. Returns {full_name, version, num_rows, created}."""
        from lakeforge.client import table_data

        result = table_data.post_stream(self._c, table_data.DATA.format(full_name), table_data.to_reader(data),
                                        {"mode": mode, "schema_mode": schema_mode})
        return Record(result)

    def read(self, full_name: str, version: int | None = None, columns: list[str] | None = None,
             limit: int | None = None) -> Any:
        """The table (at `version`, else the latest) as a pyarrow.Table."""
        from lakeforge.client import table_data

        return table_data.get_table(self._c, table_data.DATA.format(full_name), {
            "version": version, "columns": ",".join(columns) if columns else None, "limit": limit})

    def history(self, full_name: str, limit: int | None = None) -> list[Record]:
        """Delta commits, newest first: version, timestamp (epoch ms), operation, user, num_rows, ..."""
        return self._c.request("GET", f"/api/2.0/lakeforge/tables/{full_name}/history",
                               params={"limit": limit}).get("history", [])

    def changes(self, full_name: str, starting_version: int = 0, ending_version: int | None = None) -> Any:
        """The change data feed (managed tables) as a pyarrow.Table with _change_type, _commit_version and
        _commit_timestamp."""
        from lakeforge.client import table_data

        return table_data.get_table(self._c, f"/api/2.0/lakeforge/tables/{full_name}/changes",
                                    {"starting_version": starting_version, "ending_version": ending_version})


class Volumes(_Area):
    def create(self, full_name: str, *, volume_type: str = "MANAGED", storage_location: str | None = None,
               comment: str | None = None) -> Record:
        catalog, schema, name = full_name.split(".")
        return self._c.request("POST", f"{UC}/volumes", json={
            "catalog_name": catalog, "schema_name": schema, "name": name, "volume_type": volume_type,
            "storage_location": storage_location, "comment": comment})

    def get(self, full_name: str) -> Record:
        return self._c.request("GET", f"{UC}/volumes/{full_name}")

    def list(self, schema: str) -> Iterator[Record]:
        catalog, name = schema.split(".", 1)
        return self._c.paginate(f"{UC}/volumes", "volumes", {"catalog_name": catalog, "schema_name": name})

    def delete(self, full_name: str) -> None:
        self._c.request("DELETE", f"{UC}/volumes/{full_name}")

    def upload(self, path: str, data: bytes, overwrite: bool = True) -> None:
        """`path` is /Volumes/catalog/schema/volume/dir/file."""
        self._c.request("PUT", f"/api/2.0/fs/files{_volume_path(path)}", content=data,
                        params={"overwrite": overwrite})

    def download(self, path: str) -> bytes:
        return self._c.request("GET", f"/api/2.0/fs/files{_volume_path(path)}", raw=True).content

    def list_files(self, path: str) -> Iterator[Record]:
        return self._c.paginate(f"/api/2.0/fs/directories{_volume_path(path)}", "contents")


def _volume_path(path: str) -> str:
    path = "/" + path.lstrip("/")
    if not path.startswith("/Volumes/"):
        raise ValueError("volume paths look like /Volumes/catalog/schema/volume/...")
    return path


class Models(_Area):
    def get(self, full_name: str) -> Record:
        return self._c.request("GET", f"{UC}/models/{full_name}", params={"include_aliases": True})

    def list(self, schema: str | None = None) -> Iterator[Record]:
        params = {}
        if schema:
            params["catalog_name"], params["schema_name"] = schema.split(".", 1)
        return self._c.paginate(f"{UC}/models", "registered_models", params)

    def versions(self, full_name: str) -> Iterator[Record]:
        return self._c.paginate(f"{UC}/models/{full_name}/versions", "model_versions")

    def set_alias(self, full_name: str, alias: str, version: int) -> Record:
        return self._c.request("PUT", f"{UC}/models/{full_name}/aliases/{alias}", json={"version_num": version})

    def delete_alias(self, full_name: str, alias: str) -> None:
        self._c.request("DELETE", f"{UC}/models/{full_name}/aliases/{alias}")

    def delete(self, full_name: str) -> None:
        self._c.request("DELETE", f"{UC}/models/{full_name}")


class Grants(_Area):
    def get(self, securable_type: str, full_name: str, principal: str | None = None) -> list[Record]:
        return self._c.request("GET", f"{UC}/permissions/{securable_type}/{full_name}",
                               params={"principal": principal}).get("privilege_assignments", [])

    def update(self, securable_type: str, full_name: str, principal: str, *, add: list[str] | None = None,
               remove: list[str] | None = None) -> list[Record]:
        body = {"changes": [{"principal": principal, "add": add or [], "remove": remove or []}]}
        return self._c.request("PATCH", f"{UC}/permissions/{securable_type}/{full_name}",
                               json=body).get("privilege_assignments", [])

    def grant(self, securable_type: str, full_name: str, principal: str, *privileges: str) -> list[Record]:
        return self.update(securable_type, full_name, principal, add=list(privileges))

    def revoke(self, securable_type: str, full_name: str, principal: str, *privileges: str) -> list[Record]:
        return self.update(securable_type, full_name, principal, remove=list(privileges))
