"""What the second factor costs at the service (SQLite, in process, no network): the code step of a sign-in
(``POST /api/login/totp`` after the password: decrypt the secret, check the code, the atomic compare-and-set of the
time step, the session started and audited), the same with a recovery code (Argon2id checks against the unused
codes), and the confirmation of an enrolment (ten recovery codes hashed). The password step is timed too, for scale.

    python bench/totp.py [--n 20] [--out bench/results/totp.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="users (each: enrolment, a code sign-in, a recovery sign-in)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "totp.json")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from metrosight.api.app import ApiConfig, create_app
    from metrosight.policy.passwords import hash_password
    from metrosight.policy.totp import code_at, current_step
    from tests.unit.api.conftest import CAMERAS, make_runtime

    password = "velvet compass harbour"
    times: dict[str, list[float]] = {"password": [], "confirm": [], "code": [], "recovery": []}
    with tempfile.TemporaryDirectory() as tmp:
        rt = make_runtime(Path(tmp) / "home", cameras=CAMERAS, api={"failed_signin_audit_seconds": 3600})
        pw_hash = hash_password(password)
        rt.store.users.add("root", ["admin"], None, pw_hash)
        root = rt.store.users.actor("root")
        for i in range(args.n):
            rt.store.users.add(f"u{i}", ["operator"], root, pw_hash)
        app = create_app(rt, config=ApiConfig(login_max_per_ip=10**6))
        for i in range(args.n):
            c = TestClient(app)
            assert c.post("/api/login", json={"username": f"u{i}", "password": password}).status_code == 200
            h = {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}
            secret = c.post("/api/me/totp", headers=h).json()["secret"]
            t0 = time.perf_counter()
            res = c.post("/api/me/totp/confirm", json={"code": code_at(secret, current_step())}, headers=h)
            times["confirm"].append(time.perf_counter() - t0)
            recovery = res.json()["recovery_codes"]
            for kind, code in (("code", code_at(secret, current_step() + 1)), ("recovery", recovery[-1])):
                s = TestClient(app)
                t0 = time.perf_counter()
                assert s.post("/api/login", json={"username": f"u{i}", "password": password}).status_code == 401
                times["password"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                assert s.post("/api/login/totp", json={"code": code}).status_code == 200
                times[kind].append(time.perf_counter() - t0)
    rows = {
        k: {
            "n": len(v),
            "median_ms": round(statistics.median(v) * 1000, 1),
            "p90_ms": round(sorted(v)[int(0.9 * (len(v) - 1))] * 1000, 1),
        }
        for k, v in times.items()
    }
    print(f"{'step':<12}{'n':>4}{'median ms':>12}{'p90 ms':>10}")
    for k, r in rows.items():
        print(f"{k:<12}{r['n']:>4}{r['median_ms']:>12}{r['p90_ms']:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "totp", "results": rows}, indent=2))


if __name__ == "__main__":
    main()
