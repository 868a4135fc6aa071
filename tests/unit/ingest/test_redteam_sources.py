"""Red-team findings on camera sources: inputs a new user, an insider or a hostile client would write.

Each test failed before its fix: a credential reached a message, or a mistyped address was taken for a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.config.load import ConfigError, load_settings
from metrosight.core.source import SourceSpec, SourceSyntaxError
from metrosight.ingest.source import SourceError, parse_source

SECRET = "Secret99"


# -- a stream address with a mistyped "://" is not a file ---------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "rtsp:/admin:Secret99@127.0.0.1/x",  # one slash
        "rtsp:admin:Secret99@127.0.0.1/x",  # none
        "RTSP:\\\\admin:Secret99@127.0.0.1\\x",  # backslashes, upper case
        "rtsp//admin:Secret99@127.0.0.1/x",  # no colon
        "rtsp :// admin:Secret99@127.0.0.1/x",  # a space before the colon
        "https:/cam.example/live.m3u8?token=Secret99",
        "htp:/admin:Secret99@127.0.0.1/x",  # a typo in the scheme too
    ],
)
def test_mistyped_stream_address_refused_without_quoting_it(text, tmp_path):
    with pytest.raises(SourceSyntaxError) as exc:
        SourceSpec.parse(text)
    assert SECRET not in str(exc.value) and "admin" not in str(exc.value)
    assert "://" in str(exc.value)  # says how to write it
    with pytest.raises(SourceError) as exc2:  # run / node: the same refusal, never "video file not found: <it>"
        parse_source(text)
    assert SECRET not in str(exc2.value)
    cfg = tmp_path / "c.yaml"  # config check refuses what run refuses
    cfg.write_text(f"cameras:\n  - id: gate-1\n    source: '{text}'\n")
    with pytest.raises(ConfigError) as exc3:
        load_settings(cfg, environ={})
    assert SECRET not in str(exc3.value)


@pytest.mark.parametrize("text", ["c:/videos/x.mp4", "clip:1.mp4", "/videos/rtsp:/x.mp4", "rtsp/clip.mp4", "a.mp4"])
def test_file_paths_that_merely_contain_a_colon_are_still_files(text):
    assert SourceSpec.parse(text).kind == "file"


# -- config errors never quote a camera address, wherever in the file it was put -----------------------------------
@pytest.mark.parametrize(
    "yaml_text",
    [
        'cameras:\n  - {id: gate-1, sourc: "rtsp://admin:Secret99@127.0.0.1/x"}\n',  # a misspelt key
        'cameras: "rtsp://admin:Secret99@127.0.0.1/x"\n',  # not a list
        'cameras:\n  - "rtsp://admin:Secret99@127.0.0.1/x"\n',  # a list of addresses
        "cameras:\n  - {id: gate-1, rtsp://admin:Secret99@127.0.0.1/x}\n",  # the address as a key
        'cameras:\n  - {id: "rtsp://admin:Secret99@127.0.0.1/x", source: "x.mp4"}\n',  # in the id
        'cameras:\n  - {id: gate-1, source: "x.mp4", url: "http://cam/v.mjpg?token=Secret99"}\n',
        'cameras:\n  - {id: gate-1, source: "rtsp://admin:Secret99@h/x", rtsp_transport: "rtsp://:Secret99@h"}\n',
        # a repeated id: the error quotes the whole list of cameras, sources included
        'cameras:\n  - {id: gate-1, source: "rtsp://admin:Secret99@h/x"}\n  - {id: gate-1, source: "http://h/?pw=Secret99"}\n',
    ],
)
def test_config_errors_never_quote_credentials(yaml_text, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert SECRET not in str(exc.value), str(exc.value)
    assert "cameras" in str(exc.value)  # still names the failing key


# -- credential parameters as cameras name them ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "u=admin&p=Secret99",  # Tenvis, Wansview …
        "user=admin&pw=Secret99",
        "usr=admin&psw=Secret99",
        "loginuse=admin&loginpas=Secret99",  # Foscam clones
        "User=admin&PassCode=Secret99",
    ],
)
def test_camera_style_credential_parameters_redacted(query):
    spec = SourceSpec.parse(f"http://127.0.0.1/videostream.cgi?{query}")
    assert SECRET not in spec.display and "admin" not in spec.display
    assert SECRET in spec.url_for_ffmpeg


# -- redaction never leaks by partial masking -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rtsp://admin:cam@camhost:554/x", "Connection to tcp://camhost:554?timeout=0 failed"),
        ("rtsp://admin:554@cam:554/x", "Connection to tcp://cam:554 failed: Connection refused"),
        ("rtsp://admin:live@cam/live/ch1", "method DESCRIBE failed for /live/ch1: 404 Not Found"),
    ],
)
def test_redaction_does_not_mask_inside_what_is_shown_anyway(source, message):
    """A password that is part of the host, port or path: masking it there (``tcp://***host``) would tell the
    password to anyone who reads the shown address next to the message."""
    spec = SourceSpec.parse(source)
    out = spec.redact(message)
    assert "***" not in out, out  # nothing secret in it: left whole
    assert spec.redact(f"{message} (password={spec.password})").endswith("(password=***)")  # as a credential


def test_webcam_index_is_ascii_digits():
    with pytest.raises(SourceSyntaxError):
        SourceSpec.parse("webcam:\u0663")  # ARABIC-INDIC DIGIT THREE is not device 3
    assert SourceSpec.parse("webcam:3").target == "/dev/video3"


def test_file_source_parse_error_message_for_missing_file(tmp_path: Path):
    with pytest.raises(SourceError) as exc:
        parse_source(str(tmp_path / "nope.mp4"))
    assert "video file not found" in str(exc.value)


# -- credentials hidden in other corners of a query ------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "res=hd;token=Secret99",  # ';' between parameters
        "url=rtsp://admin:Secret99@cam/x",  # an address inside a value
        "redirect=http%3A%2F%2Fadmin%3ASecret99%40cam%2F",  # … percent-encoded
        "q=admin:Secret99@cam",
        "hdnts=exp=1~acl=/*~hmac=Secret99",  # Akamai token: nested name=value pairs
        "e=1&sign=Secret99",  # signed CDN addresses
        "md5=Secret99&expires=1",  # nginx secure_link
        "ticket=Secret99",
        "token%3DSecret99",  # no '=': the name is the whole of it
    ],
)
def test_credentials_in_any_part_of_the_query_are_redacted(query):
    spec = SourceSpec.parse(f"https://127.0.0.1/live/index.m3u8?{query}")
    assert SECRET not in spec.display, spec.display
    assert spec.url_for_ffmpeg == f"https://127.0.0.1/live/index.m3u8?{query}"  # the decoder gets it as written
    message = f"Server returned 403 Forbidden: '{spec.url_for_ffmpeg}' (value=Secret99)"
    assert SECRET not in spec.redact(message)


# -- a password that is a word of the message is not given away by masking that word ---------------------------------
@pytest.mark.parametrize("word", ["open", "refused", "Connection", "stream", "camera", "check", "the", "RTSP"])
def test_a_password_that_is_a_word_of_the_message_is_not_told_by_masking_it(word):
    """What is shown must not depend on the password: the same failure with another password of the same length
    reads the same. (Before: ``cannot *** RTSP stream …`` for the password ``open``.)"""

    def reason(password: str) -> str:
        spec = SourceSpec.parse(f"rtsp://admin:{password}@127.0.0.1:1/x?token={password}")
        decoder = f"[Errno 111] Connection refused: '{spec.url_for_ffmpeg}'"
        message = f"cannot open RTSP stream {spec.display} over TCP: {spec.redact(decoder)}; check the camera"
        return spec.redact(spec.redact(message))  # redacted again by the live source and the host

    other = "Zq" + "x" * (len(word) - 2) if len(word) > 2 else "Zq"
    assert reason(word) == reason(other)
    spec = SourceSpec.parse(f"rtsp://admin:{word}@127.0.0.1:1/x")
    assert word not in spec.redact(f"auth failed for admin:{word}@127.0.0.1")  # written as a credential: masked


def test_a_file_named_like_a_mistyped_address_is_reached_with_dot_slash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rtsp:clip.mp4").write_bytes(b"x")
    with pytest.raises(SourceSyntaxError, match=r"write \./ before it"):
        SourceSpec.parse("rtsp:clip.mp4")
    assert parse_source("./rtsp:clip.mp4").kind == "file"


def test_rtsps_has_rtp_over_tcp_only():
    """FFmpeg sends RTP inside an rtsps:// TLS connection whatever transport is asked: asking for UDP would fail
    (and be reported) as UDP although TCP was tried, and auto would try the same TCP twice."""
    with pytest.raises(SourceSyntaxError, match="rtsps:// carries RTP over its TLS connection"):
        SourceSpec.parse("rtsps://cam/x", "udp")
    assert SourceSpec.parse("rtsps://cam/x").transports == ("tcp",)
    assert SourceSpec.parse("rtsps://cam/x", "tcp").transports == ("tcp",)
    assert SourceSpec.parse("rtsp://cam/x").transports == ("tcp", "udp")
    assert SourceSpec.parse("rtsp://cam/x", "udp").transports == ("udp",)
    assert SourceSpec.parse("http://cam/x").transports == ()


@pytest.mark.parametrize("name", ["a" * 300 + ".mp4", "x/" * 3000 + "v.mp4"])
def test_a_file_path_the_system_refuses_is_a_source_error_not_a_store_error(name):
    """Before: the OSError ("File name too long") reached `run` as "cannot write the store … free space"."""
    with pytest.raises(SourceError, match="cannot use the video file") as exc:
        parse_source(name)
    assert len(str(exc.value)) < 400  # the path is shortened, not printed whole


def test_a_file_in_a_folder_this_user_may_not_enter(tmp_path):
    import os

    if os.geteuid() == 0:
        locked = Path("/proc/1/root/nope.mp4")  # even root may not look into another process's root
        try:
            locked.exists()
        except PermissionError:
            pass
        else:
            pytest.skip("no folder here that this user may not enter")
    else:
        d = tmp_path / "locked"
        d.mkdir()
        d.chmod(0)
        locked = d / "v.mp4"
    with pytest.raises(SourceError, match="cannot use the video file .*Permission denied"):
        parse_source(str(locked))


@pytest.mark.parametrize(
    ("yaml_text", "said"),
    [
        ("cameras:\n  - {id: a, source: !rtsp://admin:Secret99@h/x }\n", "tag"),  # PyYAML quotes the tag
        ("cameras:\n  - {id: a, !rtsp://admin:Secret99@h/x : 1}\n", "tag"),
        # a key given twice: PyYAML would keep the last silently (a camera would run its second source)
        (
            "cameras:\n  - id: a\n    source: rtsp://admin:Secret99@h/x\n    source: rtsp://admin:Other99@h/x\n",
            "the key 'source' is given twice",
        ),
        ("cameras:\n  - id: a\n    rtsp://admin:Secret99@h/x: 1\n    rtsp://admin:Secret99@h/x: 2\n", "twice"),
    ],
)
def test_yaml_errors_never_quote_an_address(yaml_text, said, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert said in str(exc.value) and SECRET not in str(exc.value), str(exc.value)
    assert "line " in str(exc.value)


def test_orientation_message_that_lands_after_each_key_frame_holds_steadily():
    """A relay that turns a stream with FFmpeg's h264_metadata writes the message after each key frame's picture:
    the decoder gives it to the next picture. Before: every key frame came out unturned among turned frames (a
    frame of another shape every GOP, breaking tracks)."""
    from metrosight.ingest.source import Orientation
    from tests.unit.ingest.test_source_spec import _Raw

    quarter = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]
    o = Orientation()
    got = []
    for _ in range(4):  # four key-frame intervals
        for i in range(10):
            got.append(o.update(_Raw(key=i == 0) if i != 1 else _Raw(quarter)))
    assert got[0] is None  # nothing said yet
    assert all(m == (0, 1, -1, 0) for m in got[1:]), got
    # a short GOP without any message for longer than the grace: upright from then on
    for i in range(Orientation.GRACE + 5):
        last = o.update(_Raw(key=i % 5 == 0))
    assert last is None


@pytest.mark.parametrize("text", ["udp://@239.0.0.1:1234", "udp://@:5000", "rtp://@239.1.1.1:5004"])
def test_udp_receive_on_any_interface_is_not_shown_as_credentials(text):
    """FFmpeg's 'udp://@group:port' has an empty user information and nothing secret: shown as written, not as
    'udp://***@…' (which tells an operator there are credentials to look for)."""
    spec = SourceSpec.parse(text)
    assert spec.display == text and spec.url_for_ffmpeg == text and not spec.has_credentials
    assert SourceSpec.parse("rtsp://:pw@h/x").display == "rtsp://***@h/x"  # a password without a user name
    assert SourceSpec.parse("rtsp://admin@h/x").display == "rtsp://***@h/x"  # a user name alone


@pytest.mark.timeout(60)  # quadratic: ~400 s
def test_redaction_of_a_long_message_takes_linear_time():
    """A decoder message of 200 000 characters without spaces (a hostile server's reflected text): redacted
    without quadratic backtracking (before the word split, one such message took minutes)."""
    spec = SourceSpec.parse("rtsp://admin:Secret99@127.0.0.1/x")
    text = "x" * 200_000 + " Secret99@h " + "y" * 200_000
    out = spec.redact(text)
    assert SECRET not in out and len(out) < len(text)


@pytest.mark.timeout(60)
def test_parsing_a_long_query_value_takes_linear_time():
    spec = SourceSpec.parse("http://127.0.0.1/x?note=" + "a" * 200_000 + "&token=Secret99")
    assert SECRET not in spec.display and "a" * 1000 in spec.display


def test_redact_addresses_in_text_of_unknown_source():
    from metrosight.core.source import redact_addresses

    text = (
        "cannot open rtsp://admin:P@ssw0rd@127.0.0.1:8554/s1: 'http://h/v.mjpg?token=Tok3nSecret', "
        "ftp://u:FtpSecret9@h/x and rtsp://u:pa/ss@h/x."
    )
    out = redact_addresses(text)
    for secret in ("P@ssw0rd", "Tok3nSecret", "FtpSecret9", "pa/ss"):
        assert secret not in out, out
    assert "rtsp://***@127.0.0.1:8554/s1:" in out and "http://h/v.mjpg?token=***'" in out and out.endswith(".")
    assert redact_addresses("b " + "a" * 100_000 + "://x") == "b (address not shown)"  # no such scheme
