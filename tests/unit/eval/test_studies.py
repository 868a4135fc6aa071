"""The evaluation studies run without the command line: options in, report and figures out (fake encoders and
detectors stand in for the models; the real ones are exercised by tests/integration/test_eval.py)."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Box, Detection
from metrosight.eval import calibrate_study, identify_study, verify_study
from metrosight.eval.calibrate_study import CalibrateOptions, operating_table, run_calibrate
from metrosight.eval.detect_study import DetectOptions, run_detect
from metrosight.eval.extract import FaceRecord
from metrosight.eval.identify_study import IdentifyOptions, run_identify, splits_for
from metrosight.eval.study import report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO
from metrosight.eval.verify_study import VerifyOptions, run_verify
from metrosight.eval.video import Appearance, VideoResult
from metrosight.eval.video_study import gallery_entries, summary_table
from metrosight.services.calibration import load_nonmated


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _person_vector(label: str) -> np.ndarray:
    seed = int(hashlib.sha256(label.encode()).hexdigest()[:8], 16)
    return _unit(np.random.default_rng(seed).normal(size=128))


class FakeEncoder:
    """Each person's photos give descriptors close to that person's own random direction."""

    name = "fake"
    tag = ""
    flip = True
    embedder = SimpleNamespace(model_id="fake-model")

    def encode(self, image: np.ndarray, path: Path, label: str) -> FaceRecord:
        seed = int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16)
        d = _unit(_person_vector(label) + 0.02 * np.random.default_rng(seed).normal(size=128))
        return FaceRecord(path, label, d, d.copy(), 1.0)


class Recorder:
    """A StudyIO that keeps what the study printed and every progress bar it started."""

    def __init__(self) -> None:
        self.said: list[str | ConsoleTable] = []
        self.bars: list[str] = []

    @contextmanager
    def meter(self, label: str, total: float | None = None):
        self.bars.append(label)

        class Tick:
            def advance(self, n: float = 1) -> None:
                return None

            def to(self, completed: float) -> None:
                return None

        yield Tick()

    def io(self) -> StudyIO:
        return StudyIO(meter=self.meter, say=self.said.append)


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)  # distinct content each
    Image.fromarray(pixels).save(path)
    return path


def _people(root: Path, counts: dict[str, int]) -> Path:
    seed = 0
    for person, n in counts.items():
        for i in range(n):
            seed += 1
            _photo(root / person / f"{person}_{i + 1:04d}.png", seed)
    return root


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


@pytest.fixture()
def fake_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (identify_study, verify_study, calibrate_study):
        monkeypatch.setattr(module, "metrosight_encoder", lambda *_a, **_k: FakeEncoder())


def test_a_report_name_stays_in_its_folder() -> None:
    for bad in ("../x", "/tmp/x", ".hidden"):
        with pytest.raises(EvalError):
            report_stem("verify", bad)
    assert report_stem("verify", "lfw fold 1") == "lfw fold 1"
    assert report_stem("detect", None).startswith("detect-")


def test_identify_needs_one_data_layout(tmp_path: Path) -> None:
    data = _people(tmp_path / "data", {"a": 3})
    with pytest.raises(EvalError, match="either --data"):
        splits_for(IdentifyOptions(data=data, gallery=data))
    with pytest.raises(EvalError, match="give --data DIR"):
        splits_for(IdentifyOptions(gallery=data))
    with pytest.raises(EvalError, match="not a folder"):
        splits_for(IdentifyOptions(data=tmp_path / "missing"))


def test_identify_measures_every_method_and_writes_the_report(tmp_path: Path, home: Home, fake_encoder: None) -> None:
    enrolled = {f"p{i}": 4 for i in range(6)}
    strangers = {f"s{i}": 1 for i in range(16)}  # one photo: never enrolled, always non-mated
    data = _people(tmp_path / "data", enrolled | strangers)
    rec = Recorder()
    opts = IdentifyOptions(data=data, baseline=False, out_dir=tmp_path / "out", name="ids", command="metrosight x")
    res = run_identify(opts, Settings(), home, rec.io())

    ours = res.results["1 photo(s) per person"]
    margin = Settings().recognition.min_margin
    assert list(ours)[:2] == ["metrosight cosine", "metrosight cosine + flips"]
    assert list(ours)[2].startswith(f"metrosight cosine + flips + former margin rule {margin:g}")
    cosine = ours["metrosight cosine"]
    assert cosine["n_gallery"] == 6 and cosine["n_mated"] == 18 and cosine["n_non_mated"] == 16
    assert cosine["rank1"] == 1.0 and cosine["mated_fta"] == 0
    assert res.written.html == tmp_path / "out" / "ids.html"
    saved = json.loads(res.written.json.read_text())
    assert saved["data"]["identification"]["1 photo(s) per person"]["metrosight cosine"]["rank1"] == 1.0
    assert (tmp_path / "out" / "ids-det-k1.png").is_file()
    assert rec.bars == ["metrosight: encode"]
    table = rec.said[0]
    assert isinstance(table, ConsoleTable) and [r[1] for r in table.rows] == list(ours)
    assert rec.said[1] == res.written.lines()


def _pairs_file(tmp_path: Path) -> tuple[Path, Path]:
    images = _people(tmp_path / "lfw", {f"p{i}": 2 for i in range(6)})
    for p in images.rglob("*.png"):
        p.rename(p.with_suffix(".jpg"))  # LFW names its photos NAME_NNNN.jpg (the content decides the format)
    lines = ["1 6"] + [f"p{i} 1 2" for i in range(6)] + [f"p{i} 1 p{(i + 1) % 6} 2" for i in range(6)]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return images, pairs


def test_verify_scores_the_pairs_with_cross_validated_thresholds(
    tmp_path: Path, home: Home, fake_encoder: None
) -> None:
    images, pairs = _pairs_file(tmp_path)
    rec = Recorder()
    opts = VerifyOptions(images, pairs, baseline=False, folds=3, out_dir=tmp_path / "out", name="v")
    res = run_verify(opts, Settings(), home, rec.io())
    v = res.results["metrosight cosine"]
    assert v["accuracy"] == 1.0 and len(v["fold_accuracies"]) == 3 and v["failed_pairs"] == 0
    assert res.written.json.is_file()
    assert rec.said[1] == "* unresolved: fewer impostor pairs than 1/FAR"


def test_verify_refuses_a_missing_pairs_file(tmp_path: Path, home: Home) -> None:
    with pytest.raises(EvalError, match="pairs file not found"):
        run_verify(VerifyOptions(tmp_path, tmp_path / "nope.txt"), Settings(), home, StudyIO())


class BoxDetector:
    """Finds exactly the annotated face of the detect test's images."""

    name = "box"
    scales_input = False  # give it frames downscaled to detection.max_width

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(Box(4, 4, 20, 20), 0.9)]


