"""Configuration of detection driven by need: motion gating (``detection.gating``) and each camera's detection
regions (``cameras[].detection``).

A region is a rectangle ``[x1, y1, x2, y2]`` in normalised frame coordinates (0 is the left or top edge, 1 the
right or bottom edge), so it holds whatever resolution the camera sends. Faces are looked for only inside the
regions; a face cut by a region's edge is tracked and blurred in snapshots but never becomes a best shot.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from metrosight.config.common import Section


def _numbers(v: object) -> object:
    """Refuse ``true``/``false`` as coordinates (a YAML boolean would otherwise be read as 1 or 0)."""
    if isinstance(v, list | tuple) and any(isinstance(c, bool) for c in v):
        raise ValueError(f"{list(v)} has a true/false where a number belongs; write four numbers between 0 and 1")
    return v


#: ``(x1, y1, x2, y2)``, fractions of the frame's width and height
RegionXY = tuple[float, float, float, float]
_Region = Annotated[RegionXY, BeforeValidator(_numbers)]


def check_region(region: RegionXY, what: str) -> RegionXY:
    """Refuse a region that is not a rectangle inside the frame.

    Args:
        region: ``(x1, y1, x2, y2)`` normalised to [0, 1].
        what: how the error names the region (``cameras[cam-1].detection.regions[2]``).

    Returns:
        ``region`` as floats.

    Raises:
        ValueError: one line saying what is wrong and how to write it.
    """
    x1, y1, x2, y2 = (float(v) for v in region)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"{what}: every coordinate must be a finite number between 0 and 1")
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        raise ValueError(
            f"{what}: {[x1, y1, x2, y2]} leaves the frame; coordinates are fractions of its width and height, "
            "between 0 and 1"
        )
    if x1 >= x2 or y1 >= y2:
        raise ValueError(
            f"{what}: {[x1, y1, x2, y2]} is empty; write [x1, y1, x2, y2] with x1 < x2 and y1 < y2 (top left, "
            "then bottom right)"
        )
    return (x1, y1, x2, y2)


#: the most detection regions a camera may list (each is a detector input of its own at every analysed frame)
MAX_REGIONS = 32


class GatingConfig(Section):
    """Motion gating: a cheap motion detector on a small grey copy of each analysed frame decides where the face
    detector runs (the moving areas and the predicted boxes of live tracks, padded); a full detection runs at least
    every ``full_every_seconds`` and after a scene cut or a reconnect."""

    enabled: bool = Field(
        False,
        description="detect faces only where something moved or a face is tracked (off: the whole frame or the "
        "camera's regions at every analysed frame)",
    )
    full_every_seconds: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        description="a full detection (whole frame or regions) at least this often, media seconds: a still person "
        "whose track ended is found again",
    )
    work_width: int = Field(
        160, ge=32, le=1280, description="width of the grey copy the motion detector compares, pixels"
    )
    threshold: int = Field(
        18, ge=1, le=255, description="grey-level difference from the background that counts as motion"
    )
    background_seconds: float = Field(
        1.5,
        gt=0.0,
        le=600.0,
        description="time constant of the running background, media seconds: what stays still this long is scenery",
    )
    min_area: float = Field(
        0.0005,
        ge=0.0,
        lt=1.0,
        description="moving blobs smaller than this share of the frame are noise",
    )
    pad: float = Field(
        0.25, ge=0.0, le=4.0, description="each moving area is widened by this share of its size on every side"
    )
    track_pad: float = Field(
        1.0, ge=0.0, le=8.0, description="each live track's predicted face box is widened by this many box sizes"
    )
    max_share: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="when the areas to search cover more than this share of the frame (or regions), the whole is "
        "searched in one call",
    )


class CameraDetectionConfig(Section):
    """One camera's detection settings."""

    regions: list[_Region] | None = Field(
        None,
        description="rectangles [x1, y1, x2, y2] in normalised frame coordinates (0..1) where faces can appear; "
        "faces are detected only there (None: the whole frame)",
    )
    gating: bool | None = Field(None, description="motion gating on this camera (None: detection.gating.enabled)")

    @field_validator("regions", mode="before")
    @classmethod
    def _a_list_of_rectangles(cls, v: object) -> object:
        if isinstance(v, list | tuple) and v and all(isinstance(x, int | float) for x in v):
            raise ValueError(
                f"{list(v)} is one rectangle written as the list: write a list of rectangles, e.g. [{list(v)}]"
            )
        return v

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[_Region] | None) -> list[_Region] | None:
        if v is None:
            return None
        if not v:
            raise ValueError(
                "regions is empty: no face would ever be detected; list at least one [x1, y1, x2, y2] or remove the "
                "key to detect in the whole frame"
            )
        if len(v) > MAX_REGIONS:
            raise ValueError(
                f"{len(v)} regions; at most {MAX_REGIONS} a camera (each is searched on its own at every analysed "
                "frame): cover the same areas with fewer, larger rectangles"
            )
        return [check_region(r, f"regions[{i}]") for i, r in enumerate(v)]
