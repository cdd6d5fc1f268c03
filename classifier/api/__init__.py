"""The HTTP face: `create_app` builds it, `api_router` routes, `protocol` holds the wire models."""
from .app import FixedBackend, create_app

__all__ = ["FixedBackend", "create_app"]
