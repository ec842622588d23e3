"""Lakeforge: a self-hosted platform for the whole life of ML models and GenAI applications."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The SDK is imported lazily so `import lakeforge` stays cheap for the server and CLI.
    if name in ("Client", "ApiError", "Record"):
        import lakeforge.client as client

        return getattr(client, name)
    raise AttributeError(name)
