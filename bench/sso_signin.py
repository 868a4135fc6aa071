"""What a sign-in through the OpenID provider costs at the service: the real provider on loopback
(tests/oidc/provider.mjs, npm oidc-provider) and the operator service in process (SQLite).

Per sign-in, timed separately: the start (``GET /auth/oidc/login``: a new attempt, the redirect), the callback
(``GET /auth/oidc/callback``: the token request to the provider, the ID token's signature and claims checked, the
user found or made and their roles set, the session started, audited) — the provider's own sign-in page is driven in
between and not counted. First sign-ins (a user made) and repeated ones (found) are reported apart; the first
callback of the process also reads the discovery document and the JWKS (reported alone).

    python bench/sso_signin.py [--n 30] [--out bench/results/sso_signin.json]
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
    ap.add_argument("--n", type=int, default=30, help="sign-ins of each kind")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sso_signin.json")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from metrosight.api.app import ApiConfig, create_app
    from tests.integration.oidc_provider import OidcProvider, provider_sign_in
    from tests.unit.api.conftest import CAMERAS, make_runtime

    base = "http://127.0.0.1:8080"
    callback = f"{base}/auth/oidc/callback"
    users = {f"u{i}": {"password": f"pw-{i}", "claims": {"groups": ["ops"]}} for i in range(args.n)}
    with tempfile.TemporaryDirectory() as tmp:
        provider = OidcProvider(Path(tmp) / "provider", [callback], users)
        provider.start()
        try:
            mapping = [{"group": "ops", "roles": ["operator"], "camera_groups": ["red"]}]
            rt = make_runtime(Path(tmp) / "home", cameras=CAMERAS, auth={"oidc": provider.config(callback, mapping)})
            rt.store.users.add("root", ["admin"], None, None)
            app = create_app(rt, config=ApiConfig())
            times: dict[str, list[float]] = {"start": [], "callback_first": [], "callback_again": [], "cold": []}
            for rnd in ("callback_first", "callback_again"):
                for login, user in users.items():
                    browser = TestClient(app, base_url=base)
                    t0 = time.perf_counter()
                    res = browser.get("/auth/oidc/login?next=/", follow_redirects=False)
                    times["start"].append(time.perf_counter() - t0)
                    url = provider_sign_in(res.headers["location"], login, user["password"], callback)
                    t0 = time.perf_counter()
                    done = browser.get(url, follow_redirects=False)
                    dt = time.perf_counter() - t0
                    assert done.status_code == 200, done.text
                    (times["cold"] if not times["cold"] else times[rnd]).append(dt)
        finally:
            provider.stop()
    rows = {
        k: {
            "n": len(v),
            "median_ms": round(statistics.median(v) * 1000, 1),
            "p90_ms": round(sorted(v)[int(0.9 * (len(v) - 1))] * 1000, 1),
        }
        for k, v in times.items()
        if v
    }
    print(f"{'step':<16}{'n':>4}{'median ms':>12}{'p90 ms':>10}")
    for k, r in rows.items():
        print(f"{k:<16}{r['n']:>4}{r['median_ms']:>12}{r['p90_ms']:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "sso_signin", "results": rows}, indent=2))


if __name__ == "__main__":
    main()
