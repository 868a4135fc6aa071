"""Named camera groups (``camera_groups:``): lines, stations, any named set of cameras, to scope users' roles by.

```yaml
camera_groups:
  line1: {lines: [red]}                          # every camera whose line is red
  okhotny-ryad: {cameras: [cam-1, cam-2]}        # these cameras
  centre: {cameras: [cam-7], lines: [blue]}      # both
```

Besides the named groups, every camera's ``line`` and ``group`` is a group of the same name (so ``cameras:red``
scopes a user to line red without declaring it). A named group may not take the name of a line or group, names
no camera twice, and names only configured cameras and lines (``config check`` refuses an unknown one by name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Protocol

from pydantic import AfterValidator, Field

from metrosight.config.common import CameraId, Section
from metrosight.core.names import distinct_identifiers, identifier, same_identifier

LineName = Annotated[str, AfterValidator(lambda v: identifier(v, "line"))]


class CameraGroupConfig(Section):
    """One named group: the cameras listed and every camera of the lines listed."""

    cameras: list[CameraId] = Field(default_factory=list, max_length=100_000, description="camera ids")
    lines: list[LineName] = Field(default_factory=list, max_length=1000, description="lines (cameras[].line)")


class _Camera(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def line(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...


def check_groups(groups: Mapping[str, CameraGroupConfig], cameras: Iterable[_Camera]) -> None:
    """Raises ValueError naming the first group that is badly named or names an unknown camera or line."""
    cams = list(cameras)
    implicit = {x for c in cams for x in (c.line, c.group) if x}
    distinct_identifiers(list(groups), "camera group name")
    for name, g in groups.items():
        identifier(name, "camera group name")
        clash = next((x for x in implicit if same_identifier(x, name)), None)
        if clash is not None:
            raise ValueError(
                f"camera_groups.{name}: {clash!r} is already a line or group of cameras (a group of its own); "
                "give the named group another name"
            )
        if not g.cameras and not g.lines:
            raise ValueError(f"camera_groups.{name}: names no camera and no line; list its cameras or lines")
        for cid in g.cameras:
            if not any(same_identifier(c.id, cid) for c in cams):
                raise ValueError(
                    f"camera_groups.{name}: camera {cid!r} is not configured under cameras; add it there or "
                    "remove it from the group"
                )
        lines = {c.line for c in cams if c.line}
        for line in g.lines:
            if not any(same_identifier(x, line) for x in lines):
                raise ValueError(
                    f"camera_groups.{name}: no camera is on line {line!r} (cameras[].line); check the spelling"
                )


def check_known_groups(names: Iterable[str], known: Iterable[str], where: str) -> None:
    """Raises ValueError naming the first of ``names`` (camera groups named at ``where``, e.g.
    ``outbound.mqtt.camera_groups``) that is not among ``known`` (:func:`group_members`' keys): a filter naming it
    would match no camera, silently."""
    groups = list(known)
    for g in names:
        if not any(same_identifier(g, k) for k in groups):
            raise ValueError(
                f"{where}: no camera group {g!r} (known: {', '.join(sorted(groups)) or 'none are configured'}); "
                "define it under camera_groups or name a line or group of a camera"
            )


def group_members(groups: Mapping[str, CameraGroupConfig], cameras: Iterable[_Camera]) -> dict[str, list[str]]:
    """Every group (named, then each camera's line and group) → the ids of its cameras, as configured."""
    cams = list(cameras)
    out: dict[str, list[str]] = {}
    for c in cams:
        for x in (c.line, c.group):
            if x:
                out.setdefault(x, []).append(c.id)
    for name, g in groups.items():
        ids = [
            c.id
            for c in cams
            if any(same_identifier(c.id, x) for x in g.cameras)
            or (c.line is not None and any(same_identifier(c.line, x) for x in g.lines))
        ]
        out[name] = ids
    return out
