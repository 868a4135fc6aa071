"""Backend registries: one immutable table per kind of model backend, keyed by the configuration's ``kind``.

A registry row names a backend's ``kind`` (the discriminator of its configuration variant), how to import its class
(lazily: backends pull in onnxruntime, dlib or OpenCV), and which shared context its constructor takes. Building from
a configuration variant passes the variant's fields (all but ``kind`` and ``providers``) as constructor arguments, so
a backend's variant and its constructor say the same thing. Every host (single process, node and cluster workers),
the API and eval build their models through these tables: :mod:`metrosight.detect.registry` (face and person
detectors) and :mod:`metrosight.recognize.registry` (face embedders).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from metrosight.core.onnx_session import InferenceOptions

T = TypeVar("T")

#: the shared context a backend's constructor may take, by keyword
CONTEXT_KEYS = ("inference", "cache_dir")


class BackendConfig(Protocol):
    """A configuration variant: its ``kind`` and its fields (a pydantic model is one)."""

    @property
    def kind(self) -> str: ...

    def model_dump(self, *, exclude: Any = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What every backend of a process shares: where and how models run, and where generated models are cached.

    Attributes:
        inference: runtime, providers, threads and batch size (a variant's own ``providers`` replace these).
        cache_dir: where backends that build their ONNX graph at first use keep it, and derived (quantised)
            variants with their parity records (``<home>/cache/models``).
    """

    inference: InferenceOptions = field(default_factory=InferenceOptions)
    cache_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Backend(Generic[T]):
    """One registry row.

    Attributes:
        kind: the configuration discriminator.
        load: returns the backend's class or factory (it imports the backend's module).
        takes: which of :data:`CONTEXT_KEYS` the constructor takes.
        summary: one line for listings.
    """

    kind: str
    load: Callable[[], Callable[..., T]]
    takes: tuple[str, ...] = ()
    summary: str = ""


class Registry(Generic[T]):
    """An immutable table of backends of one kind.

    Args:
        what: what the backends are, for messages (``"face detector"``).
        backends: the rows.
        error: the exception raised for an unknown name or arguments a backend does not take.
        aliases: other names for rows (``"fast"`` for the default detector).
    """

    def __init__(
        self,
        what: str,
        backends: Sequence[Backend[T]],
        error: type[Exception],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.what = what
        self.error = error
        self._rows: Mapping[str, Backend[T]] = MappingProxyType({b.kind: b for b in backends})
        self._aliases: Mapping[str, str] = MappingProxyType(dict(aliases or {}))
        bad = [b.kind for b in backends if set(b.takes) - set(CONTEXT_KEYS)]
        if len(self._rows) != len(backends) or bad or set(self._aliases.values()) - set(self._rows):
            raise ValueError(f"{what} registry: duplicate kinds, unknown context {bad} or aliases to nothing")

    def kinds(self) -> list[str]:
        """The backends' kinds, sorted."""
        return sorted(self._rows)

    def names(self) -> list[str]:
        """Every accepted name: kinds and aliases, sorted."""
        return sorted([*self._rows, *self._aliases])

    def backend(self, name: str) -> Backend[T]:
        """The row of ``name`` (a kind or an alias).

        Raises:
            the registry's error: no such backend.
        """
        row = self._rows.get(self._aliases.get(name, name))
        if row is None:
            raise self.error(f"unknown {self.what} {name!r}; choose one of {', '.join(self.names())}")
        return row

    def construct(self, name: str, **kwargs: Any) -> T:
        """The backend ``name`` built with constructor arguments ``kwargs`` (research and bench use; hosts use
        :meth:`build`).

        Raises:
            the registry's error: unknown name, or arguments the backend does not take.
        """
        row = self.backend(name)
        try:
            return row.load()(**kwargs)
        except TypeError as exc:
            raise self.error(f"bad arguments for {self.what} {name!r}: {exc}") from exc

    def build(self, config: BackendConfig, context: BackendContext | None = None) -> T:
        """The backend ``config`` names, built from its fields and the shared ``context``.

        Raises:
            the registry's error: unknown kind, or the backend refuses its arguments.
        """
        ctx = context or BackendContext()
        row = self.backend(config.kind)
        kwargs = config.model_dump(exclude={"kind", "providers"})
        if "inference" in row.takes:
            kwargs["inference"] = ctx.inference.with_providers(getattr(config, "providers", None))
        if "cache_dir" in row.takes:  # None when the host has none: a backend that needs one refuses itself
            kwargs["cache_dir"] = ctx.cache_dir
        return self.construct(config.kind, **kwargs)
