"""Crash points (adapters/crashpoints.py) in real processes: a planned point kills the
process with SIGKILL once, ever; "@n" picks the n-th reach, counted across processes;
an adapter's point names the message the relay is delivering."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from types import SimpleNamespace
from adapters.crashpoints import crashpoint, delivering

message = SimpleNamespace(kind="email.send", deal_id=7)
for n in range(3):
    if sys.argv[1] == "adapter":
        with delivering(message):
            crashpoint("smtp.accepted")
        crashpoint("smtp.accepted")  # outside a delivery: names nothing, never fires
    else:
        crashpoint("deliver.before", message)
    print(n + 1, flush=True)
"""


def run(folder: Path, mode: str = "relay") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                          env={"CLOSELOOP_CRASHPOINTS": str(folder), "PATH": "/usr/bin:/bin"},
                          cwd=Path(__file__).resolve().parents[1])


def test_a_point_fires_once_at_its_first_reach(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(["deliver.before:email.send:7"]))
    first = run(tmp_path)
    assert first.returncode == -signal.SIGKILL and first.stdout == ""
    again = run(tmp_path)  # the run after the crash: fired already
    assert again.returncode == 0 and again.stdout.split() == ["1", "2", "3"]


def test_at_n_fires_at_the_nth_reach_counted_across_processes(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(["deliver.before:email.send:7@2"]))
    first = run(tmp_path)
    assert first.returncode == -signal.SIGKILL and first.stdout.split() == ["1"]
    again = run(tmp_path)
    assert again.returncode == 0 and again.stdout.split() == ["1", "2", "3"]
    assert sorted(p.name for p in (tmp_path / "fired").iterdir()) == ["deliver.before:email.send:7@2"]


def test_an_adapters_point_names_the_message_being_delivered(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(["smtp.accepted:email.send:7@3"]))
    first = run(tmp_path, "adapter")
    assert first.returncode == -signal.SIGKILL and first.stdout.split() == ["1", "2"]


def test_a_point_not_in_the_plan_never_fires(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(["deliver.before:email.send:8", "deliver.after:email.send:7@1"]))
    assert run(tmp_path).stdout.split() == ["1", "2", "3"]
    assert not (tmp_path / "fired").exists()
