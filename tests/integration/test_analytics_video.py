"""Must-shows 2 and 3 of the behaviour analytics on real video, through the real CLI (`run --analytics-only`).

The intel one-by-one video's ground truth was annotated by eye (tests/data/intel_one_by_one_truth.json): each of
the six people who walk up and stand at the table must give exactly one loitering event whose start and duration
are within 2 s of the annotated arrival and stay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrosight.store.repo import Store
from tests.conftest import require_data
from tests.integration.helpers import cli, json_lines

pytestmark = pytest.mark.integration

TRUTH = Path(__file__).resolve().parents[1] / "data" / "intel_one_by_one_truth.json"


def _config(tmp_path: Path, camera: str, zones: list, loitering: float, **more: object) -> Path:
    import yaml

    cfg = {"analytics": {"loitering_seconds": loitering, "cameras": {camera: {"zones": zones, **more}}}}
    path = tmp_path / "analytics.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_one_loitering_event_per_person_at_the_table(tmp_path, home):
    truth = json.loads(TRUTH.read_text())
    video = require_data(*truth["video"].split("/"))
    cfg = _config(tmp_path, "intel", [{"name": "table", "polygon": truth["table_zone"]}], loitering=5.0)
    code, out, err = cli(
        home, "run", "--source", video, "--camera", "intel", "--config", cfg, "--analytics-only", "--json"
    )
    assert code == 0, err
    lines = json_lines(out)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["frames"] > 1300 and summary["faces"] == 0
    stored = [e for e in Store.for_home(home).events.all() if e.kind == "loitering"]
    people = truth["people"]
    assert len(stored) == len(people), [(e.start_ts, e.end_ts) for e in stored]
    for ev, person in zip(sorted(stored, key=lambda e: e.start_ts), people, strict=True):
        stay = person["leaves"] - person["arrives"]
        assert abs(ev.start_ts - person["arrives"]) <= 2.0, (person["who"], ev.start_ts, person["arrives"])
        assert ev.end_ts is not None and abs(ev.data["duration_s"] - stay) <= 2.0, (person["who"], ev.data, stay)
        assert ev.data["zone"] == "table" and ev.snapshot_path and Path(ev.snapshot_path).is_file()
    assert len({e.track_id for e in stored}) == len(people)
    printed = [x for x in lines if x.get("type") == "event"]
    assert len(printed) == len(people) and all(x["kind"] == "loitering" for x in printed)


@pytest.mark.parametrize(
    ("parts", "min_tracks"),
    [(("people_counter_clips", "example_01.mp4"), 1), (("mot20_clip", "MOT20-05-raw_even_shorter.mp4"), 1)],
)
def test_tracking_runs_on_crowd_clips(parts, min_tracks, home):
    video = require_data(*parts)
    code, out, err = cli(home, "run", "--source", video, "--camera", "clip", "--analytics-only", "--json")
    assert code == 0, err
    summary = json_lines(out)[-1]
    assert summary["status"] == "finished" and summary["frames"] > 30
    assert summary["analytics"]["person_tracks"] >= min_tracks


@pytest.mark.slow
def test_occupancy_alarm_once_per_person_at_the_table(tmp_path, home):
    # crowd-safety occupancy alarm on real video: the table zone may hold nobody (max 0) for 3 s; each of the six
    # people who stand there (one at a time) raises it once, cleared when they leave, against the by-eye truth
    truth = json.loads(TRUTH.read_text())
    video = require_data(*truth["video"].split("/"))
    alarm = {"zone": "table", "max_people": 0, "seconds": 3, "clear_seconds": 5}
    zones = [{"name": "table", "polygon": truth["table_zone"]}]
    cfg = _config(tmp_path, "intel", zones, loitering=1000.0, occupancy_alarms=[alarm])
    code, out, err = cli(home, "run", "--source", video, "--camera", "intel", "--config", cfg, "--analytics-only")
    assert code == 0, err
    stored = sorted(Store.for_home(home).events.all(), key=lambda e: e.start_ts)
    people = truth["people"]
    assert [e.kind for e in stored] == ["occupancy"] * len(people), [(e.kind, e.start_ts) for e in stored]
    for ev, person in zip(stored, people, strict=True):
        assert abs(ev.start_ts - person["arrives"]) <= 2.0, (person["who"], ev.start_ts, person["arrives"])
        assert ev.end_ts is not None and abs(ev.end_ts - person["leaves"]) <= 2.0, (person["who"], ev.end_ts)
        assert ev.track_id is None and ev.data["alarm"] == "table" and ev.data["peak"] == 1
        assert ev.snapshot_path and Path(ev.snapshot_path).is_file()
    assert out.count("EVENT intel occupancy crowd") == len(people)
