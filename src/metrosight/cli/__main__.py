"""``python -m metrosight.cli``: the same as the ``metrosight`` program."""

from metrosight.cli.app import entrypoint

entrypoint()
