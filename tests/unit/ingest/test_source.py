import pytest

from metrosight.ingest.images import ImageError, load_image
from metrosight.ingest.source import SourceError, SourceSpec, VideoSource, parse_source


def test_parse_kinds(tmp_path):
    f = tmp_path / "v.mp4"
    f.write_bytes(b"x")
    assert parse_source(str(f)).kind == "file"
    assert parse_source("rtsp://10.0.0.1/stream").kind == "rtsp"
    assert parse_source("webcam:2") == SourceSpec("webcam", "/dev/video2")


@pytest.mark.parametrize(
    ("text", "msg"),
    [("", "empty source"), ("webcam:x", "bad webcam source"), ("/no/such/file.mp4", "video file not found")],
)
def test_parse_errors(text, msg):
    with pytest.raises(SourceError, match=msg):
        parse_source(text)


def test_non_video_file_is_refused(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("hello, I am not a video")
    with pytest.raises(SourceError, match="cannot open video file"):
        list(VideoSource(parse_source(str(f))).frames())


def test_images_errors(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "none.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("plain text")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_camera_passwords_never_reach_messages():
    from metrosight.ingest.factory import live_source
    from metrosight.ingest.source import open_container

    spec = SourceSpec.parse("rtsp://admin:hunter2@127.0.0.1:1/cam")
    assert spec.display == "rtsp://***@127.0.0.1:1/cam" and spec.url_for_ffmpeg.endswith("hunter2@127.0.0.1:1/cam")
    with pytest.raises(SourceError) as err:
        open_container(spec, open_timeout=2.0)
    assert "hunter2" not in str(err.value) and "rtsp://***@127.0.0.1:1/cam" in str(err.value)
    assert "over TCP" in str(err.value)  # the transport tried is named

    from metrosight.config.model import IngestConfig

    cfg = IngestConfig(reconnect_initial_seconds=0.01, reconnect_max_seconds=0.02, down_after_attempts=2)
    src = live_source(spec, "cam-p", cfg, keep_trying=False)
    seen = []
    with pytest.raises(SourceError) as err:
        list(src.frames(on_state=seen.append))
    assert seen and all("hunter2" not in c.reason for c in seen)
    assert "hunter2" not in str(err.value)
