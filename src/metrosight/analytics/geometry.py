"""Plane geometry for the analytics: polygons, lines and the image → ground-plane homography.

Points are ``(x, y)`` pairs. Image points are pixels of the camera frame; world points are metres on the ground
plane. Everything here is pure numpy and has no state beyond its constructor arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class GeometryError(ValueError):
    """A polygon, line or calibration is degenerate (too few points, collinear points, zero length)."""


Point = tuple[float, float]


def _as_points(points: Sequence[Sequence[float]] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise GeometryError(f"{what} must be a list of (x, y) points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"{what} has a non-finite coordinate: {arr.tolist()}")
    return arr


class Polygon:
    """A simple polygon (its edges must not cross).

    Args:
        vertices: ``(N, 2)`` points, ``N >= 3``, in order around the polygon (either direction).

    Raises:
        GeometryError: fewer than 3 points, or zero area.
    """

    def __init__(self, vertices: Sequence[Sequence[float]] | np.ndarray) -> None:
        v = _as_points(vertices, "polygon")
        if len(v) < 3:
            raise GeometryError(f"a polygon needs at least 3 points, got {len(v)}: {v.tolist()}")
        x, y = v[:, 0], v[:, 1]
        area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        if abs(area) < 1e-12:
            raise GeometryError(f"polygon has zero area: {v.tolist()}")
        self.vertices = v
        self.area = abs(area)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (``(M, 2)``) lie inside (even-odd rule; points on an edge may go either way).

        Returns:
            ``(M,)`` bool.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        px, py = p[:, 0:1], p[:, 1:2]
        x1, y1 = self.vertices[:, 0], self.vertices[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        straddles = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        hits = straddles & (px < x_cross)
        return (np.count_nonzero(hits, axis=1) % 2) == 1

    def contains_point(self, point: Point) -> bool:
        return bool(self.contains(np.array([point]))[0])

    def edge_distance(self, point: Point) -> float:
        """Distance from ``point`` to the nearest edge of the polygon."""
        p = np.asarray(point, dtype=np.float64)
        a = self.vertices
        d = np.roll(a, -1, axis=0) - a
        t = np.clip(np.einsum("ij,ij->i", p - a, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-12), 0.0, 1.0)
        nearest = a + t[:, None] * d
        return float(np.min(np.hypot(*(nearest - p).T)))


class Line:
    """A counting line from ``a`` to ``b``.

    Walking along ``a → b`` in image coordinates (y down), the *left* side is where ``cross(b - a, p - a) < 0``;
    a crossing from the right side to the left side counts as ``in``, the other way as ``out``.

    Raises:
        GeometryError: ``a`` and ``b`` coincide.
    """

    def __init__(self, a: Sequence[float], b: Sequence[float]) -> None:
        pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if pa.shape != (2,) or pb.shape != (2,):
            raise GeometryError(f"a line needs two (x, y) end points, got {a!r} and {b!r}")
        d = pb - pa
        length = float(np.hypot(*d))
        if length < 1e-9:
            raise GeometryError(f"a line needs two distinct end points, got {a!r} twice")
        self.a, self.b, self.length = pa, pb, length
        self._dir = d / length

    def signed_distance(self, point: Sequence[float]) -> float:
        """Distance of ``point`` from the (infinite) line; negative on the left side (see the class docstring)."""
        p = np.asarray(point, dtype=np.float64) - self.a
        return float(self._dir[0] * p[1] - self._dir[1] * p[0])

    def across(self, vector: Sequence[float]) -> float:
        """The component of ``vector`` (a velocity) across the line, positive towards its right side."""
        return float(self._dir[0] * vector[1] - self._dir[1] * vector[0])

    def along(self, point: Sequence[float]) -> float:
        """Position of ``point``'s projection along ``a → b``: 0 at ``a``, 1 at ``b``."""
        p = np.asarray(point, dtype=np.float64) - self.a
        return float(np.dot(p, self._dir)) / self.length


class GroundPlane:
    """Maps image points to metres on the ground plane with a homography from four point pairs.

    Args:
        image_points: 4 points in image pixels (no three collinear).
        world_points: the same 4 points on the ground, in metres.

    Raises:
        GeometryError: not 4 pairs, three collinear points, or a singular mapping.
    """

    def __init__(self, image_points: Sequence[Sequence[float]], world_points: Sequence[Sequence[float]]) -> None:
        src = _as_points(image_points, "calibration image_points")
        dst = _as_points(world_points, "calibration world_points")
        if len(src) != 4 or len(dst) != 4:
            raise GeometryError(f"calibration needs exactly 4 image and 4 world points, got {len(src)} and {len(dst)}")
        for name, pts in (("image_points", src), ("world_points", dst)):
            for i in range(4):
                q = np.delete(pts, i, axis=0)
                area = abs((q[1, 0] - q[0, 0]) * (q[2, 1] - q[0, 1]) - (q[1, 1] - q[0, 1]) * (q[2, 0] - q[0, 0]))
                if area < 1e-9 * max(1.0, float(np.abs(pts).max()) ** 2):
                    raise GeometryError(f"calibration {name} has three collinear points: {q.tolist()}")
        self.matrix = homography(src, dst)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """``(M, 2)`` image pixels → ``(M, 2)`` metres."""
        return apply_homography(self.matrix, points)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3×3 matrix ``H`` with ``dst ~ H @ [src, 1]`` from 4 point pairs (direct linear transform, ``h33 = 1``).

    Raises:
        GeometryError: the system is singular.
    """
    a = np.zeros((8, 8))
    rhs = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        rhs[2 * i], rhs[2 * i + 1] = u, v
    try:
        h = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        raise GeometryError(f"calibration points give a singular homography: {src.tolist()} → {dst.tolist()}") from None
    return np.append(h, 1.0).reshape(3, 3)


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3×3 homography to ``(M, 2)`` points."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = np.hstack([p, np.ones((len(p), 1))]) @ matrix.T
    return q[:, :2] / q[:, 2:3]
