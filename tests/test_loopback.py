"""The servers a user starts listen on the loopback address only: a sweep's local Ray cluster (every
process of it), and the commands symda prints for TensorBoard and optuna-dashboard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# In a session of its own: start the local cluster as a sweep does (symda.sweeps.driver.connect), run a
# task, then list every TCP socket that a process of this session listens on (from /proc: the socket
# inodes of each process's open files, matched against /proc/net/tcp and tcp6).
PROBE = textwrap.dedent("""
    import json, os, socket, struct
    from pathlib import Path
    import ray
    from symda.sweeps.driver import connect

    connect(None)
    ray.get(ray.remote(lambda: 1).remote())

    def listening():
        out = {}
        for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                f = line.split()
                if f[3] != "0A":  # LISTEN
                    continue
                addr, port = f[1].split(":")
                raw = bytes.fromhex(addr)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # per-word byte order
                out[f[9]] = (socket.inet_ntop(family, raw), int(port, 16))
        return out

    sockets, sid, found = listening(), os.getsid(0), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getsid(int(proc.name)) != sid:
                continue
            name = (proc / "comm").read_text().strip()
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in sockets:
                    found.append([*sockets[target[8:-1]], name])
        except OSError:
            continue
    print("SOCKETS " + json.dumps(found))
    ray.shutdown()
""")
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="lists sockets through Linux's /proc")
def test_a_sweeps_local_ray_cluster_listens_on_loopback_only():
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=repo, capture_output=True, text=True, timeout=180,
                         start_new_session=True, env={**_env(), "PYTHONPATH": str(repo)})  # fmt: skip
    line = next((x for x in run.stdout.splitlines() if x.startswith("SOCKETS ")), None)
    assert line, run.stdout[-2000:] + run.stderr[-3000:]
    sockets = json.loads(line.removeprefix("SOCKETS "))
    names = {name for _, _, name in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the cluster's own servers were seen
    beyond = [s for s in sockets if s[0] not in LOOPBACK]
    assert not beyond, f"listening beyond the loopback address: {beyond}"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
