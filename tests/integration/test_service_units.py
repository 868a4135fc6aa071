"""The shipped systemd units: `systemd-analyze verify` passes, the sandbox keys are there, and `serve` started from
its unit's ExecStart line under the unit's file-system sandbox writes its home and nothing else.

systemd is not PID 1 here (a container), so the unit cannot be started by systemd itself; the sandbox test
reproduces the unit's file-system settings with a private mount namespace (util-linux `unshare`, as root):
ProtectSystem=strict (every mount read-only but /dev, /proc, /sys), ReadWritePaths (the home bound writable),
PrivateTmp (a fresh tmpfs on /tmp and /var/tmp) and NoNewPrivileges (`setpriv --no-new-privs`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources
from pathlib import Path

import pytest

import metrosight
from tests.conftest import missing_system

UNITS = Path(str(resources.files("metrosight") / "deploy" / "systemd"))
NAMES = (
    "metrosight-serve.service",
    "metrosight-node.service",
    "metrosight-worker@.service",
    "metrosight-consume.service",
)
HOME = "/var/lib/metrosight"
BIN = "/opt/metrosight/bin/metrosight"


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file, each key with all its values (systemd allows repeated keys)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def _metrosight_bin() -> str:
    found = Path(sys.executable).with_name("metrosight")
    return str(found) if found.is_file() else shutil.which("metrosight") or ""


@pytest.mark.parametrize("name", NAMES)
def test_unit_has_the_sandbox_restart_and_journal_settings(name: str) -> None:
    svc = _unit(name)["Service"]
    one = {k: v[-1] for k, v in svc.items()}
    assert one["User"] == "metrosight" and one["Group"] == "metrosight"
    assert one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] == "strict"
    assert one["PrivateTmp"] == "yes"
    assert one["ProtectHome"] == "yes"
    assert svc["ReadWritePaths"] == [HOME]  # the home and nothing else
    assert one["Environment"] == f"METROSIGHT_HOME={HOME}"
    assert one["UMask"] == "0077" and one["StateDirectoryMode"] == "0700"
    assert one["Restart"] == "on-failure" and one["RestartSec"]
    assert one["StandardOutput"] == "journal" and one["StandardError"] == "journal"
    assert one["CapabilityBoundingSet"] == ""
    verb = name.split("-", 1)[1].split("@")[0].split(".")[0]
    assert one["ExecStart"].startswith(f"{BIN} {verb} ")
    assert "WantedBy" in _unit(name)["Install"]
    assert "://" not in one["ExecStart"] and "${" not in one["ExecStart"]  # no URL (password) on the command line
    # sysusers entry for the dedicated user
    assert "u metrosight - " in (UNITS / "metrosight.sysusers").read_text()


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        missing_system("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
    exe = _metrosight_bin()
    assert exe, "the metrosight entry point is not installed next to this Python"
    paths = []
    for name in NAMES:
        # verify checks that ExecStart's program exists: point it at this installation's entry point; a template is
        # verified as one instance
        text = (UNITS / name).read_text().replace(BIN, exe)
        target = tmp_path / name.replace("@.", "@1.")
        target.write_text(text)
        paths.append(str(target))
    proc = subprocess.run([analyze, "verify", *paths], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
    sec = subprocess.run(
        [analyze, "security", "--offline=yes", paths[0]], capture_output=True, text=True, check=False, timeout=120
    )
    if sec.returncode == 0:  # systemd >= 252; exposure 0 (locked down) … 10 (unprotected)
        level = float(sec.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
        assert level <= 4.0, sec.stdout[-500:]


_SANDBOX = r"""
set -eu
mount --make-rprivate /
mount --bind "$HOME_DIR" "$HOME_DIR"
# ProtectSystem=strict: every mount read-only, except /dev, /proc, /sys and the ReadWritePaths
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do
  case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$HOME_DIR") continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
