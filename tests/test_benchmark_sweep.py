"""benchmarks/mujoco_sweep.py: a quick sweep end to end, resuming, failures, corrupt files, bad input, Ray."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import mujoco_sweep as sweep  # noqa: E402

ENV = "prefrl/PointMassFall-v0"


def _args(tmp_path, *extra):
    return ["--quick", "--envs", ENV, "--results-dir", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
            "--workers", "1", *extra]


def test_quick_sweep_writes_summary_table_plots_and_resumes(tmp_path, capsys):
    assert sweep.main(_args(tmp_path)) == 0
    results = tmp_path / "results"
    summary = json.loads((results / "mujoco_summary.json").read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    assert set(rows) == {"true_reward", "preference"}
    pref = rows["preference"]
    for key in ("env", "method", "teacher", "sampler", "labels", "seeds", "steps", "true_return_mean",
                "true_return_std", "ratio_to_true_reward", "reward_correlation_mean"):
        assert key in pref
    assert pref["labels"] == 20 and pref["seeds"] == [0] and pref["steps"] == 3000
    assert pref["ratio_to_true_reward"] == pytest.approx(pref["true_return_mean"] / rows["true_reward"]["true_return_mean"])
    assert "| prefrl/PointMassFall-v0 |" in (results / "mujoco.md").read_text()
    assert (results / "mujoco_prefrl_PointMassFall-v0.png").stat().st_size > 10_000
    assert len(list((results / "runs").glob("*.json"))) == 2
    capsys.readouterr()

    # a second invocation skips finished runs; a corrupt record is reported and that run alone is redone
    record = next((results / "runs").glob("*true*.json"))
    record.write_text('{"format_version": 1, "status": "ok", "metrics": {')
    assert sweep.main(_args(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "is corrupt" in err and "running it again" in err
    assert "1 of 2 runs already finished" in err
    assert json.loads(record.read_text())["status"] == "ok"

    # a finished run whose record went missing is read back, never trained (or deleted) again
    record = next((results / "runs").glob("*oracle*.json"))
    before = json.loads(record.read_text())["metrics"]
    labels = next((tmp_path / "runs").glob("*oracle*")) / "comparisons.npz"
    stamp = labels.stat().st_mtime_ns
    record.unlink()
    assert sweep.main(_args(tmp_path)) == 0
    assert json.loads(record.read_text())["metrics"] == before
    assert labels.stat().st_mtime_ns == stamp

    # a later sweep into the same results adds its rows to the summary, beside the earlier ones
    assert sweep.main(_args(tmp_path, "--samplers", "disagreement")) == 0
    summary = json.loads((results / "mujoco_summary.json").read_text())
    assert sorted(r["sampler"] for r in summary["rows"]) == ["-", "disagreement", "uniform"]
    assert len(summary["commands"]) == 2 and "--samplers disagreement" in summary["commands"][1]


class _Exploding(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        raise RuntimeError("simulator exploded")


def test_a_failed_run_is_recorded_and_does_not_stop_the_others(tmp_path, capsys):
    if "test/Exploding-v0" not in gym.registry:
        gym.register("test/Exploding-v0", entry_point=_Exploding, max_episode_steps=50)
    args = _args(tmp_path)
    args[args.index("--envs") + 1] = f"test/Exploding-v0,{ENV}"
    args.remove("--quick")
    args += ["--labels", "0", "--seeds", "0", "--steps", "1000"]
    assert sweep.main(args) == 0
    records = {p.name: json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")}
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(records) == 2 and len(failed) == 1
    assert "simulator exploded" in failed[0]["error"]
    assert "FAILED test_Exploding-v0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--envs", "Hopper-v9"], "unknown env id 'Hopper-v9'"),
        (["--teachers", "oracle,sage"], "unknown teacher 'sage'"),
        (["--samplers", "greedy"], "unknown sampler 'greedy'"),
        (["--algo", "trpo"], "unknown method/algo 'trpo'"),
        (["--steps", "0"], "--steps value '0' is invalid: expected positive integers"),
        (["--steps", "1e5"], "--steps value '1e5' is invalid"),
        (["--labels", "0,-5"], "--labels value '-5' is invalid"),
        (["--labels", "seven"], "--labels value 'seven' is invalid"),
    ],
)
def test_bad_input_is_refused_before_any_run(tmp_path, capsys, extra, message):
    args = [a for a in _args(tmp_path) if a != "--quick"] + extra
    assert sweep.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_results_from_an_incompatible_version_are_refused(tmp_path, capsys):
    spec = sweep.RunSpec(ENV, "ppo", 0, "-", "-", 0, 3000, 20)
    path = sweep.record_path(tmp_path / "results", spec)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format_version": 0, "status": "ok", "metrics": {"true_return": 1, "history": []}}))
    assert sweep.main(_args(tmp_path)) == 2
    assert "format version 0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_local_process_pool_runs_in_parallel(tmp_path):
    args = _args(tmp_path)
    args[args.index("--workers") + 1] = "2"
    assert sweep.main(args) == 0
    assert len(json.loads((tmp_path / "results" / "mujoco_summary.json").read_text())["rows"]) == 2
    # Each record is written as its run ends and holds the run's duration: each run's time window is
    # [written - seconds, written]. Two workers ran the two runs at once, so the windows overlap for
    # most of the shorter run; one after the other, they would not overlap at all.
    paths = sorted((tmp_path / "results" / "runs").glob("*.json"))
    records = [json.loads(p.read_text()) for p in paths]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    ends = [p.stat().st_mtime for p in paths]
    starts = [end - r["seconds"] for end, r in zip(ends, records)]
    overlap = min(ends) - max(starts)
    assert overlap > 0.5 * min(r["seconds"] for r in records), (starts, ends)
    # and, read off the run directories alone: both runs had started (written their config) before either ended
    configs = [p.stat().st_mtime for p in (tmp_path / "runs").glob("*/config.json")]
    assert len(configs) == 2 and max(configs) < min(ends)


def test_ray_backend_on_a_local_ray_instance(tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert sweep.main(_args(tmp_path, "--backend", "ray")) == 0
    finally:
        ray.shutdown()
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
