"""benchmarks/run_all.py: one JSON file with the machine, date, commit and every benchmark's
figures. Checks the file's structure on a quick encoder-only run, never the speeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "benchmarks" / "run_all.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(RUN_ALL), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_run_all_writes_one_file_with_machine_commit_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "results" / "bench.json"
    proc = _run("--only", "encoder", "--quick", "--threads", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"wrote {out}" in proc.stdout
    report = json.loads(out.read_text())
    assert report["schema"] == 1
    assert report["date"].endswith("+00:00")  # UTC, ISO 8601
    assert len(report["git"]["commit"]) == 40
    assert isinstance(report["git"]["dirty"], bool)
    m = report["machine"]
    assert m["cores"] >= 1 and m["cpu"] and m["torch"] and m["python"]
    assert report["options"] == {"quick": True, "threads": 1}
    assert list(report["benchmarks"]) == ["encoder"]
    enc = report["benchmarks"]["encoder"]
    assert enc["returncode"] == 0 and "error" not in enc
    assert enc["command"].startswith("python benchmarks/encoder.py --threads 1")
    res = enc["result"]
    assert res["benchmark"] == "cbramod_encoder_forward"
    assert res["cpu_threads"] == 1
    shapes = {(c["batch"], c["channels"], c["patches"]) for c in res["cases"]}
    assert {(1, 19, 4), (1, 32, 4), (1, 2, 4)} <= shapes
    for c in res["cases"]:
        assert c["ours_ms"] > 0 and c["reference_ms"] > 0
        assert c["speedup"] == pytest.approx(c["reference_ms"] / c["ours_ms"], rel=0.05)
        assert 0 <= c["max_rel_diff"] < 1e-5  # the fast path agrees with the official layout
    assert not out.with_suffix(".json.tmp").exists()


def test_run_all_refuses_unknown_benchmarks(tmp_path: Path) -> None:
    proc = _run("--only", "encoderr", "--out", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert "unknown benchmark(s) ['encoderr']" in proc.stderr
    assert not (tmp_path / "x.json").exists()
