"""Configuration: one pydantic root model (see :mod:`metrosight.config.model`)."""

from metrosight.config.load import ConfigError, load_settings
from metrosight.config.model import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
