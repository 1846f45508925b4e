"""benchmarks/label_noise_profile.py: how well a run's held-out labels determine its learned label-noise floor."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import label_noise_profile as lnp  # noqa: E402
from benchmarks import mujoco_sweep as sweep  # noqa: E402

ENV = "prefrl/PointMassFall-v0"


def test_each_runs_final_estimate_is_recomputed_from_its_held_out_pairs(tmp_path, capsys):
    results, runs = tmp_path / "results", tmp_path / "runs"
    assert sweep.main(["--envs", ENV, "--labels", "40", "--teachers", "mistake0.3", "--label-noise", "fit",
                       "--steps", "3000", "--segment-len", "20", "--seeds", "0", "--workers", "1",
                       "--results-dir", str(results), "--runs-dir", str(runs)]) == 0
    assert lnp.main(["--results-dir", str(results), "--runs-dir", str(runs), "--name", "lnp_test"]) == 0
    summary = json.loads((results / "lnp_test.json").read_text())
    assert summary["command"] == "python benchmarks/label_noise_profile.py --name lnp_test"
    (row,) = summary["runs"]
    state = json.loads((runs / row["run_id"] / "pref_state.json").read_text())
    # the trainer's own last estimate, from the same held-out pairs and the same final reward
    assert row["fits"] == [f["label_noise"] for f in state["fit_reports"]]
    assert row["estimate"] == pytest.approx(row["fits"][-1], abs=1e-6)
    assert 0 < row["held_out"] < row["labels"] == 40 and row["teacher"] == "mistake0.3"
    assert max(row["profile"]) == 0.0 and row["interval95"][0] <= row["estimate"] + 0.02
    assert row["estimate"] - 0.02 <= row["interval95"][1]
    assert "| env | teacher | labels | seed | held out |" in (results / "lnp_test.md").read_text()
    capsys.readouterr()

    assert lnp.main(["--runs", "nothing*", "--results-dir", str(results), "--runs-dir", str(runs)]) == 2
    assert "no finished run record with a fitted label-noise floor" in capsys.readouterr().err
    assert lnp.main(["--results-dir", str(results), "--runs-dir", str(tmp_path / "none")]) == 2
    assert "no reward_model.pt in" in capsys.readouterr().err
