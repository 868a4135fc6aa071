"""Hardware decoding: ``auto`` falls back to the CPU with one log line; an explicit device that cannot be used is
refused at start with one line saying what is missing and what to do. (No device on the machines these tests were
written on: where one is present, the tests of its absence are skipped.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from metrosight.config.decode import DecodeConfig
from metrosight.config.model import IngestConfig
from metrosight.core.source import SourceSpec
from metrosight.ingest import hwaccel
from metrosight.ingest.decode import DecodeOptions
from metrosight.ingest.factory import file_source, live_source
from metrosight.ingest.hwaccel import HwaccelError, choose_decoder, decoder_problem, device_problem
from metrosight.ingest.source import SourceError


@pytest.fixture(autouse=True)
def fresh_probes() -> Iterator[None]:
    device_problem.cache_clear()
    hwaccel._auto.cache_clear()
    yield
    device_problem.cache_clear()
    hwaccel._auto.cache_clear()


def test_none_is_the_cpu() -> None:
    assert choose_decoder("none").kind == "software"
    assert choose_decoder("none").hwaccel() is None


def test_auto_without_a_device_decodes_on_the_cpu_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    if any(device_problem(k) is None for k in hwaccel.DEVICES):
        pytest.skip("a hardware decoder is present here")
    with caplog.at_level(logging.INFO, logger="metrosight.ingest.hwaccel"):
        assert choose_decoder("auto").kind == "software"
        assert choose_decoder("auto").kind == "software"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "decoding on the CPU" in lines[0] and "cuda" in lines[0] and "vaapi" in lines[0]
    assert decoder_problem("auto") is None


@pytest.mark.parametrize("kind", ["cuda", "vaapi"])
def test_an_explicit_device_that_is_missing_is_refused_in_one_line(kind: str) -> None:
    if device_problem(kind) is None:
        pytest.skip(f"a {kind} device is present here")
    with pytest.raises(HwaccelError) as err:
        choose_decoder(kind)  # type: ignore[arg-type]
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"ingest.decode.hwaccel is {kind} but ")
    assert "set ingest.decode.hwaccel to auto or none" in text
    assert ("NVIDIA driver" if kind == "cuda" else "VAAPI driver") in text
    assert decoder_problem(kind) == text  # type: ignore[arg-type]


def test_the_sources_refuse_a_missing_device_with_a_source_error(tmp_path) -> None:  # noqa: ANN001
    if device_problem("cuda") is None:
        pytest.skip("a cuda device is present here")
    cfg = IngestConfig(decode=DecodeConfig(hwaccel="cuda"))
    spec = SourceSpec.parse(str(tmp_path / "x.mp4"))
    with pytest.raises(SourceError, match="ingest.decode.hwaccel is cuda"):
        live_source(spec, "cam", cfg)
    with pytest.raises(SourceError, match="ingest.decode.hwaccel is cuda"):
        file_source(spec, "cam", cfg, 6.0)
    with pytest.raises(HwaccelError):
        DecodeOptions.from_config(cfg.decode, None)


def test_decode_options_follow_the_section() -> None:
    opts = DecodeOptions.from_config(DecodeConfig(skip="off", threads=0), 6.0)
    assert (opts.skip, opts.analysis_fps, opts.threads, opts.decoder.kind) == ("off", 6.0, 0, "software")
    assert opts.planner(25.0).analysis_gap == pytest.approx(1 / 6)
    assert not DecodeOptions.from_config(DecodeConfig(), None).planner(25.0).active  # no rate: nothing to skip


def test_yaml_off_is_read_as_the_word(tmp_path) -> None:  # noqa: ANN001
    from metrosight.config.load import load_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  decode:\n    skip: off\n")
    assert load_settings(cfg).ingest.decode.skip == "off"
    cfg.write_text("ingest:\n  decode:\n    skip: on\n")
    assert load_settings(cfg).ingest.decode.skip == "auto"
