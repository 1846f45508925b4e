"""benchmarks/aihf.py: the quick grid end to end (expert, demos, AIHF / preference / IRL / BC), resuming, bad input."""

import json
import sys
from pathlib import Path

import pytest

from prefrl.core.data import ComparisonDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import aihf, reward_levels  # noqa: E402


def _args(tmp_path, *extra):
    return ["--quick", "--results-dir", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
            "--expert-runs-dir", str(tmp_path / "experts"), "--workers", "1", *extra]


def test_quick_benchmark_writes_summary_table_plot_and_resumes(tmp_path, capsys):
    assert aihf.main(_args(tmp_path, "--workers", "2")) == 0  # the expert candidates and the runs two at a time
    results = tmp_path / "results"
    summary = json.loads((results / "aihf_summary.json").read_text())
    rows = {(r["method"], r["labels"], r["demos"]): r for r in summary["rows"]}
    assert set(rows) == {("aihf", 10, 1), ("preference", 10, 0), ("irl", 0, 1), ("bc", 0, 1), ("true_reward", 0, 0)}
    assert rows[("true_reward", 0, 0)]["steps"] == 3000  # the expert candidates' evaluations at the runs' steps
    for row in rows.values():
        assert {"env", "method", "labels", "demos", "seeds", "true_return_mean", "true_return_std"} <= set(row)
        assert row["seeds"] == ([0, 1, 2] if row["method"] == "true_reward" else [0])  # the 3 expert candidates
    expert = summary["experts"]["prefrl/PointMassFall-v0"]
    assert expert["true_return"] == max(expert["candidates"].values())
    assert [c["claim"] for c in summary["checks"]] == ["irl >= true-reward PPO at the same steps",
                                                       "irl >= 0.8 x demo return"]  # the others need 25/100 labels
    assert all(r["setting"] == "prefrl" for r in summary["rows"])
    demos = aihf.Demonstrations.load(tmp_path / "runs" / "demos" / "prefrl_PointMassFall-v0.npz")
    assert not demos.meta["deterministic"] and (demos.returns() >= 0.8 * expert["true_return"]).all()
    assert len(demos) == aihf.DEMOS_RECORDED and expert["demos"]["episodes"] == aihf.DEMOS_RECORDED
    assert rows[("aihf", 10, 1)]["demo_return"] == pytest.approx(demos.returns()[0])  # a run reads the first D
    assert "| prefrl/PointMassFall-v0 | prefrl | aihf | 10 | 1 |" in (results / "aihf.md").read_text()
    assert (results / "aihf.png").stat().st_size > 10_000
    capsys.readouterr()
    # a second invocation trains nothing: experts, demos and runs are all cached
    assert aihf.main(_args(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "4 of 4 runs already finished" in err and "training" not in err

    # the offline variant: both methods learn from the same set of pairs between the expert candidates' episodes
    assert aihf.main(_args(tmp_path, "--variant", "now-converge-offline", "--methods", "aihf,preference")) == 0
    capsys.readouterr()
    offline = sorted((tmp_path / "runs").glob("*now-converge-offline*"))
    assert [r.name.split("__")[3] for r in offline] == ["aihf", "preference"]
    sets = []
    for run in offline:
        config = json.loads((run / "config.json").read_text())
        assert config["labels"] == 0 and config["pref_data"]
        state = json.loads((run / "pref_state.json").read_text())
        assert state["labels_asked"] == 0 and {f["pairs"] for f in state["fit_reports"]} == {10}
        sets.append(config["pref_data"])
    assert sets[0] == sets[1]  # the same pairs for both methods
    pairs = ComparisonDataset.load(sets[0])
    assert len(pairs) == 10 and set(pairs.teachers) == {"oracle"}
    assert len(list((tmp_path / "runs" / "prefs").glob("*__ppo__true__*.npz"))) == 3  # one file per candidate
    rows = json.loads((results / "aihf_summary.json").read_text())["rows"]
    assert {(r["method"], r["labels"]) for r in rows if r["variant"] == "now-converge-offline"} == \
        {("aihf", 10), ("preference", 10)}

    # the learned reward's levels of the IRL run: the absorbing state is its zero, the demonstrations score above it
    irl_run = next((tmp_path / "runs").glob("*__irl__*"))
    assert reward_levels.main([str(irl_run), "--out", str(tmp_path / "levels.json")]) == 0
    (row,) = json.loads((tmp_path / "levels.json").read_text())["rows"]
    assert row["run"] == irl_run.name and row["absorbing_reward"] == pytest.approx(0.0, abs=1e-5)
    assert row["demo_reward"] > row["absorbing_reward"] and 0 < row["episode_length"] <= 200
    # a preference-only run scores demonstrations only when given some; other runs' policies get a column each
    pref_run = tmp_path / "runs" / irl_run.name.replace("__irl__L0__D1", "__preference__L10__D0")
    demos = tmp_path / "runs" / "demos" / "prefrl_PointMassFall-v0.npz"
    assert reward_levels.main([str(pref_run), str(irl_run), "--policies", str(irl_run), "--demos", str(demos),
                               "--out", str(tmp_path / "levels.json")]) == 0
    pref_row, irl_row = json.loads((tmp_path / "levels.json").read_text())["rows"]
    assert pref_row["demo_reward"] is not None and irl_row["demo_reward"] == pytest.approx(row["demo_reward"])
    assert irl_row["other_policies"] == {irl_run.name: pytest.approx(irl_row["policy_reward"])}  # its own policy
    assert reward_levels.main([str(pref_run), "--out", str(tmp_path / "levels.json")]) == 0
    assert json.loads((tmp_path / "levels.json").read_text())["rows"][0]["demo_reward"] is None
    capsys.readouterr()
    assert reward_levels.main([str(tmp_path / "no-such-run")]) == 2
    assert "no-such-run" in capsys.readouterr().err


def test_bad_options_are_refused_before_anything_runs(tmp_path, capsys):
    for extra, message in ((["--methods", "aihf,gail"], "unknown method 'gail'"),
                           (["--demos", "0"], "--demos value '0' is invalid"),
                           (["--envs", "Hoper-v5"], "unknown env id 'Hoper-v5'")):
        args = _args(tmp_path, *extra)
        args.remove("--quick")  # --quick would replace the options under test
        assert aihf.main(args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_claims_are_checked_on_means():
    def row(method, labels, demos, mean, demo_return=None, seeds=(0, 1, 2), steps=1000):
        return {"env": "E", "setting": "prefrl", "variant": "-", "method": method, "labels": labels, "demos": demos,
                "true_return_mean": mean, "late_return_mean": -mean, "demo_return": demo_return, "demo_weight": None,
                "seeds": list(seeds), "steps": steps}

    rows = [row("aihf", 25, 1, 500.0, seeds=[0]), row("preference", 25, 0, 300.0),
            row("irl", 0, 1, 600.0, demo_return=700.0), row("aihf", 100, 1, 900.0), row("preference", 100, 0, 950.0),
            row("aihf", 25, 4, 1.0), row("true_reward", 0, 0, 650.0),
            # a longer IRL run is judged against PPO at its own steps, and AIHF is never compared with it
            row("irl", 0, 1, 10.0, demo_return=700.0, steps=2000), row("true_reward", 0, 0, 5.0, steps=2000),
            # a variant of the demonstration term: AIHF against its own IRL and the plain preference-only runs
            {**row("aihf", 25, 1, 320.0), "variant": "now-100steps"}, {**row("irl", 0, 1, 330.0), "variant": "now-100steps"},
            # a variant of the joint fit only: IRL alone and preference-only are the plain setting's runs
            {**row("aihf", 100, 1, 1000.0), "variant": "now-converge"},
            # an offline set of labels: AIHF against preference-only on the same set, and the plain IRL alone
            {**row("aihf", 25, 1, 700.0), "variant": "now-converge-offline"},
            {**row("preference", 25, 0, 800.0), "variant": "now-converge-offline"}]
    found = aihf.check_claims(rows)
    assert {(c["claim"], c["value"], c["against"]) for c in found if c["variant"] == "now-converge-offline"} == {
        ("aihf > preference", 700.0, 800.0), ("aihf > irl", 700.0, 600.0)}
    assert {s.method for s in aihf.grid(["E-v0"], [0, 25], [1], list(aihf.METHODS), [0], 1000, "prefrl",
                                        variant="now-converge-offline")} == {"aihf", "preference"}
    assert {(c["claim"], c["value"], c["against"]) for c in found if c["variant"] == "now-converge"} == {
        ("aihf > preference", 1000.0, 950.0), ("aihf > irl", 1000.0, 600.0)}
    assert {s.method for s in aihf.grid(["E-v0"], [0, 25], [1], list(aihf.METHODS), [0], 1000, "prefrl",
                                        variant="now-converge")} == {"aihf"}  # the others would repeat plain runs
    checks = {f"{c['claim']} {c['labels']} {c['steps']}": (c["holds"], c["holds_late"]) for c in found
              if c["variant"] == "-"}
    assert {(c["claim"], c["value"], c["against"]) for c in found if c["variant"] == "now-100steps"} == {
        ("aihf > preference", 320.0, 300.0), ("aihf > irl", 320.0, 330.0)}
    assert checks == {"aihf > preference 25 1000": (True, False), "aihf > irl 25 1000": (False, True),
                      "aihf > preference 100 1000": (False, True), "aihf > irl 100 1000": (True, False),
                      "irl >= true-reward PPO at the same steps 0 1000": (False, False),
                      "irl >= 0.8 x demo return 0 1000": (True, False),
                      "irl >= true-reward PPO at the same steps 0 2000": (True, False),
                      "irl >= 0.8 x demo return 0 2000": (False, False)}
    assert [c["seeds"] for c in found if c["labels"] == 25 and c["variant"] == "-"] == [1, 1]  # the fewer of the two
    assert all(c["seeds"] == 3 for c in found if c["labels"] != 25)


def test_every_ablation_variant_is_a_valid_train_config(tmp_path):
    for variant in aihf.VARIANTS:
        spec = aihf.AihfSpec("prefrl/PointMassFall-v0", "irl", 0, 1, 0, 3000, "prefrl", variant)
        config = aihf.TrainConfig(**aihf.train_config(spec, tmp_path / "d.npz", str(tmp_path / variant)))
        assert config.reward_inputs in (["obs"], ["obs", "act"]) and config.labels == 0
    assert aihf.train_config(aihf.AihfSpec("Hopper-v5", "irl", 0, 1, 0, 3000, "paper"), tmp_path / "d.npz",
                             "o")["algo"] == "sac"
