"""A wheel built from the tree carries every subpackage and the package data, and works outside the checkout."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    # Built from a copy without build artefacts: a stale build/ folder would hide a package the config misses.
    src = tmp_path / "src"
    anywhere = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")

    def ignore(folder, names):
        top = {".git", ".venv", "build", "runs", "benchmarks"} if Path(folder) == ROOT else set()
        return top | set(anywhere(folder, names))

    shutil.copytree(ROOT, src, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
          str(src)])
    (wheel,) = (tmp_path / "dist").glob("prefrl-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py, bin_dir = venv / "bin" / "python", venv / "bin"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The project's dependencies come from its own venv, appended after the new venv's site-packages (a plain path in
    # a .pth file: the editable install's finder there is not activated, so only the wheel provides prefrl).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)])
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    env.pop("PYTHONPATH", None)
    where = _run([str(py), "-c", "import prefrl, prefrl.llm, prefrl_envs, prefrl.human.server as s; "
                                 "print(prefrl.__file__); print(prefrl_envs.__file__); print(len(s.PAGE))"],
                 cwd=tmp_path, env=env).stdout.split()
    assert where[0].startswith(str(site)) and where[1].startswith(str(site)), where  # not the checkout
    assert int(where[2]) > 1000  # the labelling page shipped as package data
    assert "usage: prefrl" in _run([str(bin_dir / "prefrl"), "--help"], cwd=tmp_path, env=env).stdout
    assert "make-task" in _run([str(bin_dir / "prefrl"), "llm", "--help"], cwd=tmp_path, env=env).stdout
    out = _run([str(bin_dir / "prefrl"), "train", "--env", "prefrl/PointMass-v0", "--steps", "2e3", "--labels", "10",
                "--segment-len", "10", "--evals", "1", "--eval-episodes", "1", "--out", str(tmp_path / "run"),
                "--no-progress"], cwd=tmp_path, env=env).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["env"] == "prefrl/PointMass-v0" and summary["labels"] == 10
    assert (tmp_path / "run" / "metrics.json").is_file()
