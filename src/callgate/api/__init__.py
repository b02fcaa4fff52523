"""The HTTP API: FastAPI routes over the same gateway the CLI uses."""

from callgate.api.app import create_app

__all__ = ["create_app"]
