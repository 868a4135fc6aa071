"""One camera source type, parsed once: every shown form is derived from the parsed value without credentials."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from metrosight.config.load import ConfigError, load_settings
from metrosight.core.source import SourceSpec, SourceSyntaxError
from metrosight.ingest.source import upright


@pytest.mark.parametrize(
    ("text", "display", "user", "password"),
    [
        # FFmpeg takes the last '@' of the authority as the separator: so do we
        ("rtsp://admin:P@ssw0rd@127.0.0.1:8554/stream1", "rtsp://***@127.0.0.1:8554/stream1", "admin", "P@ssw0rd"),
        ("rtsp://:OnlyPassword9@127.0.0.1:8554/stream2", "rtsp://***@127.0.0.1:8554/stream2", "", "OnlyPassword9"),
        ("rtsp://u%40x:p%2F%23%3Fw%20d@cam:554/a", "rtsp://***@cam:554/a", "u@x", "p/#?w d"),
        ("rtsps://user@cam/a", "rtsps://***@cam/a", "user", None),
        ("rtsp://user:pa ss@host/x", "rtsp://***@host/x", "user", "pa ss"),
        (
            "http://cam/video.mjpg?Token=abc&res=hd&X-Amz-Signature=zz",
            "http://cam/video.mjpg?Token=***&res=hd&X-Amz-Signature=***",
            None,
            None,
        ),
        ("https://cam/live.m3u8?apiKey=k1&password=p1", "https://cam/live.m3u8?apiKey=***&password=***", None, None),
        ("rtmp://u:p@srv/live/key", "rtmp://***@srv/live/key", "u", "p"),
        ("udp://239.1.1.1:5000", "udp://239.1.1.1:5000", None, None),
        ("rtsp://[fe80::1]:554/x", "rtsp://[fe80::1]:554/x", None, None),
        (
            "rtsp://10.0.0.1/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp",
            "rtsp://10.0.0.1/user=***_password=***_channel=1_stream=0.sdp",
            None,
            None,
        ),
    ],
)
def test_parse_and_display(text, display, user, password):
    spec = SourceSpec.parse(text)
    assert spec.display == display and str(spec) == display
    assert (spec.username, spec.password) == (user, password)
    assert password is None or len(password) < 3 or password not in repr(spec)  # not even in a repr
    again = SourceSpec.parse(spec.url_for_ffmpeg)  # the decoder's form parses to the same credentials
    assert (again.username, again.password, again.host, again.port) == (user, password, spec.host, spec.port)


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("rtsp://user:pa/ss@host/x", "percent-encode"),
        ("rtsp://user:pa#ss@host/x", "percent-encode"),
        ("http://user:pa?ss@host/x", "percent-encode"),
        ("rtsp://us/er:Pw0rdX@host/x", "percent-encode"),
        ("rtsp://user:pw@host:port/x", "bad port"),
        ("srt://host:9000?passphrase=s3cretSRT", "srt:// sources are not supported"),
        ("ftp://user:pw@host/x", "unsupported source scheme ftp://"),
        ("rtsp:///x", "no host"),
        ("udp://239.1.1.1", "needs a port"),
        ("", "empty source"),
        ("webcam:x", "bad webcam source"),
    ],
)
def test_refused_by_name_without_the_password(text, msg):
    with pytest.raises(SourceSyntaxError, match=msg) as err:
        SourceSpec.parse(text)
    for secret in ("pa/ss", "pa#ss", "pa?ss", "s3cretSRT", "Pw0rdX", "pw@"):
        if secret in text:
            assert secret not in str(err.value)


def test_rtsp_transport_is_for_rtsp_only():
    assert SourceSpec.parse("rtsp://h/x", "udp").rtsp_transport == "udp"
    with pytest.raises(SourceSyntaxError, match="rtsp_transport applies to rtsp"):
        SourceSpec.parse("http://h/x", "tcp")
    with pytest.raises(SourceSyntaxError, match="auto, tcp, udp"):
        SourceSpec.parse("rtsp://h/x", "sctp")


def test_redact_decoder_messages():
    spec = SourceSpec.parse("rtsp://admin:P@ss w0rd@10.0.0.5:554/h264?token=tok123")
    msg = f"[Errno 111] Connection refused: '{spec.url_for_ffmpeg}' (P@ss w0rd, P%40ss%20w0rd, tok123)"
    out = spec.redact(msg)
    for leaked in ("P@ss w0rd", "P%40ss%20w0rd", "tok123", "admin"):
        assert leaked not in out
    assert spec.display in out


def test_config_check_refuses_by_name_and_never_echoes(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "cameras:\n"
        '  - {id: a, source: "rtsp://admin:Pa/ss9@127.0.0.1:8554/s"}\n'
        '  - {id: b, source: "srt://127.0.0.1:9000?passphrase=SrtSecret1"}\n'
        '  - {id: c, source: "http://u:HttpPw77@127.0.0.1/cam.mjpg", rtsp_transport: tcp}\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    text = str(err.value)
    assert "cameras.0" in text and "percent-encode" in text
    assert "srt:// sources are not supported" in text and "rtsp_transport applies to rtsp" in text
    for secret in ("Pa/ss9", "SrtSecret1", "HttpPw77"):
        assert secret not in text
    cfg.write_text('cameras:\n  - {id: a, source: "rtsp://u:YamlSecret1@h/x}\n')  # broken YAML
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert "YamlSecret1" not in str(err.value) and "line" in str(err.value)


def test_camera_credentials_case_parses(tmp_path):
    from tests.conftest import require_case

    settings = load_settings(require_case("camera-credentials", "node.yaml"), environ={})
    for cam in settings.cameras:
        spec = SourceSpec.parse(cam.source)
        assert spec.password and spec.password not in spec.display and spec.display.startswith("rtsp://***@")


# -- property: any user name, password or credential parameter, in every scheme --------------------------------
SCHEMES = ["rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "udp", "rtp"]
secret_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=6, max_size=24).filter(
    lambda s: s.strip() == s and "***" not in s
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(SCHEMES),
    user=st.one_of(st.none(), st.just(""), secret_text),
    password=st.one_of(st.none(), secret_text),
    param=st.sampled_from(
        [
            "token",
            "password",
            "passwd",
            "pwd",
            "key",
            "secret",
            "auth",
            "signature",
            "apikey",
            "access_token",
            "ACCESS_TOKEN",
            "Api-Key",
            "X-Amz-Signature",
            "passphrase",
        ]
    ),
    value=st.one_of(st.none(), secret_text),
    encode=st.booleans(),
)
def test_no_credential_in_any_shown_form(scheme, user, password, param, value, encode):
    host = "cam-7.example"
    userinfo = ""
    if user is not None or password is not None:
        q = (lambda s: quote(s, safe="")) if encode else (lambda s: quote(s, safe="@ "))
        userinfo = q(user or "") + (":" + q(password) if password is not None else "") + "@"
    query = f"?{param}={quote(value, safe='')}&fps=5" if value is not None else ""
    text = f"{scheme}://{userinfo}{host}:5004/live/ch1{query}"
    spec = SourceSpec.parse(text)
    secrets = [s for s in (user, password, value) if s]
    assume(all(s not in f"{scheme}://***@{host}:5004/live/ch1?{param}=***&fps=5" for s in secrets))
    assert (spec.username, spec.password) == ((user or "") if userinfo else None, password)
    shown = [spec.display, spec.redact(f"error opening '{spec.url_for_ffmpeg}': {text}")]
    for s in secrets:
        for form in {s, quote(s, safe=""), quote(s, safe="@ ")}:
            assert all(form not in out for out in shown), (form, shown)
    if value is not None:
        assert any(p.value == value for p in spec.query)  # the decoder still gets it
        assert quote(value, safe="") in spec.url_for_ffmpeg


# -- display matrix -------------------------------------------------------------------------------------------
def test_upright_covers_the_eight_orientations():
    img = np.arange(2 * 3).reshape(2, 3)
    assert upright(img, None) is img
    np.testing.assert_array_equal(upright(img, (-1, 0, 0, 1)), img[:, ::-1])  # mirrored
    np.testing.assert_array_equal(upright(img, (1, 0, 0, -1)), img[::-1])  # upside down mirrored
    np.testing.assert_array_equal(upright(img, (-1, 0, 0, -1)), np.rot90(img, 2))  # half turn
    np.testing.assert_array_equal(upright(img, (0, -1, 1, 0)), np.rot90(img, 1))  # FFmpeg rotation +90 (ccw)
    np.testing.assert_array_equal(upright(img, (0, 1, -1, 0)), np.rot90(img, -1))  # rotation -90 (a phone)
    np.testing.assert_array_equal(upright(img, (0, 1, 1, 0)), img.T)  # transposed
    np.testing.assert_array_equal(upright(img, (0, -1, -1, 0)), np.rot90(img, 2).T)  # anti-transposed


class _Side:
    def __init__(self, matrix):
        self.m = matrix

    def __bool__(self):
        return self.m is not None

    def get(self, _type):
        return None if self.m is None else np.array(self.m, dtype="<i4").tobytes()


class _Raw:
    def __init__(self, matrix=None, key=False):
        self.side_data, self.key_frame = _Side(matrix), key


def test_orientation_holds_until_the_stream_says_otherwise():
    from metrosight.ingest.source import Orientation

    quarter = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]  # rotation -90 (a phone held upright)
    upright_m = [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]
    o = Orientation()
    assert o.update(_Raw()) is None
    assert o.update(_Raw(quarter, key=True)) == (0, 1, -1, 0)
    assert o.update(_Raw()) == (0, 1, -1, 0)  # an in-band message holds for the frames after it
    assert o.update(_Raw(upright_m)) is None  # until the stream says otherwise …
    assert o.update(_Raw(quarter)) == (0, 1, -1, 0)
    assert o.update(_Raw(key=True)) == (0, 1, -1, 0)  # a key frame without one: its message may come later …
    for _ in range(Orientation.GRACE - 1):
        assert o.update(_Raw()) == (0, 1, -1, 0)
    assert o.update(_Raw()) is None  # … and when none came, the new sequence is upright
