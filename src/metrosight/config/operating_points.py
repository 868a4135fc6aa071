"""The two operating points the capacity figures compare, in one place: **today** (every speed-up switch of issue 20
off: the pipeline as it was) and **tuned** (the new defaults, plus the per-camera settings an installer chooses for
a metro camera), each at the **reference load** (every usable face of a track embedded and matched).

``bench/node.py`` measures both in the same run and ``metrosight plan`` plans with either; a test checks that the
``today`` point really turns every switch off. A switch is one configuration field (a dotted path into
:class:`~metrosight.config.model.Settings`, or into a camera's entry for ``cameras.*``) with the value that gives
today's behaviour; a new speed-up adds its row to :data:`SWITCHES`.

Camera profiles (:data:`PROFILES`) are the two kinds of camera the figures are given for: an HD metro camera
(1920×1080) and a 640×360 one, each with today's analysis rate (the rates of the README's figures) and the
per-camera settings an installer would choose for it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

Point = Literal["today", "tuned"]
POINTS: Final[tuple[Point, ...]] = ("today", "tuned")

#: the reference load: every usable face of a track embedded and matched (up to 32 a track, no quality floor), faces
#: from 16 px; the same for both points, so that a camera computes as many descriptors as its faces allow
REFERENCE_LOAD: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "recognition": MappingProxyType({"max_samples": 32, "min_quality": 0.0, "min_blur_var": 0.0}),
        "detection": MappingProxyType({"min_face_px": 16}),
    }
)

#: descriptors a second per camera at the reference load (the reference network's figure)
REFERENCE_FACES_PER_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class Switch:
    """One speed-up's configuration field.

    Attributes:
        path: dotted path into the settings (``detection.gate.enabled``); ``cameras.<field>`` is a camera's own field.
        today: the value that gives today's behaviour (the feature off).
        what: what the feature does, for the bench's table and the README.
    """

    path: str
    today: Any
    what: str


@dataclass(frozen=True, slots=True)
class CameraProfile:
    """A kind of camera the figures are given for.

    Attributes:
        name: ``hd`` or ``sd``.
        frame: frame size, ``1920x1080``.
        today_fps: today's analysis rate for it, frames a second (the README's figures: 6 for HD, 18 for 640×360).
        tuned: the camera's own settings an installer chooses for it (fields of a camera's entry under ``cameras``).
        why: why those settings.
    """

    name: str
    frame: str
    today_fps: float
    tuned: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""


#: every speed-up switch and the value that turns it off (rows are added as the speed-ups land)
SWITCHES: Final[tuple[Switch, ...]] = (
    Switch(
        "inference.batch_cameras",
        False,
        "a worker's cameras share one detector call and one embedder call a round (node and cluster workers)",
    ),
    Switch(
        "ingest.decode.skip",
        "off",
        "the decoder leaves out non-reference frames (B-frames) the analysis rate does not need",
    ),
    Switch(
        "ingest.decode.threads",
        0,
        "each camera decodes on its own thread (1) instead of FFmpeg's frame threads on every core (0)",
    ),
    Switch(
        "tracking.face_tracker",
        "iou",
        "faces tracked with a Kalman prediction and a centre-distance pass, so a low analysis rate does not split "
        "tracks (today's overlap-only tracker: 32 tracks at 6 fps against 15 at every frame on the crowd clip)",
    ),
    Switch(
        "tracking.scene_cut_per_second",
        0.0,
        "the scene-cut threshold allows for the time between compared frames (no false cut at a low rate)",
    ),
    Switch(
        "detection.gating.enabled",
        False,
        "motion gating: faces are looked for only where something moved or a face is tracked (full frame every 2 s)",
    ),
    Switch("cameras.detection.gating", False, "motion gating on this camera (an installer's choice per camera)"),
    Switch("cameras.detection.regions", None, "detection only inside a camera's configured regions"),
)

PROFILES: Final[Mapping[str, CameraProfile]] = MappingProxyType(
    {
        "hd": CameraProfile(
            "hd",
            "1920x1080",
            6.0,
            MappingProxyType({"analysis_fps": 6.0, "detection": MappingProxyType({"gating": True})}),
            "an HD metro camera at 6 analysed frames a second, the rate at which issue 20 asks the face tracker not "
            "to fragment (as today's figure), with motion gating (a metro camera watches empty scenes part of the "
            "day); no detection region: in the benchmark clip faces cross the whole frame",
        ),
        "sd": CameraProfile(
            "sd",
            "640x360",
            18.0,
            MappingProxyType({"analysis_fps": 6.0, "detection": MappingProxyType({"gating": True})}),
            "a 640×360 camera at 6 analysed frames a second (today: 18): with a tracker that carries faces between "
            "detections, the rate issue 20 sets for HD serves it too; motion gating on; no detection region",
        ),
    }
)


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"{path}: {key} is not a section")
    node[leaf] = value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def camera_overrides(point: Point, profile: str) -> dict[str, Any]:
    """A camera's own settings (fields of its ``cameras`` entry) at ``point`` for ``profile``.

    Raises:
        KeyError: an unknown point or profile.
    """
    prof = PROFILES[profile]
    if point not in POINTS:
        raise KeyError(point)
    cam: dict[str, Any] = {"analysis_fps": prof.today_fps}
    if point == "tuned":
        cam.update(_plain(prof.tuned))
    else:
        for s in SWITCHES:
            if s.path.startswith("cameras."):
                _set(cam, s.path.removeprefix("cameras."), _plain(s.today))
    return cam


def overrides(point: Point, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings (as for ``Settings.model_validate``) at ``point``: ``base`` (default: nothing), the reference load,
    and for ``today`` every switch of :data:`SWITCHES` off. Cameras' own settings: :func:`camera_overrides`.

    Raises:
        KeyError: an unknown point.
    """
    if point not in POINTS:
        raise KeyError(point)
    tree: dict[str, Any] = _plain(base or {})
    for section, values in REFERENCE_LOAD.items():
        for key, value in values.items():
            _set(tree, f"{section}.{key}", value)
    if point == "today":
        for s in SWITCHES:
            if not s.path.startswith("cameras."):
                _set(tree, s.path, _plain(s.today))
    return tree


def lookup(tree: Any, path: str) -> Any:
    """The value at dotted ``path`` in a settings model or nested mapping (``AttributeError``/``KeyError`` if none)."""
    node = tree
    for key in path.split("."):
        node = node[key] if isinstance(node, Mapping) else getattr(node, key)
    return node
