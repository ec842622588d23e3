"""The ASGI application: composes every service's router, authentication, errors and audit."""
