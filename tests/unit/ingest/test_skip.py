"""The skip decision: which packets hold non-reference frames, and which of those the decoder may leave out without
the analysis getting fewer frames than with every frame decoded."""

from __future__ import annotations

import pytest

from metrosight.ingest.skip import SkipPlanner, is_reference, nal_length_size

SEI, SPS = 0x06, 0x67
H264_REF_P, H264_NONREF_B, H264_IDR = 0x41, 0x01, 0x65


def avcc(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(H264_REF_P, True), (H264_NONREF_B, False), (H264_IDR, True), (0x21, True)],
)
def test_h264_reference_flag_is_read_from_the_first_slice_after_sei(header: int, expected: bool) -> None:
    nals = (bytes([SEI, 5, 1, 2]), bytes([header, 0x9A, 0, 0, 1, 7]))  # the slice holds a start-code-like run
    assert is_reference(avcc(*nals), "h264", 4) is expected
    assert is_reference(annexb(*nals), "h264", 0) is expected


def test_hevc_sublayer_non_reference_types_are_not_references() -> None:
    def nal(kind: int) -> bytes:
        return bytes([kind << 1, 1, 0xAF])

    assert is_reference(avcc(nal(0)), "hevc", 4) is False  # TRAIL_N
    assert is_reference(avcc(nal(1)), "hevc", 4) is True  # TRAIL_R
    assert is_reference(annexb(nal(35), nal(8)), "hevc", 0) is False  # AUD, then RASL_N
    assert is_reference(annexb(nal(19)), "hevc", 0) is True  # IDR_W_RADL


def test_unknown_codec_or_no_picture_cannot_be_told() -> None:
    assert is_reference(avcc(bytes([H264_NONREF_B, 1])), "mpeg4", 4) is None
    assert is_reference(avcc(bytes([SPS, 1, 2])), "h264", 4) is None
    assert is_reference(b"", "h264", 0) is None


def test_nal_length_size_from_extradata() -> None:
    assert nal_length_size("h264", bytes([1, 100, 0, 31, 0xFF])) == 4
    assert nal_length_size("h264", bytes([1, 100, 0, 31, 0xFD])) == 2
    assert nal_length_size("hevc", bytes([1] + [0] * 20 + [0x0F])) == 4
    assert nal_length_size("h264", b"\x00\x00\x00\x01\x67") == 0  # Annex B parameter sets
    assert nal_length_size("h264", None) == 0


# -- the planner on synthetic streams: (display index, reference) in decode order ----------------------------------


def b_pyramid(n: int) -> list[tuple[int, bool]]:
    """x264's default: P every 4th frame, the middle B a reference, the outer Bs not (decode order I0 P4 B2 b1 b3)."""
    out = [(0, True)]
    for base in range(0, n - 4, 4):
        out += [(base + 4, True), (base + 2, True), (base + 1, False), (base + 3, False)]
    return out


def p_layers(n: int, every: int) -> list[tuple[int, bool]]:
    """P-frames only, every ``every``-th a reference (temporal layers of some cameras), in display order."""
    return [(i, i % every == 0) for i in range(n)]


def due(times: list[float], gap: float) -> list[float]:
    """The frames the analysis rate takes (VideoSource's and LiveSource's rule), display order."""
    out, next_ts = [], -1.0
    for ts in sorted(times):
        if gap and ts + 1e-6 < next_ts:
            continue
        next_ts = ts + gap if next_ts < 0 else max(next_ts + gap, ts)
        out.append(ts)
    return out


def decoded(planner: SkipPlanner, stream: list[tuple[int, bool]], fps: float) -> list[float]:
    return [i / fps for i, ref in stream if not planner.skip(i / fps, ref)]


@pytest.mark.parametrize("stream", [b_pyramid(200), p_layers(200, 2), p_layers(200, 3), p_layers(200, 4)])
@pytest.mark.parametrize("analysis_fps", [25.0, 12.0, 10.0, 6.0, 5.0, 3.0, 1.0])
def test_auto_never_lowers_the_analysed_rate(stream: list[tuple[int, bool]], analysis_fps: float) -> None:
    fps, gap = 25.0, 1.0 / analysis_fps
    full = due([i / fps for i, _ in stream], gap)
    kept = decoded(SkipPlanner("auto", gap, 1.0 / fps), stream, fps)
    taken = due(kept, gap)
    assert len(taken) == len(full)
    assert all(abs(a - b) < gap for a, b in zip(taken, full, strict=True))  # within one analysis interval
    shown = sorted(kept)
    gaps = [b - a for a, b in zip(shown, shown[1:], strict=False)]
    assert max(gaps) <= gap + 1e-3  # no hole longer than an analysis interval


def test_auto_skips_the_non_reference_b_frames_at_low_rates() -> None:
    stream = b_pyramid(100)
    kept = decoded(SkipPlanner("auto", 1.0 / 6, 1.0 / 25), stream, 25.0)
    assert len(kept) == sum(ref for _, ref in stream)  # every non-reference frame left out


def test_auto_skips_nothing_where_every_frame_is_needed_or_none_is_non_reference() -> None:
    assert len(decoded(SkipPlanner("auto", 1.0 / 25, 1.0 / 25), b_pyramid(100), 25.0)) == 97
    assert len(decoded(SkipPlanner("auto", 0.0, 1.0 / 25), b_pyramid(100), 25.0)) == 97
    assert len(decoded(SkipPlanner("auto", 1.0, 1.0 / 25), p_layers(100, 1), 25.0)) == 100


def test_auto_skips_only_what_keeps_frames_within_the_interval() -> None:
    # refs every 4th frame (0.16 s) and analysis every 0.1 s: some non-reference frames must be decoded
    kept = decoded(SkipPlanner("auto", 0.1, 0.04), p_layers(100, 4), 25.0)
    assert 25 < len(kept) < 100


def test_off_and_nonref() -> None:
    assert len(decoded(SkipPlanner("off", 1.0, 0.04), b_pyramid(100), 25.0)) == 97
    assert len(decoded(SkipPlanner("nonref", 0.0, 0.04), b_pyramid(100), 25.0)) == 49  # whatever the rate


def test_unknown_kind_or_time_is_decoded() -> None:
    p = SkipPlanner("auto", 1.0, 0.04)
    assert not p.skip(0.0, True)
    assert not p.skip(0.04, None)
    assert not p.skip(None, False)
    assert p.skip(0.08, False)


def test_a_clock_that_starts_over_decodes_until_a_frame_is_known_again() -> None:
    p = SkipPlanner("auto", 1.0, 0.04)
    for i in range(400):
        p.skip(100 + i * 0.04, True)
    assert not p.skip(0.04, False)  # nothing decoded before it on the new clock
    assert not p.skip(0.08, True)
    assert p.skip(0.12, False)
