import pytest

from metrosight.ingest.images import ImageError, load_image
from metrosight.ingest.source import SourceError, SourceSpec, VideoSource


def test_parse_kinds(tmp_path):
    f = tmp_path / "v.mp4"
    f.write_bytes(b"x")
    assert SourceSpec.parse(str(f)).kind == "file"
    assert SourceSpec.parse("rtsp://10.0.0.1/stream").kind == "rtsp"
    assert SourceSpec.parse("webcam:2") == SourceSpec("webcam", "/dev/video2")


@pytest.mark.parametrize(
    ("text", "msg"),
    [("", "empty source"), ("webcam:x", "bad webcam source"), ("/no/such/file.mp4", "video file not found")],
)
def test_parse_errors(text, msg):
    with pytest.raises(SourceError, match=msg):
        SourceSpec.parse(text)


def test_non_video_file_is_refused(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("hello, I am not a video")
    with pytest.raises(SourceError, match="cannot open video file"):
        list(VideoSource(SourceSpec.parse(str(f))).frames())


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
