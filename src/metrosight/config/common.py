"""What the configuration's modules share: the base of every section and the identifier types."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from metrosight.core.names import identifier


class Section(BaseModel):
    """A configuration section: unknown keys are refused (a typo is named), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _camera_id(v: str) -> str:
    return identifier(v, "camera id")


CameraId = Annotated[str, AfterValidator(_camera_id)]  # core/names.py: the one rule for camera ids everywhere
ZoneName = Annotated[str, AfterValidator(lambda v: identifier(v, "zone name"))]
CountingLineName = Annotated[str, AfterValidator(lambda v: identifier(v, "counting line name"))]
