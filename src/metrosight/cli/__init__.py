"""The ``metrosight`` command line (one Typer app, ``metrosight.cli:app``): one module per command group, a
:class:`~metrosight.cli.context.CliContext` per invocation, shared helpers in :mod:`metrosight.cli.common`."""

from metrosight.cli.app import app, entrypoint

__all__ = ["app", "entrypoint"]