def test_detect_finds_recall_against_the_annotations(tmp_path: Path, home: Home) -> None:
    photos = [_photo(tmp_path / "gt" / f"{i}.png", i) for i in range(3)]
    boxes = "".join(f"<image file='{p.name}'><box top='4' left='4' width='16' height='16'/></image>" for p in photos)
    xml = tmp_path / "gt" / "faces.xml"
    xml.write_text(f"<dataset><images>{boxes}</images></dataset>")
    rec = Recorder()
    opts = DetectOptions(dlib_xml=(xml,), detectors=("box",), out_dir=tmp_path / "out", name="d")
    res = run_detect(opts, Settings(), home, rec.io(), make=lambda _kind: BoxDetector())
    d = res.results["dlib faces.xml"]["box"]
    assert d["images"] == 3 and d["faces"] == 3 and d["at_iou"]["0.4"]["recall"] == 1.0
    assert d["at_iou"]["0.4"]["fp"] == 0
    assert rec.bars == ["box on dlib faces.xml"]
    with pytest.raises(EvalError, match="give --fddb"):
        run_detect(DetectOptions(), Settings(), home, StudyIO(), make=lambda _kind: BoxDetector())


class FakeInstallation:
    def __init__(self, templates: list[np.ndarray]) -> None:
        self.templates = templates
        self.asked: list[float | None] = []

    def operating_status(self, searches_per_day: float | None) -> dict[str, object]:
        self.asked.append(searches_per_day)
        return {
            "target_fpir": 0.01,
            "fpir_per_search": 0.01,
            "persons": len(self.templates),
            "threshold": 0.9,
            "scoring": "cosine",
            "method": "floor",
            "impostor_pairs": 10,
            "fmr_target": None,
            "fpir_resolution": 0.1,
            "floor": 0.9,
            "lists": {"wanted": {"target_fpir": 0.01, "threshold": None}},
            "searches_per_day": searches_per_day,
            "expected_false_candidates_per_day": 0.01 * (searches_per_day or 0),
        }

    def active_templates(self) -> list[np.ndarray]:
        return self.templates