# PrivateTmp
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
# probes as root (permissions do not stop root: only the read-only mounts can) and, for the home, as the user
probe() { if (: > "$1") 2>/dev/null; then echo "writable $1"; rm -f "$1"; else echo "refused $1"; fi; }
if setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups sh -c ": > '$HOME_DIR/user-probe'" 2>/dev/null; then
  echo "user-writable $HOME_DIR"; rm -f "$HOME_DIR/user-probe"
fi
probe "$HOME_DIR/probe"
probe /etc/metrosight-probe
probe "$OUTSIDE/probe"
probe /tmp/probe
ls -A /tmp | head -3 | sed 's/^/tmp-entry /'
# User=/Group= (an unprivileged account, as the unit's dedicated user would be) and NoNewPrivileges=
exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --no-new-privs "$@"
"""


def _service_uid(exe: str) -> int:
    """The unprivileged user (nobody) when it can run this installation's interpreter as this test does, else root.

    The unit runs as its own user from /opt (README); a test venv whose interpreter lives under /root (pyenv) cannot
    be run by another user (nor under ProtectHome=, which hides /root), so there the sandbox is checked as root,
    which only the read-only mounts stop.
    """
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "import sys, metrosight; print(tuple(sys.version_info[:3]))"],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    return 65534 if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:3])) else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_runs_from_its_unit_with_only_its_home_writable(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        missing_system("needs root and util-linux unshare/setpriv to build the unit's mount namespace")
    exe = _metrosight_bin()
    assert exe
    hidden = [
        p
        for p in (exe, metrosight.__file__ or "")
        if Path(p).resolve().is_relative_to(Path("/tmp").resolve())
        or Path(p).resolve().is_relative_to(Path("/var/tmp").resolve())
    ]
    if hidden:  # PrivateTmp= hides /tmp from the service: a real unit cannot run a program installed there either
        pytest.skip(f"metrosight is installed under a temporary folder ({hidden[0]}), which PrivateTmp hides")
    exec_start = _unit("metrosight-serve.service")["Service"]["ExecStart"][-1].split()
    assert exec_start[0] == BIN
    home = Path(tempfile.mkdtemp(prefix="metrosight-unit-", dir="/var/lib"))  # outside /tmp, which the sandbox hides
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "marker").write_text("host /tmp")
    port = _free_port()
    cfg = home / "config.yaml"  # stands for /etc/metrosight/config.yaml
    cfg.write_text("deployment: {timezone: UTC}\n")
    cfg.chmod(0o644)  # readable by the service user whatever this process's umask (metrosight sets 0077)
    args = [exe, *exec_start[1:]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--config") + 1] = str(cfg)
    uid = _service_uid(exe)
    os.chown(home, uid, uid)  # the service user (here: nobody) owns the home, as StateDirectory= makes it
    os.chmod(outside, 0o777)  # writable to that user but for the sandbox: the read-only mount must refuse it
    env = {
        **os.environ,
        "METROSIGHT_HOME": str(home),
        "HOME_DIR": str(home),
        "OUTSIDE": str(outside),
        "RUN_UID": str(uid),
        "RUN_GID": str(uid),
    }
    env.pop("METROSIGHT_MASTER_KEY", None)
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", _SANDBOX, "sandbox", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    ok = r.status == 200
                    break
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    try:
        assert ok, f"serve did not answer /healthz: {out[-3000:]}"
        assert f"writable {home}/probe" in out and f"user-writable {home}" in out, out
        assert "refused /etc/metrosight-probe" in out, out
        assert f"refused {outside}/probe" in out, out
        assert "writable /tmp/probe" in out and "tmp-entry" not in out, out  # a private, empty /tmp
        # SIGTERM: uvicorn shuts down, then re-raises the signal (exit by SIGTERM, not a crash)
        assert proc.returncode in (0, -15), out[-3000:]
        db = home / "metrosight.db"
        assert db.is_file(), sorted(p.name for p in home.iterdir())
        assert db.stat().st_uid == uid and db.stat().st_mode & 0o077 == 0  # written by the service user, 0600
        assert not list(outside.iterdir())
        assert "Traceback" not in out, out[-3000:]
    finally:
        shutil.rmtree(home, ignore_errors=True)
