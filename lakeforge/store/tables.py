"""Every service's tables, for Alembic autogenerate. Add new service stores here."""

from lakeforge.catalog import store as _catalog  # noqa: F401
from lakeforge.identity import store as _identity  # noqa: F401
from lakeforge.lineage import store as _lineage  # noqa: F401
from lakeforge.monitoring import store as _monitoring  # noqa: F401
from lakeforge.secrets import store as _secrets  # noqa: F401
from lakeforge.serving import store as _serving  # noqa: F401
from lakeforge.store import state as _state  # noqa: F401
from lakeforge.store.base import Base

metadata = Base.metadata
