"""One module per family of capability, and a registry that orders them."""
from .registry import CAPABILITIES, DEFAULT_CAPABILITIES, UnknownCapability, resolve, run_capabilities

__all__ = ["CAPABILITIES", "DEFAULT_CAPABILITIES", "UnknownCapability", "resolve", "run_capabilities"]