def test_calibrate_without_traffic_shows_the_operating_point(home: Home) -> None:
    inst = FakeInstallation([])
    rec = Recorder()
    res = run_calibrate(CalibrateOptions(searches_per_day=1000.0), Settings(), home, inst, rec.io())
    assert res.calibration is None and inst.asked == [1000.0]
    table = rec.said[0]
    assert isinstance(table, ConsoleTable) and table.title == "operating point in force"
    assert ["expected false candidates a day", "10.00 (FPIR 0.01 x 1,000 searches)"] in table.rows
    assert operating_table(inst.operating_status(None)).rows[-2][1].startswith("unknown")


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (CalibrateOptions(searches_per_day=-1.0), "--searches-per-day must be 0 or more"),
        (CalibrateOptions(gallery=Path("g")), "need --non-mated"),
        (CalibrateOptions(write_config=Path("c.yaml")), "need --non-mated"),
    ],
)
def test_calibrate_refuses_options_that_do_not_fit(home: Home, opts: CalibrateOptions, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        run_calibrate(opts, Settings(), home, FakeInstallation([]), StudyIO())


def test_calibrate_chooses_a_threshold_from_non_mated_faces_and_writes_it(
    tmp_path: Path, home: Home, fake_encoder: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = [_person_vector(f"enrolled {i}") for i in range(5)]
    strangers = np.stack([_person_vector(f"stranger {i}") for i in range(300)])
    monkeypatch.setattr(calibrate_study, "faces_of_photos", lambda photos, enc, on_progress=None: (strangers, None, 0))
    traffic = tmp_path / "traffic"
    _photo(traffic / "a.png", 1)
    config = tmp_path / "site.yaml"
    config.write_text("# site config\nrecognition:\n  min_samples: 3  # keep\n")
    rec = Recorder()
    opts = CalibrateOptions(non_mated=(traffic,), config=config, out_dir=tmp_path / "out")
    res = run_calibrate(opts, Settings(), home, FakeInstallation(templates), rec.io())

    cal = res.calibration
    assert cal is not None and cal.n_faces == 300 and cal.n_templates == 5 and cal.scoring == "cosine"
    assert cal.threshold >= Settings().recognition.match_threshold  # calibration only tightens
    written = res.config_values["match_threshold"]
    assert isinstance(written, float) and written >= cal.threshold
    text = config.read_text()
    assert "min_samples: 3  # keep" in text and "match_threshold" in text
    assert res.written is not None and res.written.json.is_file()
    assert res.operating_point is not None  # the active gallery's operating point is reported too
    assert load_nonmated(home.root, "fake-model") is not None  # kept (descriptors only) for the live threshold
    assert rec.said[-1] == f"wrote recognition.match_threshold={res.config_values['match_threshold']} to {config}"


def test_calibrate_needs_templates(tmp_path: Path, home: Home, fake_encoder: None) -> None:
    traffic = tmp_path / "traffic"
    _photo(traffic / "a.png", 1)
    with pytest.raises(EvalError, match="no templates to calibrate against"):
        run_calibrate(CalibrateOptions(non_mated=(traffic,)), Settings(), home, FakeInstallation([]), StudyIO())


def test_the_video_gallery_fuses_each_persons_usable_photos(tmp_path: Path) -> None:
    a1, a2, b1 = (tmp_path / n for n in ("a1.png", "a2.png", "b1.png"))
    va, vb = _person_vector("ada"), _person_vector("bob")
    records = [
        FaceRecord(a1, "ada_lovelace", va, va.copy(), 1.0),
        FaceRecord(a2, "ada_lovelace", None, problem="no usable face"),
        FaceRecord(b1, "bob", vb, vb.copy(), 1.0),
    ]
    people = {"ada_lovelace": [a1, a2], "bob": [b1], "carol": [tmp_path / "c1.png"]}
    entries = gallery_entries(people, records, flip=True)
    assert [(e.subject_id, e.subject_name) for e in entries] == [(1, "ada lovelace"), (2, "bob")]  # carol: no photo
    assert float(np.dot(entries[0].template.ravel(), va)) > 0.99


def test_the_video_summary_counts_true_and_false_alerts() -> None:
    res = VideoResult(
        frames=10,
        tracks=3,
        decided=2,
        alerts=[(1, "ada", 0.0, 1.0, 0.9, True), (2, "bob", 2.0, 3.0, 0.8, False)],
        appearances=[(Appearance("ada", 0.0, 1.0), True), (Appearance("bob", 5.0, 6.0), False)],
        threshold=0.75,
    )
    table = summary_table(res, "cosine")
    assert table.rows == [["2", "1", "1", "1/2"]]
    assert table.title == "per-track evaluation (cosine threshold 0.75)"
