"""The whole error hierarchy of the processor seam, in one place (as httpx does)."""
from __future__ import annotations


class ProcessorError(Exception):
    """Base of every error a processor raises or records against an item."""


class ConfigurationError(ProcessorError):
    """Settings that cannot work (unknown backend, bad URL, missing model folder)."""


class BackendUnavailable(ProcessorError):
    """The engine or server cannot be reached or did not start."""


class ModelNotFound(ProcessorError):
    """The server answers but does not serve the requested model."""


class ContextOverflow(ProcessorError):
    """Even the fixed part of a prompt does not fit the context window."""


class InvalidOutput(ProcessorError):
    """The model's output did not parse as JSON valid under the schema."""


class RequestFailed(ProcessorError):
    """A request failed in a way another attempt may cure (timeout, connection error,
    HTTP 429/5xx). `retry_after` is the wait in seconds the server asked for, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
