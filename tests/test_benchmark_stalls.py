"""benchmarks/stall_diagnosis.py: each run's own final reward scores its policy's episodes and the best runs'."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import mujoco_sweep as sweep  # noqa: E402
from benchmarks import stall_diagnosis as stalls  # noqa: E402

ENV = "prefrl/PointMassFall-v0"


def test_each_run_is_scored_by_its_own_reward_against_the_best_other_runs(tmp_path, capsys):
    results, runs = tmp_path / "results", tmp_path / "runs"
    assert sweep.main(["--envs", ENV, "--labels", "20", "--steps", "3000", "--segment-len", "20", "--seeds", "0,1,2",
                       "--workers", "1", "--results-dir", str(results), "--runs-dir", str(runs)]) == 0
    pattern = "prefrl_PointMassFall-v0__ppo__oracle__*"
    assert stalls.main(["--runs", pattern, "--results-dir", str(results), "--runs-dir", str(runs), "--refs", "2",
                        "--episodes", "2", "--name", "stalls_test"]) == 0
    summary = json.loads((results / "stalls_test.json").read_text())
    assert summary["command"].endswith(f"--runs '{pattern}' --name stalls_test")
    by_seed = {r["seed"]: r for r in summary["runs"]}
    assert sorted(by_seed) == [0, 1, 2] and len(summary["references"]) == 2
    finals = {r["seed"]: r["final"] for r in summary["runs"]}
    best = sorted(finals, key=finals.get, reverse=True)[:2]
    assert summary["references"] == [by_seed[s]["run_id"] for s in best]

    # the own episodes' learned return is the run's own reward summed over them (recomputed here)
    from prefrl.reward.model import RewardModel
    from prefrl.sb3.envs import make_env
    from prefrl.sb3.policies import record_demos

    env = make_env(ENV)
    row = by_seed[best[-1]]  # a reference: scored against the one other reference only
    reward = RewardModel.load(runs / row["run_id"] / "reward_model.pt", env.observation_space, env.action_space)
    episodes = record_demos(ENV, str(runs / row["run_id"]), 2, seed=summary["env_seed"]).episodes
    own = np.mean([reward.predict(e.obs, e.acts, e.next_obs).sum() for e in episodes])
    assert row["own"]["learned"] == pytest.approx(own, rel=1e-5)
    # a reference is not its own reference: its references' episodes are the other reference's own
    assert row["refs"]["true"] == pytest.approx(by_seed[best[0]]["own"]["true"])
    assert row["true_ratio"] == pytest.approx(row["own"]["true"] / row["refs"]["true"])
    assert all(r["course"] in ("climbed", "fell back", "fell back on its final reward", "never took off")
               for r in summary["runs"])
    # the last refit in env steps as the history counts them: the loop's own step count plus the random warm-up
    state = json.loads((runs / row["run_id"] / "pref_state.json").read_text())
    assert row["last_refit"] == state["fit_reports"][-1]["env_steps"] + state["warmup_steps"] > 0
    evals = json.loads((results / "runs" / f"{row['run_id']}.json").read_text())["metrics"]["history"]
    assert row["peak_step"] == max(evals, key=lambda h: h["true_return"])["env_steps"]
    assert "| labels | seed | course |" in (results / "stalls_test.md").read_text()
    capsys.readouterr()

    assert stalls.main(["--runs", "nothing*", "--results-dir", str(results), "--runs-dir", str(runs)]) == 2
    assert f"no finished run record in {results / 'runs'} matches 'nothing*'" in capsys.readouterr().err
    assert stalls.main(["--runs", pattern, "--results-dir", str(results), "--runs-dir", str(tmp_path / "none")]) == 2
    assert "no final policy in" in capsys.readouterr().err


def test_a_runs_course_says_whether_it_never_took_off_or_fell_back_from_its_best():
    assert stalls.course({"peak": 500, "final": 480}, ref_true=3000) == "never took off"
    assert stalls.course({"peak": 3000, "final": 900}, ref_true=3000) == "fell back"
    assert stalls.course({"peak": 3000, "final": 2900}, ref_true=3000) == "climbed"
    late = {"peak": 3000, "final": 900, "peak_step": 246_000}
    assert stalls.course({**late, "last_refit": 239_472}, ref_true=3000) == "fell back on its final reward"
    assert stalls.course({**late, "last_refit": 250_000}, ref_true=3000) == "fell back"
    assert stalls.course({**late, "last_refit": None}, ref_true=3000) == "fell back"


def test_a_corrupt_loop_state_is_named(tmp_path):
    (tmp_path / "pref_state.json").write_text("{not json")
    with pytest.raises(ValueError, match="pref_state.json is corrupt"):
        stalls.last_refit(tmp_path)
    assert stalls.last_refit(tmp_path / "absent") is None
