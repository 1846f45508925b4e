"""benchmarks/mujoco_sweep.py: a quick sweep end to end, resuming, failures, corrupt files, bad input, Ray."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
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
        (["--teachers", "mistake1.5"], "mistake must be a probability in [0, 1], got 1.5"),
        (["--teachers", "oracle0.3"], "teacher 'oracle0.3': a rate can follow only mistake, skip, equal"),
        (["--robust", "none,rime,median"], "unknown robust 'median'"),
        (["--surf", "none,0.2"], "--surf value '0.2' is invalid: expected none or a threshold in [0.5, 1]"),
        (["--surf", "high"], "--surf value 'high' is invalid"),
        (["--pretrain", "0,-5"], "--pretrain value '-5' is invalid"),
        (["--holdout", "default,1"], "--holdout value '1' is invalid: expected default or a share in [0, 1)"),
        (["--holdout", "none"], "--holdout value 'none' is invalid"),
        (["--upfront", "default,1.5"], "--upfront value '1.5' is invalid: expected default or a share in [0, 1]"),
        (["--reward-inputs", "default,obs+acts"], "--reward-inputs value 'obs+acts' is invalid: expected default or "
                                                  "distinct input kinds of obs, act, act_sq, next_obs joined by +"),
        (["--reward-inputs", "obs+obs"], "--reward-inputs value 'obs+obs' is invalid"),
        (["--algo", "trpo"], "unknown method/algo 'trpo'"),
        (["--algo-kwargs", "gamma"], "--algo-kwargs: expected key=value, got 'gamma'"),
        (["--algo-kwargs", "policy_kwargs=[1]"], "policy_kwargs=[1]: expected a mapping"),
        (["--steps", "0"], "--steps value '0' is invalid: expected positive integers"),
        (["--n-envs", "0"], "--n-envs value '0' is invalid: expected positive integers"),
        (["--rime-grace", "0,-1"], "--rime-grace value '-1' is invalid"),
        (["--n-envs", "2,4"], "--n-envs value '2,4' is invalid: expected one positive integer"),
        (["--steps", "1000,2000"], "--steps value '1000,2000' is invalid: expected one positive integer"),
        (["--steps", "1e5"], "--steps value '1e5' is invalid"),
        (["--labels", "0,-5"], "--labels value '-5' is invalid"),
        (["--labels", "seven"], "--labels value 'seven' is invalid"),
        (["--reward-renormalize", "fixed"],
         "unknown reward-renormalize 'fixed': expected one of default, every, first, preserve"),
    ],
)
def test_bad_input_is_refused_before_any_run(tmp_path, capsys, extra, message):
    args = [a for a in _args(tmp_path) if a != "--quick"] + extra
    assert sweep.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_noisy_teachers_and_label_screening_reach_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--teachers", "oracle,mistake0.3",
                                            "--robust", "none,rime", "--seeds", "0", "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 1 + 2 * 2  # one baseline: teachers and screening vary only the preference runs
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    noisy = configs[f"{ENV.replace('/', '_')}__ppo__mistake0.3__uniform__rime__L50__H50__s1000__seed0"]
    assert (noisy["teacher"], noisy["teacher_kwargs"], noisy["robust"]) == ("mistake", {"mistake": 0.3}, "rime")
    plain = configs[f"{ENV.replace('/', '_')}__ppo__oracle__uniform__L50__H50__s1000__seed0"]
    assert (plain["teacher"], plain["teacher_kwargs"], plain["robust"], plain["surf"]) == ("oracle", {}, "none", None)


def test_a_rime_grace_period_is_named_apart_and_only_screened_runs_get_it(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "50", "--teachers", "mistake0.3",
                                            "--robust", "none,rime", "--rime-grace", "0,1", "--seeds", "0"])
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in sweep.parse_specs(args)}
    env = ENV.replace('/', '_')
    assert {k: (c["robust"], c["rime_grace"]) for k, c in configs.items()} == {  # plain BT has no grace to vary
        f"{env}__ppo__mistake0.3__uniform__L50__H50__s300000__seed0": ("none", 0),
        f"{env}__ppo__mistake0.3__uniform__rime__L50__H50__s300000__seed0": ("rime", 0),
        f"{env}__ppo__mistake0.3__uniform__rime__grace1__L50__H50__s300000__seed0": ("rime", 1)}
    spec = next(s for s in sweep.parse_specs(args) if s.rime_grace)
    assert sweep.queries(asdict(spec)) == "uniform + rime grace 1"


def test_a_label_noise_floor_is_named_apart_reaches_the_run_and_refuses_a_bad_share(tmp_path, capsys):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--teachers", "mistake0.3",
                                            "--label-noise", "0,0.6,fit", "--seeds", "0"])
    specs = sweep.parse_specs(args)
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    assert {k: c["label_noise"] for k, c in configs.items()} == {  # the baseline has no labels to doubt
        f"{env}__ppo__true__s300000__seed0": 0.0,
        f"{env}__ppo__mistake0.3__uniform__L50__H50__s300000__seed0": 0.0,
        f"{env}__ppo__mistake0.3__uniform__ln0.6__L50__H50__s300000__seed0": 0.6,
        f"{env}__ppo__mistake0.3__uniform__lnfit__L50__H50__s300000__seed0": 0.0}
    fitted = {k for k, c in configs.items() if c["estimate_label_noise"]}
    assert fitted == {f"{env}__ppo__mistake0.3__uniform__lnfit__L50__H50__s300000__seed0"}
    floor = next(s for s in specs if s.label_noise)
    assert sweep.queries(asdict(floor)) == "uniform + label noise 0.6"
    assert sweep.queries(asdict(next(s for s in specs if s.fit_noise))) == "uniform + label noise fitted"
    assert sweep.unscreened(asdict(next(s for s in specs if s.fit_noise)))["fit_noise"] is False
    assert sweep.screen({"robust": "rime", "rime_grace": 1, "label_noise": 0.1}) == "rime grace 1, label noise 0.1"
    assert sweep.screen({"robust": "none", "label_noise": 0.2, "fit_noise": True}) == "label noise fitted from 0.2"
    assert sweep.main(["--envs", ENV, "--labels", "50", "--label-noise", "1", "--results-dir", str(tmp_path)]) == 2
    assert "--label-noise value '1' is invalid: expected default, fit or a share in [0, 1)" in capsys.readouterr().err


def test_runes_bonus_is_named_apart_reaches_the_run_and_refuses_a_bad_weight(tmp_path, capsys):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--rune", "0,0.05", "--seeds", "0"])
    specs = sweep.parse_specs(args)
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    assert {k: c["rune"] for k, c in configs.items()} == {  # the baseline has no learned reward to explore with
        f"{env}__ppo__true__s300000__seed0": 0.0,
        f"{env}__ppo__oracle__uniform__L50__H50__s300000__seed0": 0.0,
        f"{env}__ppo__oracle__uniform__rune0.05__L50__H50__s300000__seed0": 0.05}
    assert sweep.queries(asdict(next(s for s in specs if s.rune))) == "uniform + rune 0.05"
    assert sweep.main(["--envs", ENV, "--labels", "50", "--rune", "-1", "--results-dir", str(tmp_path)]) == 2
    assert "--rune value '-1' is invalid: expected 0 (off) or a finite weight above 0" in capsys.readouterr().err


def test_surf_and_pretraining_runs_are_named_apart_and_reach_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--surf", "none,0.95", "--pretrain",
                                            "0,500", "--seeds", "0", "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 2 + 2 * 2  # the baseline with and without the same pre-training
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    both = configs[f"{env}__ppo__oracle__uniform__surf0.95__pre500__L50__H50__s1000__seed0"]
    assert (both["surf"], both["pretrain_steps"]) == (0.95, 500)
    plain = configs[f"{env}__ppo__oracle__uniform__L50__H50__s1000__seed0"]  # ids from before the options unchanged
    assert (plain["surf"], plain["pretrain_steps"]) == (None, 0)
    assert configs[f"{env}__ppo__true__s1000__seed0"]["pretrain_steps"] == 0  # ids from before unchanged here too
    control = configs[f"{env}__ppo__true__pre500__s1000__seed0"]
    assert (control["reward"], control["pretrain_steps"]) == ("true", 500)
    row = {"sampler": "uniform", "robust": "none", "surf": 0.95, "pretrain": 500}
    assert sweep.queries(row) == "uniform + surf 0.95 + pretrain 500" and sweep.queries({"sampler": "uniform"}) == "uniform"


def test_a_holdout_share_is_named_apart_and_reaches_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--holdout", "default,0", "--seeds", "0",
                                            "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 1 + 2  # the baseline has no labels to hold out
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    assert configs[f"{env}__ppo__oracle__uniform__ho0__L50__H50__s1000__seed0"]["reward_holdout"] == 0
    plain = configs[f"{env}__ppo__oracle__uniform__L50__H50__s1000__seed0"]  # the id from before the option unchanged
    assert plain["reward_holdout"] == pytest.approx(1 / np.e)
    assert sweep.queries({"sampler": "uniform", "holdout": 0.0}) == "uniform + holdout 0"
    assert sweep.queries({"sampler": "uniform", "holdout": None}) == "uniform"


def test_the_share_of_labels_asked_up_front_is_named_apart_and_reaches_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--upfront", "default,0.5,1", "--seeds",
                                            "0", "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 1 + 3  # the baseline asks no labels
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    assert configs[f"{env}__ppo__oracle__uniform__up0.5__L50__H50__s1000__seed0"]["labels_upfront"] == 0.5
    assert configs[f"{env}__ppo__oracle__uniform__up1__L50__H50__s1000__seed0"]["labels_upfront"] == 1.0
    plain = configs[f"{env}__ppo__oracle__uniform__L50__H50__s1000__seed0"]  # the id from before the option unchanged
    assert plain["labels_upfront"] == 0.25
    assert sweep.queries({"sampler": "uniform", "upfront": 0.5}) == "uniform + upfront 0.5"
    rows = sweep.aggregate([{"spec": asdict(s), "method": s.method,
                             "metrics": {"true_return": 10.0, "wall_seconds": 1.0}} for s in specs])
    assert sorted(r["upfront"] for r in rows if r["upfront"] is not None) == [0.5, 1.0]  # each share its own row


def test_reward_inputs_are_named_apart_and_reach_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--reward-inputs",
                                            "default,act+obs,act_sq+obs", "--seeds", "0", "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 1 + 3  # the baseline's reward is the true one
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    # prefrl's default, named in the run id and in the config, so a later default cannot pass for it
    assert configs[f"{env}__ppo__oracle__uniform__in_obs+act+act_sq__L50__H50__s1000__seed0"]["reward_inputs"] == [
        "obs", "act", "act_sq"]
    # state and action, the default before the option: the id every such run had, and the inputs it used
    assert configs[f"{env}__ppo__oracle__uniform__L50__H50__s1000__seed0"]["reward_inputs"] == ["obs", "act"]
    # kinds in the reward model's order, whatever order they were given in
    assert configs[f"{env}__ppo__oracle__uniform__in_obs+act_sq__L50__H50__s1000__seed0"]["reward_inputs"] == [
        "obs", "act_sq"]
    assert configs[f"{env}__ppo__true__s1000__seed0"]["reward_inputs"] is None
    assert sweep.queries({"sampler": "uniform", "inputs": "obs+act+act_sq"}) == "uniform + inputs obs+act+act_sq"
    assert sweep.queries({"sampler": "uniform"}) == "uniform"  # a record from before the option: obs+act
    rows = sweep.aggregate([{"spec": asdict(s), "method": s.method,
                             "metrics": {"true_return": 10.0 + len(s.inputs), "wall_seconds": 1.0}} for s in specs])
    assert sorted((r["inputs"], r["ratio_to_true_reward"]) for r in rows) == [
        ("", 1.0), ("", 1.0), ("obs+act+act_sq", 2.4), ("obs+act_sq", 2.0)]


def test_when_the_rewards_inputs_are_standardized_is_named_apart_and_reaches_each_runs_config(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--reward-renormalize",
                                            "default,first,every,preserve", "--seeds", "0", "--steps", "1000"])
    specs = sweep.parse_specs(args)
    assert len(specs) == 1 + 4  # the baseline has no reward model
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in specs}
    env = ENV.replace('/', '_')
    for tag, mode in (("fixin", "first"), ("renorm", "every"), ("keepfn", "preserve")):
        assert configs[f"{env}__ppo__oracle__uniform__{tag}__L50__H50__s1000__seed0"]["reward_renormalize"] == mode
    plain = configs[f"{env}__ppo__oracle__uniform__L50__H50__s1000__seed0"]  # the id from before the option unchanged
    assert plain["reward_renormalize"] is None
    assert sweep.queries({"sampler": "uniform", "renormalize": "first"}) == "uniform + standardize first"
    assert sweep.queries({"sampler": "uniform", "renormalize": None}) == "uniform"
    rows = sweep.aggregate([{"spec": asdict(s), "method": s.method,
                             "metrics": {"true_return": 10.0, "wall_seconds": 1.0}} for s in specs])
    assert sorted(str(r["renormalize"]) for r in rows) == ["None", "None", "every", "first", "preserve"]  # own rows


def test_learner_arguments_reach_every_run_and_pair_each_run_with_its_own_baseline(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--seeds", "0", "--steps", "1000",
                                            "--algo-kwargs", 'policy_kwargs={"log_std_init": -1}', "n_steps=256"])
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in sweep.parse_specs(args)}
    env = ENV.replace('/', '_')
    tag = "n_steps256_log_std_init-1"
    assert set(configs) == {f"{env}__ppo__true__kw_{tag}__s1000__seed0",
                            f"{env}__ppo__oracle__uniform__kw_{tag}__L50__H50__s1000__seed0"}
    for config in configs.values():  # the baseline too
        assert config["algo_kwargs"] == {"n_steps": 256, "policy_kwargs": {"log_std_init": -1}}

    def record(labels, seed, ret, kwargs=None):
        spec = {"env": ENV, "algo": "ppo", "teacher": "-" if labels == 0 else "oracle", "labels": labels,
                "sampler": "-" if labels == 0 else "uniform", "seed": seed, "steps": 1000, "segment_len": 50,
                **({"algo_kwargs": kwargs} if kwargs else {})}  # a record from before the option has no key
        return {"spec": spec, "method": "true_reward" if labels == 0 else "preference",
                "metrics": {"true_return": ret, "wall_seconds": 1.0}}

    kw = '{"policy_kwargs": {"log_std_init": -1}}'
    control = record(0, 0, 300.0)
    control["spec"]["pretrain"] = 3000  # the true reward after PEBBLE's pre-training: scored against the plain one
    rows = sweep.aggregate([record(0, 0, 100.0), record(50, 0, 50.0), record(0, 0, 400.0, kw), record(50, 0, 200.0, kw),
                            control])
    assert [r["ratio_to_true_reward"] for r in rows if r["pretrain"]] == [3.0]
    rows = [r for r in rows if not r["pretrain"]]
    ratios = {(r["method"], sweep.algo_name(r)): r["ratio_to_true_reward"] for r in rows}
    assert ratios == {("true_reward", "ppo"): 1.0, ("preference", "ppo"): 0.5,
                      ("true_reward", "ppo (log_std_init=-1)"): 1.0, ("preference", "ppo (log_std_init=-1)"): 0.5}


def test_an_env_count_reaches_every_run_and_pairs_each_run_with_a_baseline_of_the_same_count(tmp_path):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--seeds", "0", "--steps", "1000",
                                            "--n-envs", "4", "--algo-kwargs", "n_steps=64"])
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in sweep.parse_specs(args)}
    env = ENV.replace('/', '_')
    assert set(configs) == {f"{env}__ppo__true__envs4__kw_n_steps64__s1000__seed0",
                            f"{env}__ppo__oracle__uniform__envs4__kw_n_steps64__L50__H50__s1000__seed0"}
    assert all(config["n_envs"] == 4 for config in configs.values())  # the baseline too
    one = sweep.parse_specs(sweep.build_parser().parse_args(["--envs", ENV, "--labels", "50", "--seeds", "0"]))[0]
    assert sweep.make_task(one, tmp_path, tmp_path).config["n_envs"] is None  # one env: as every run before the option

    def record(labels, ret, n_envs=None):
        spec = {"env": ENV, "algo": "ppo", "teacher": "-" if labels == 0 else "oracle", "labels": labels,
                "sampler": "-" if labels == 0 else "uniform", "seed": 0, "steps": 1000, "segment_len": 50,
                **({"n_envs": n_envs} if n_envs else {})}  # a record from before the option has no key
        return {"spec": spec, "method": "true_reward" if labels == 0 else "preference",
                "metrics": {"true_return": ret, "wall_seconds": 1.0}}

    rows = sweep.aggregate([record(0, 100.0), record(50, 50.0), record(0, 400.0, 4), record(50, 100.0, 4)])
    assert {(sweep.algo_name(r), r["method"]): r["ratio_to_true_reward"] for r in rows} == {
        ("ppo", "true_reward"): 1.0, ("ppo", "preference"): 0.5,
        ("ppo (n_envs=4)", "true_reward"): 1.0, ("ppo (n_envs=4)", "preference"): 0.25}


def test_env_arguments_reach_every_run_and_pair_each_run_with_its_own_baseline(tmp_path, capsys):
    args = sweep.build_parser().parse_args(["--envs", ENV, "--labels", "0,50", "--seeds", "0", "--steps", "1000",
                                            "--env-kwargs", "ctrl_cost_weight=0.5"])
    configs = {s.run_id: sweep.make_task(s, tmp_path, tmp_path).config for s in sweep.parse_specs(args)}
    env = ENV.replace('/', '_')
    assert set(configs) == {f"{env}__ppo__true__env_ctrl_cost_weight0.5__s1000__seed0",
                            f"{env}__ppo__oracle__uniform__env_ctrl_cost_weight0.5__L50__H50__s1000__seed0"}
    assert all(config["env_kwargs"] == {"ctrl_cost_weight": 0.5} for config in configs.values())  # the baseline too

    def record(labels, ret, env_kwargs=None):
        spec = {"env": ENV, "algo": "ppo", "teacher": "-" if labels == 0 else "oracle", "labels": labels,
                "sampler": "-" if labels == 0 else "uniform", "seed": 0, "steps": 1000, "segment_len": 50,
                **({"env_kwargs": env_kwargs} if env_kwargs else {})}  # a record from before the option has no key
        return {"spec": spec, "method": "true_reward" if labels == 0 else "preference",
                "metrics": {"true_return": ret, "wall_seconds": 1.0}}

    kw = '{"ctrl_cost_weight": 0.5}'
    rows = sweep.aggregate([record(0, 100.0), record(50, 50.0), record(0, 400.0, kw), record(50, 100.0, kw)])
    assert {(sweep.env_name(r), r["method"]): r["ratio_to_true_reward"] for r in rows} == {
        (ENV, "true_reward"): 1.0, (ENV, "preference"): 0.5,
        (f"{ENV} (ctrl_cost_weight=0.5)", "true_reward"): 1.0, (f"{ENV} (ctrl_cost_weight=0.5)", "preference"): 0.25}
    # an argument the env does not take is refused before any run starts, naming it
    assert sweep.main(_args(tmp_path, "--env-kwargs", "wheels=3")) == 2
    assert "refused the env kwargs {'wheels': 3}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


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


@pytest.mark.timeout(900)  # starting Ray and a worker process per run: past the suite's 300 s on a loaded machine
def test_ray_backend_on_a_local_ray_instance(tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert sweep.main(_args(tmp_path, "--backend", "ray")) == 0
    finally:
        ray.shutdown()
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)


def test_iqm_and_stratified_bootstrap():
    from prefrl.runs.sweep import iqm, stratified_bootstrap_ci

    assert iqm([4, 1, 3, 2]) == pytest.approx(2.5)  # the middle two of four
    assert iqm([-100, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(3.5)  # outliers trimmed
    assert iqm([1, 2, 9]) == pytest.approx(4.0)  # int(3/4) = 0 trimmed, as scipy's trim_mean
    point, low, high = stratified_bootstrap_ci({"a": [1.0, 1.1, 0.9, 1.0], "b": [0.5, 0.6, 0.4, 0.5]})
    assert low < point < high and 0.5 < low and high < 1.0
    # strata are resampled on their own: two tasks of constant scores give a CI of width 0
    assert stratified_bootstrap_ci({"a": [1.0] * 4, "b": [0.0] * 4})[1:] == (0.5, 0.5)
    with pytest.raises(ValueError, match="no values"):
        iqm([])


def test_probability_of_improvement_per_task_then_averaged():
    from prefrl.runs.sweep import chance_above, probability_of_improvement

    # task a: X above Y in 3 of 4 run pairs; task b: every X run ties every Y run (half); task c: only X ran
    point, low, high = probability_of_improvement({"a": [2.0, 0.0], "b": [1.0, 1.0], "c": [9.0]},
                                                  {"a": [1.0, -1.0], "b": [1.0]})
    assert point == pytest.approx((0.75 + 0.5) / 2)
    assert low <= point <= high and 0.25 <= low and high <= 0.75  # task b is 0.5 in every resample
    assert probability_of_improvement({"a": [3.0, 4.0]}, {"a": [1.0, 2.0]}) == (1.0, 1.0, 1.0)
    assert probability_of_improvement({"a": [1.0, 2.0]}, {"a": [3.0, 4.0]})[0] == 0.0
    assert chance_above([2.0, 0.0], [1.0, -1.0]) == 0.75 and chance_above([1.0], [1.0, 1.0]) == 0.5
    with pytest.raises(ValueError, match="no task with runs of both"):
        probability_of_improvement({"a": [1.0]}, {"b": [1.0]})


KW = '{"policy_kwargs": {"log_std_init": -1}}'


def test_efficiency_compares_each_oracle_method_with_the_defaults(tmp_path):
    from benchmarks import efficiency

    runs = tmp_path / "runs"
    runs.mkdir()
    default = {"inputs": "obs+act+act_sq"}  # prefrl's defaults: uniform queries, these reward inputs

    def record(labels, sampler, seed, ret, **spec):
        run_id = f"A-v0_{labels}_{sampler}_{seed}_{'_'.join(map(str, spec.values()))}"
        (runs / f"{run_id}.json").write_text(json.dumps({
            "format_version": 1, "run_id": run_id, "status": "ok", "metrics": {"true_return": ret, "history": []},
            "spec": {"env": "A-v0", "labels": labels, "sampler": sampler, "seed": seed, **spec}}))

    for seed, (dflt, qpa, plain) in enumerate([(50, 80, 55), (60, 90, 65), (70, 100, 40)]):
        record(0, "-", seed, 100)
        record(100, "uniform", seed, dflt, **default)
        record(100, "policy_aligned", seed, qpa, **default)
        record(100, "uniform", seed, plain)
        record(100, "uniform", seed, qpa, teacher="mistake0.3", **default)  # another teacher: not against the oracle's
        record(100, "uniform", seed, [85, 95, 75][seed], teacher="mistake0.3", robust="rime", **default)  # but this
        record(200, "policy_aligned", seed, qpa, **default)  # no defaults' runs at 200 labels: nothing to compare
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "efficiency_summary.json").read_text())
    versus = {(v["method"], v["labels"]): v for v in summary["versus_default"]}
    assert sorted(versus) == [("policy_aligned, inputs obs+act+act_sq", 100), ("uniform", 100)]
    qpa = versus["policy_aligned, inputs obs+act+act_sq", 100]
    assert (qpa["poi"], qpa["ci95"], qpa["runs"], qpa["baseline_runs"]) == (1.0, [1.0, 1.0], 3, 3)
    # plain uniform's 55 / 65 / 40 above the defaults' 50 / 60 / 70 in 1 + 2 + 0 of 9 pairs
    assert versus["uniform", 100]["poi"] == pytest.approx(3 / 9) and versus["uniform", 100]["envs"] == ["A-v0"]
    assert versus["uniform", 100]["per_env"] == {"A-v0": pytest.approx(3 / 9)}
    assert "| uniform | 100 | 1 | 3 / 3 | 0.33 |" in (tmp_path / "efficiency.md").read_text()
    # the defaults against true-reward PPO's own runs (100 / 100 / 100: each scored 1.0), run against run
    (true,) = summary["default_versus_true_reward"]
    assert (true["baseline"], true["labels"], true["poi"], true["baseline_runs"]) == ("true-reward PPO", 100, 0.0, 3)
    # a screening against plain Bradley-Terry under the same teacher: 85 / 95 / 75 above 80 / 90 / 100 in 3 of 9 pairs
    (rime,) = summary["screening_versus_plain"]
    assert (rime["method"], rime["baseline"]) == ("uniform, mistake0.3, rime, inputs obs+act+act_sq",
                                                  "uniform, mistake0.3, inputs obs+act+act_sq")
    assert rime["poi"] == pytest.approx(3 / 9) and rime["baseline_runs"] == 3


def test_efficiency_counts_falls_from_a_peak(tmp_path):
    from benchmarks import efficiency

    runs = tmp_path / "runs"
    runs.mkdir()
    evals = lambda *xs: [{"env_steps": 1000 * (i + 1), "true_return": x} for i, x in enumerate(xs)]  # noqa: E731
    cases = [  # (labels, history, final): the true-reward runs' mean is 100
        (0, evals(50, 100), 100), (0, evals(50, 100), 100),
        (100, evals(20, 90, 50), 50),  # fell: 50 < 0.6 * 90 and 90 >= 0.6 * 100
        (100, evals(20, 50, 20), 20),  # never took off: its best 50 < 60
        (100, evals(20, 90, 60), 60),  # held: 60 >= 0.6 * 90
        (100, [], 10),  # no history: not counted
    ]
    for i, (labels, history, final) in enumerate(cases):
        (runs / f"r{i}.json").write_text(json.dumps({
            "format_version": 1, "run_id": f"r{i}", "status": "ok",
            "spec": {"env": "A-v0", "labels": labels, "sampler": "uniform" if labels else "-", "seed": i},
            "metrics": {"true_return": final, "history": history}}))
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "efficiency_summary.json").read_text())
    assert summary["falls"] == {"preference": {"A-v0": [1, 3]}, "true reward": {"A-v0": [0, 2]}}
    assert "preference runs (every method and teacher) 1 of 3 (A-v0 1 of 3)" in (tmp_path / "efficiency.md").read_text()


def test_efficiency_summary_from_sweep_records(tmp_path, capsys):
    from benchmarks import efficiency

    runs = tmp_path / "runs"
    runs.mkdir()

    def record(env, labels, sampler, seed, ret, **spec):
        rec = {"format_version": 1, "run_id": f"{env}_{labels}_{sampler}_{seed}{''.join(map(str, spec.values()))}", "status": "ok",
               "spec": {"env": env, "labels": labels, "sampler": sampler, "seed": seed, **spec},
               "metrics": {"true_return": ret, "history": []}}
        (runs / f"{rec['run_id']}.json").write_text(json.dumps(rec))

    for seed, (base, uni, qpa) in enumerate([(100, 80, 95), (120, 90, 110), (80, 70, 100)]):
        record("A-v0", 0, "-", seed, base)
        record("A-v0", 100, "uniform", seed, uni)
        record("A-v0", 100, "policy_aligned", seed, qpa)
        record("A-v0", 100, "uniform", seed, qpa - 10, teacher="mistake0.3", robust="rime")
        record("A-v0", 100, "uniform", seed, uni - 20, teacher="mistake0.3")
        record("A-v0", 100, "uniform", seed, uni - 5, teacher="mistake0.3", label_noise=0.6)
        record("A-v0", 100, "uniform", seed, uni + 5, pretrain=30000)
        record("A-v0", 0, "-", seed, 2 * base, algo_kwargs=KW)  # other learner arguments: scored on their own
        record("A-v0", 200, "policy_aligned", seed, qpa, algo_kwargs=KW)
        record("A-v0", 0, "-", seed, 10 * base, pretrain=30000)  # the control of pre-training: not a baseline
        record("A-v0", 0, "-", seed, 4 * base, env_kwargs='{"x": 1}', algo_kwargs=KW)  # other env arguments too
        record("A-v0", 50, "policy_aligned", seed, 2 * qpa, env_kwargs='{"x": 1}', algo_kwargs=KW)
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "efficiency_summary.json").read_text())
    rows = {r["method"]: r for r in summary["rows"] if r["env"] == "A-v0"}
    tuned = [r for r in summary["rows"] if r["env"] == "A-v0 (log_std_init=-1)"]
    assert len(tuned) == 1 and tuned[0]["ratio_mean"] == pytest.approx((95 + 110 + 100) / 3 / 200)
    (other,) = [r for r in summary["rows"] if r["env"] == "A-v0 (x=1, log_std_init=-1)"]
    assert other["ratio_mean"] == pytest.approx((95 + 110 + 100) / 3 / 200)
    assert rows["uniform"]["ratio_mean"] == pytest.approx(80 / 100)  # (80+90+70)/3 over a mean baseline of 100
    assert rows["policy_aligned"]["ratio_std"] == pytest.approx(np.std([0.95, 1.10, 1.00], ddof=1))  # sample std
    claims = {c["claim"]: c["holds"] for c in summary["claims"]}
    assert claims == {"A-v0, policy_aligned: ratio >= 0.9 at 100 labels": True,
                      "A-v0, uniform: ratio >= 0.9 at 100 labels": False,
                      "A-v0, uniform, mistake0.3, rime: ratio >= 0.8 at 100 labels": True,  # noisy teachers: 0.8
                      "A-v0, uniform, mistake0.3: ratio >= 0.8 at 100 labels": False,
                      "A-v0, uniform, mistake0.3, label noise 0.6: ratio >= 0.8 at 100 labels": False,
                      "A-v0, uniform, pretrain 30000: ratio >= 0.9 at 100 labels": False,
                      "A-v0 (log_std_init=-1), policy_aligned: ratio >= 0.9 at 200 labels": False,
                      "A-v0 (x=1, log_std_init=-1), policy_aligned: ratio >= 0.9 at 50 labels": False}
    (noisy,) = summary["noisy"]  # plain and screened under the same teacher, beside the oracle's run
    assert (noisy["env"], noisy["teacher"], noisy["labels"], noisy["method"]) == ("A-v0", "mistake0.3", 100, "uniform")
    assert noisy["robust"]["none"]["ratio_mean"] == pytest.approx(0.6) and noisy["robust"]["none"]["seeds"] == 3
    assert noisy["robust"]["rime"]["ratio_mean"] == pytest.approx((85 + 100 + 90) / 300)
    assert noisy["robust"]["label noise 0.6"]["ratio_mean"] == pytest.approx(0.75)  # the floor: a column of its own
    assert noisy["oracle"]["ratio_mean"] == pytest.approx(0.8)
    assert "| A-v0 | mistake0.3 | 100 | uniform | 0.60 ± 0.10 (3) | 0.75 ± 0.10 (3) | 0.92 ± 0.08 (3) | 0.80 ± 0.10 (3) |" in (
        tmp_path / "efficiency.md").read_text()
    agg = {(a["method"], a["labels"]): a for a in summary["aggregate"]}
    assert agg["uniform", 100]["runs"] == 3 and agg["uniform", 100]["iqm"] == pytest.approx(0.8)
    assert agg["policy_aligned", 200]["envs"] == ["A-v0 (log_std_init=-1)"]
    assert (tmp_path / "efficiency.png").stat().st_size > 5_000 and "| A-v0 |" in (tmp_path / "efficiency.md").read_text()
    assert (tmp_path / "efficiency_profile.png").stat().st_size > 5_000
    for path in runs.glob("A-v0_0_-_*.json"):  # a preference run without its own baseline is refused, not divided by 0
        if "log_std" in path.name:
            path.unlink()
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 2
    assert "no true-reward run of A-v0 (log_std_init=-1)" in capsys.readouterr().err
    for seed in range(3):  # the baselines back
        record("A-v0", 0, "-", seed, 200, algo_kwargs=KW)
        record("A-v0", 0, "-", seed, 400, env_kwargs='{"x": 1}', algo_kwargs=KW)
    record("A-v0", 100, "policy_aligned", 0, 100, algo_kwargs=KW)  # beside the plain A-v0's policy_aligned at 100
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 2
    assert ("policy_aligned at 100 labels has runs of one env under several settings (A-v0, A-v0 (log_std_init=-1))"
            in capsys.readouterr().err)
    (runs / f"A-v0_100_policy_aligned_0{KW}.json").unlink()
    for seed, ret in enumerate([10, 20, 30]):  # a fifth env, shown per env but left out of the aggregate it is not in
        record("B-v0", 0, "-", seed, 100)
        record("B-v0", 100, "uniform", seed, ret)
    assert efficiency.main(["--results-dir", str(tmp_path)]) == 0
    agg = {(a["method"], a["labels"]): a for a in json.loads((tmp_path / "efficiency_summary.json").read_text())["aggregate"]}
    assert agg["uniform", 100]["envs"] == ["A-v0", "B-v0"] and agg["uniform", 100]["runs"] == 6
    assert "| uniform | 100 | 2 | 6 |" in (tmp_path / "efficiency.md").read_text()  # how many envs an IQM counts
    assert efficiency.main(["--results-dir", str(tmp_path), "--aggregate-envs", "A-v0"]) == 0
    summary = json.loads((tmp_path / "efficiency_summary.json").read_text())
    agg = {(a["method"], a["labels"]): a for a in summary["aggregate"]}
    assert agg["uniform", 100]["envs"] == ["A-v0"] and agg["uniform", 100]["iqm"] == pytest.approx(0.8)
    assert summary["aggregate_envs"] == ["A-v0"] and any(r["env"] == "B-v0" for r in summary["rows"])
    assert efficiency.main(["--results-dir", str(tmp_path), "--aggregate-envs", "A-v0,C-v0"]) == 2
    assert "--aggregate-envs C-v0: no run records of that env" in capsys.readouterr().err
    assert efficiency.main(["--results-dir", str(tmp_path), "--aggregate-envs", ","]) == 2
    assert "--aggregate-envs names no env" in capsys.readouterr().err


def test_reward_inputs_scores_each_input_choice_on_other_runs_pairs(tmp_path, capsys):
    from dataclasses import asdict

    from benchmarks import reward_inputs
    from prefrl.core.data import ComparisonDataset, Segments, write_json
    from prefrl.runs.config import TrainConfig

    env = "prefrl/PointMass-v0"  # 6 obs dims, 2 action dims
    for seed in (0, 1):  # two runs whose true reward is the first action dim alone: state-only inputs cannot see it
        rng, out = np.random.default_rng(seed), tmp_path / "runs" / f"run{seed}"
        out.mkdir(parents=True)
        write_json(out / "config.json", asdict(TrainConfig(env=env, out=str(out), seed=seed, labels=120)))
        data = ComparisonDataset()
        for batch in range(2):  # two batches of labels, refitted after each as the run did
            a, b = [Segments(obs=(o := rng.normal(size=(60, 10, 6)).astype(np.float32)), next_obs=o,
                             acts=(act := rng.uniform(-1, 1, size=(60, 10, 2)).astype(np.float32)),
                             mask=np.ones((60, 10), np.float32), true_rewards=act[..., 0]) for _ in "ab"]
            data.add(a, b, (a.true_returns() > b.true_returns()).astype(np.float32), "oracle", 1000 * batch)
        data.save(out / "comparisons.npz")
    args = ["--runs-dir", str(tmp_path / "runs"), "--runs", "run*", "--results-dir", str(tmp_path / "results")]
    assert reward_inputs.main([*args, "--inputs", "obs+act,obs"]) == 0
    rows = {r["inputs"]: r for r in json.loads((tmp_path / "results" / "reward_inputs.json").read_text())["rows"]}
    assert rows["obs+act"]["accuracy_mean"] > 0.85 and rows["obs+act"]["return_correlation_mean"] > 0.8
    assert rows["obs"]["accuracy_mean"] < 0.7  # the reward it needs is not in its inputs
    assert len(rows["obs"]["accuracy"]) == 2  # each run trained on, tested on the other's pairs
    assert "| prefrl/PointMass-v0 | obs+act | 2 | 120 |" in (tmp_path / "results" / "reward_inputs.md").read_text()
    other = {**rows["obs"], "task": "Other-v0"}  # an env scored by an earlier invocation keeps its row
    (tmp_path / "results" / "reward_inputs.json").write_text(json.dumps({"commands": ["earlier"], "rows": [other]}))
    assert reward_inputs.main([*args, "--inputs", "obs+act"]) == 0
    summary = json.loads((tmp_path / "results" / "reward_inputs.json").read_text())
    assert [(r["task"], r["inputs"]) for r in summary["rows"]] == [("Other-v0", "obs"), (env, "obs+act")]
    assert summary["commands"][0] == "earlier" and len(summary["commands"]) == 2
    capsys.readouterr()
    assert reward_inputs.main([*args, "--inputs", "obs+wheels"]) == 2
    assert "--inputs choice 'obs+wheels'" in capsys.readouterr().err
    assert reward_inputs.main([*args, "--runs", "nothing*"]) == 2
    assert "no env has two or more runs with labels matching 'nothing*'" in capsys.readouterr().err


def test_peer_benchmark_refuses_a_missing_peer_and_keeps_rollouts_equal(tmp_path, monkeypatch, capsys):
    import argparse

    from benchmarks import peer_imitation

    monkeypatch.setattr(sys, "argv", ["peer_imitation.py", "--peer-python", str(tmp_path / "none" / "python")])
    with pytest.raises(SystemExit) as exit_:
        peer_imitation.main()
    assert exit_.value.code == 2
    assert f"--peer-python '{tmp_path / 'none' / 'python'}': expected the python of a venv with imitation" in (
        capsys.readouterr().err)
    args = argparse.Namespace(env="HalfCheetah-v4", steps=1000, labels=10, seed=1)
    assert "--n-envs" not in peer_imitation.prefrl_cmd(args, 1, tmp_path)
    four = peer_imitation.prefrl_cmd(args, 4, tmp_path)
    assert four[four.index("--n-envs"):] == ["--n-envs", "4", "--algo-kwargs", "n_steps=512"]  # 4 x 512 = 2048
