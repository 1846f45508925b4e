"""Sweeps of preference-based RL on MuJoCo tasks against the true-reward baseline.

    python benchmarks/mujoco_sweep.py --envs Hopper-v5,HalfCheetah-v5,Walker2d-v5,Swimmer-v5 --labels 0,700 \\
        --teachers oracle --samplers uniform --seeds 0,1,2 --steps 300000 --workers 2

`--labels 0` is the true-reward baseline (same learner, same wrappers, true reward). `--teachers` takes the named
teachers of `prefrl.feedback.teachers`, or one with its rate set (`mistake0.3`: 30% of answers flipped);
`--robust none,rime` runs each preference configuration without and with RIME's label screening (`--rime-grace 0,1`:
RIME's own screen, and one that judges a label only after a fit has trained on it), `--label-noise 0,0.6` with
plain Bradley-Terry and with its label-noise floor (a share of the answers modelled as coin flips; `fit`: that share
learned from the held-out labels at every fit, `prefrl train --estimate-label-noise`), and
`--surf none,0.95` without and with SURF (pseudo-labels where the reward is 95% sure, temporal crops), and
`--pretrain 0,30000` without and with PEBBLE's pre-training (30000 env steps on a state-entropy reward before the
first labels; the true-reward baseline too, as the control, scored against the baseline without it), and
`--holdout default,0` with a third of the labels held out of reward training for early stopping (Christiano et
al.) and with none (every label trained on, as PEBBLE does), and `--upfront default,0.5` with prefrl's share of the
labels asked before any policy learning (a quarter) and with half of them, and
`--reward-inputs obs+act,default` with the reward seeing the state and action and with prefrl's default (state,
action and the action squared; `prefrl train --reward-inputs`), `--rune 0,0.05` without and with RUNE's exploration
bonus on the learned reward (`prefrl train --rune`). The sweep's own default stays obs+act, the inputs
of every run before the option, so the commands that made the committed runs make the same runs again; every
preference run names its inputs in its config, and a run id and summary row name them unless they are obs+act.
`--algo-kwargs KEY=VALUE ...` sets learner arguments of every run, baseline included (e.g.
`policy_kwargs='{"log_std_init": -1}'`, as `prefrl train --algo-kwargs` takes them); their run ids and summary rows
name them, so runs with other settings never mix; `--env-kwargs KEY=VALUE ...` sets the envs' gym.make arguments
the same way (e.g. `include_cfrc_ext_in_observation=false`: Ant-v5 without contact forces in its observation), and
`--n-envs 4` steps four envs side by side in every run (PPO's 2048-step rollout shared among them, as `prefrl train`
does; the committed runs also name it, `--algo-kwargs n_steps=512`); such runs are scored against true-reward runs
with the same env count.
Every run goes through `prefrl.train` exactly as `prefrl train` does. Per-run records land in
`benchmarks/results/runs/*.json` (the policy, reward model and labels of each run stay in
`--runs-dir`); a sweep that is stopped resumes where it was: finished runs are skipped, a run
killed half-way resumes from its checkpoint, a failed run is recorded with its error (and retried
on the next invocation) without stopping the others, and a corrupt run file is reported and re-run.

The aggregate is `benchmarks/results/mujoco_summary.json` (one row per env / method / teacher /
sampler / label budget, with `ratio_to_true_reward` against the baseline of the same env, steps
and seeds), `benchmarks/results/mujoco.md` and one plot per env, `mujoco_<env>.png`.

`--backend ray [--ray-address ADDR]` runs each training run as a Ray task (pip install
'prefrl[ray]'); the default backend is local processes. `--quick` is a tiny smoke sweep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shlex
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np

from prefrl.core.data import write_json
from prefrl.core.validation import check_choice
from prefrl.feedback.samplers import SAMPLERS
from prefrl.feedback.teachers import TEACHERS, make_teacher
from prefrl.reward.model import DEFAULT_INPUTS, input_kinds
from prefrl.reward.trainer import ROBUST, Surf
from prefrl.runs.config import TrainConfig
from prefrl.runs.options import parse_pairs
from prefrl.runs.sweep import (
    IncompatibleResults,
    Progress,
    Task,
    group_records,
    markdown_table,
    mean_or_none,
    mean_std_text,
    read_record,
    run_local,
    run_ray,
    seed_stats,
)
from prefrl.sb3.envs import check_env_id, make_env
from prefrl.sb3.hyperparams import parse_algo_kwargs
from prefrl.sb3.policies import ALGOS
from prefrl.sb3.wrappers import UncertaintyBonus

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "true_reward"
PREFERENCE = "preference"


OBS_ACT = ("obs", "act")
"""The reward inputs of every run before `--reward-inputs`: a spec's "" inputs, so those runs keep their ids."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of the sweep."""

    env: str
    algo: str
    labels: int
    teacher: str
    sampler: str
    seed: int
    steps: int
    segment_len: int = 50
    robust: str = "none"
    surf: float | None = None
    pretrain: int = 0
    algo_kwargs: str = ""
    """The learner arguments as sorted JSON ("" for SB3's defaults): text, so that a spec stays hashable."""
    holdout: float | None = None
    """The share of labels held out of reward training (`prefrl train --reward-holdout`); None: prefrl's default."""
    env_kwargs: str = ""
    """The env's gym.make arguments as sorted JSON ("" for the env's defaults)."""
    upfront: float | None = None
    """The share of labels asked before any policy learning (`prefrl train --labels-upfront`); None: prefrl's default."""
    inputs: str = ""
    """What the reward sees, kinds joined by + (`prefrl train --reward-inputs`); "": obs and act, the default of
    every run before this option (so their records, which lack it, read as what they were)."""
    n_envs: int = 1
    """Envs the learner steps side by side (`prefrl train --n-envs`)."""
    rime_grace: int = 0
    """With robust rime: fits a new label is trusted before the screen judges it (`prefrl train --rime-grace`)."""
    label_noise: float = 0.0
    """The share of answers the Bradley-Terry model takes for coin flips (`prefrl train --label-noise`)."""
    renormalize: str | None = None
    """When the reward's inputs are standardized (`prefrl train --reward-renormalize`: every, first or preserve);
    None: prefrl's default, `every` when the option came."""
    rune: float = 0.0
    """RUNE's exploration bonus on the learned reward (`prefrl train --rune`, with its default decay); 0: off."""
    fit_noise: bool = False
    """The label-noise floor learned from the held-out labels after every fit, from `label_noise`
    (`prefrl train --estimate-label-noise`)."""

    @property
    def input_kinds(self) -> list[str]:
        """What the reward sees, as `prefrl train --reward-inputs` takes it."""
        return self.inputs.split("+") if self.inputs else list(OBS_ACT)

    @property
    def method(self) -> str:
        """'true_reward' for the baseline (labels 0), else 'preference'."""
        return BASELINE if self.labels == 0 else PREFERENCE

    @property
    def run_id(self) -> str:
        """A file-name-safe unique name."""
        env = self.env.replace("/", "_")
        kw = f"__env_{kwargs_tag(self.env_kwargs)}" if self.env_kwargs else ""
        kw += f"__envs{self.n_envs}" if self.n_envs != 1 else ""
        kw += f"__kw_{kwargs_tag(self.algo_kwargs)}" if self.algo_kwargs else ""
        pre = f"__pre{self.pretrain}" if self.pretrain else ""
        if self.labels == 0:
            return f"{env}__{self.algo}__true{kw}{pre}__s{self.steps}__seed{self.seed}"
        robust = "" if self.robust == "none" else f"__{self.robust}"
        robust += f"__grace{self.rime_grace}" if self.rime_grace else ""
        robust += f"__ln{self.label_noise:g}" if self.label_noise else ""
        robust += "__lnfit" if self.fit_noise else ""
        robust += "" if self.surf is None else f"__surf{self.surf:g}"
        robust += pre + ("" if self.holdout is None else f"__ho{self.holdout:g}")
        robust += "" if self.upfront is None else f"__up{self.upfront:g}"
        robust += f"__in_{self.inputs}" if self.inputs else ""
        robust += "" if self.renormalize is None else RENORMALIZE_TAGS[self.renormalize]
        robust += f"__rune{self.rune:g}" if self.rune else ""
        return (f"{env}__{self.algo}__{self.teacher}__{self.sampler}{robust}{kw}__L{self.labels}__H{self.segment_len}"
                f"__s{self.steps}__seed{self.seed}")


def _leaves(kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key, value) of every non-mapping value, nested keys by their own name (policy_kwargs.log_std_init ->
    log_std_init)."""
    out = []
    for key, value in sorted(kwargs.items()):
        out += _leaves(value) if isinstance(value, dict) else [(key, value)]
    return out


def kwargs_tag(text: str) -> str:
    """A spec's learner arguments in a file name: `log_std_init-1` for policy_kwargs={"log_std_init": -1} (a hash
    where the names would be long)."""
    tag = re.sub(r"[^A-Za-z0-9._-]", "", "_".join(f"{k}{v}" for k, v in _leaves(json.loads(text))))
    return tag if len(tag) <= 60 else hashlib.sha1(text.encode()).hexdigest()[:12]


def _words(text: str) -> str:
    """Keyword arguments kept as JSON text in words, `log_std_init=-1`; "" for none."""
    return ", ".join(f"{k}={v}" for k, v in _leaves(json.loads(text))) if text else ""


def learner(row: dict[str, Any]) -> str:
    """A row's (or spec's) env count where not one, then its learner arguments, in words: `log_std_init=-1`,
    `n_envs=4, n_steps=512`; "" for one env and SB3's defaults."""
    n_envs = row.get("n_envs", 1)
    return ", ".join(w for w in ([f"n_envs={n_envs}"] if n_envs != 1 else []) + [_words(row.get("algo_kwargs", ""))]
                     if w)


def settings(row: dict[str, Any]) -> str:
    """A row's (or spec's) env arguments, then its learner arguments, in words; "" for the defaults of both."""
    return ", ".join(w for w in (_words(row.get("env_kwargs", "")), learner(row)) if w)


def algo_name(row: dict[str, Any]) -> str:
    """`ppo`, or `ppo (log_std_init=-1)` where the learner arguments were set."""
    return f"{row['algo']} ({learner(row)})" if learner(row) else row["algo"]


def env_name(row: dict[str, Any]) -> str:
    """`Ant-v5`, or `Ant-v5 (include_cfrc_ext_in_observation=False)` where env arguments were set."""
    words = _words(row.get("env_kwargs", ""))
    return f"{row['env']} ({words})" if words else row["env"]


def teacher_config(token: str) -> tuple[str, dict[str, float]]:
    """A sweep's teacher: a named teacher (`mistake`), or one with its own rate set (`mistake0.3`: 30% of answers
    flipped; also `skip0.2`, `equal0.1`)."""
    match = re.fullmatch(r"([a-z_]+?)(\d+(?:\.\d+)?)?", token)
    name, rate = (match.group(1), match.group(2)) if match else (token, None)
    check_choice("teacher", name, TEACHERS)
    if rate is None:
        return name, {}
    if name not in RATED_TEACHERS:
        raise ValueError(f"teacher {token!r}: a rate can follow only {', '.join(RATED_TEACHERS)} (e.g. mistake0.3)")
    make_teacher(name, **{name: float(rate)})  # refuses a rate outside [0, 1]
    return name, {name: float(rate)}


RATED_TEACHERS = ("mistake", "skip", "equal")  # teachers named after the field they set


# --------------------------------------------------------------------------- input
def _int_list(name: str, text: str, allow_zero: bool) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            value = None
        if value is None or value < 0 or (value == 0 and not allow_zero) or str(value) != part.strip():
            what = "non-negative integers (0 = the true-reward baseline)" if allow_zero else "positive integers"
            raise ValueError(f"--{name} value {part!r} is invalid: expected {what}")
        values.append(value)
    return values


def _one_int(name: str, text: str) -> int:
    """A positive integer option that takes one value (a sweep over it is several commands)."""
    if "," in str(text):
        raise ValueError(f"--{name} value {text!r} is invalid: expected one positive integer")
    (value,) = _int_list(name, str(text), allow_zero=False)
    return value


def _surf(token: str) -> float | None:
    """`none`, or SURF's confidence threshold."""
    if token == "none":
        return None
    try:
        return Surf(threshold=float(token)).threshold
    except ValueError:
        raise ValueError(f"--surf value {token!r} is invalid: expected none or a threshold in [0.5, 1]") from None


def _bonus(token: str) -> float:
    """RUNE's bonus weight: 0 (off) or a finite number above it."""
    try:
        return UncertaintyBonus(float(token)).beta
    except ValueError:
        raise ValueError(f"--rune value {token!r} is invalid: expected 0 (off) or a finite weight above 0") from None


def _share(option: str, token: str, top_included: bool = False) -> float | None:
    """`default` (prefrl's), or a share in [0, 1) ([0, 1] with `top_included`)."""
    if token == "default":
        return None
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not (0 <= value <= 1 if top_included else 0 <= value < 1):
        raise ValueError(f"--{option} value {token!r} is invalid: expected default or a share in "
                         f"[0, 1{']' if top_included else ')'}")
    return value


def _noise(token: str) -> tuple[float, bool]:
    """A label-noise floor and whether it is fitted: `fit` (learned from 0), or a share in [0, 1) (`default`: 0)."""
    if token == "fit":
        return 0.0, True
    try:
        return _share("label-noise", token) or 0.0, False
    except ValueError:
        raise ValueError(f"--label-noise value {token!r} is invalid: expected default, fit or a share in [0, 1)") from None


def _inputs(token: str) -> str:
    """Input kinds joined by +, in RewardModel's order; `default`: prefrl's (DEFAULT_INPUTS). obs+act, the default
    of every run before the option existed, is "", so those runs keep their ids and rows."""
    kinds = list(DEFAULT_INPUTS) if token == "default" else token.split("+")
    text = "+".join(input_kinds(kinds, f"--reward-inputs value {token!r}", "default or ", " joined by +"))
    return "" if text == "+".join(OBS_ACT) else text


RENORMALIZE_TAGS = {"every": "__renorm", "first": "__fixin", "preserve": "__keepfn"}
"""--reward-renormalize's values other than default, and how a run id names them."""


def parse_specs(args: argparse.Namespace) -> list[RunSpec]:
    """Validate every option before any run starts, and expand the grid into runs."""
    envs = [e for e in args.envs.split(",") if e]
    for env in envs:
        check_env_id(env)
    check_choice("method/algo", args.algo, ALGOS)
    teachers, samplers = args.teachers.split(","), args.samplers.split(",")
    for t in teachers:
        teacher_config(t)
    robust = args.robust.split(",")
    for r in robust:
        check_choice("robust", r, ROBUST)
    for s in samplers:
        check_choice("sampler", s, SAMPLERS)
    surfs = [_surf(t) for t in args.surf.split(",")]
    holdouts = [_share("holdout", t) for t in args.holdout.split(",")]
    upfronts = [_share("upfront", t, top_included=True) for t in args.upfront.split(",")]
    inputs = [_inputs(t) for t in args.reward_inputs.split(",")]
    renorms = args.reward_renormalize.split(",")
    for r in renorms:
        check_choice("reward-renormalize", r, ("default", *RENORMALIZE_TAGS))
    pretrains = _int_list("pretrain", args.pretrain, allow_zero=True)
    graces = _int_list("rime-grace", args.rime_grace, allow_zero=True)
    noises = [_noise(t) for t in args.label_noise.split(",")]
    runes = [_bonus(t) for t in args.rune.split(",")]
    screens = [(r, g) for r in robust for g in graces if r == "rime" or g == 0]
    labels = _int_list("labels", args.labels, allow_zero=True)
    seeds = _int_list("seeds", args.seeds, allow_zero=True)
    steps, segment_len, n_envs = (_one_int(n, v) for n, v in (("steps", args.steps), ("segment-len", args.segment_len),
                                                                ("n-envs", args.n_envs)))
    kwargs = parse_pairs(args.algo_kwargs, "--algo-kwargs")
    env_kwargs = parse_pairs(args.env_kwargs, "--env-kwargs")
    for env in envs:
        parse_algo_kwargs(kwargs, env_id=env)  # refuses what the learner or prefrl would refuse
        if env_kwargs:
            make_env(check_env_id(env), env_kwargs).close()  # refuses what the env's constructor would refuse
    algo_kwargs = json.dumps(kwargs, sort_keys=True) if kwargs else ""
    env_text = json.dumps(env_kwargs, sort_keys=True) if env_kwargs else ""
    specs: list[RunSpec] = []
    for env in envs:
        for n in labels:
            combos = ([("-", "-", ("none", 0), (0.0, False), None, pre, None, None, "", None, 0.0) for pre in pretrains]
                      if n == 0 else
                      [(t, s, r, ln, u, pre, h, up, i, None if rn == "default" else rn, b) for t in teachers
                       for s in samplers for r in screens for ln in noises for u in surfs for pre in pretrains
                       for h in holdouts for up in upfronts for i in inputs for rn in renorms for b in runes])
            for teacher, sampler, (rob, grace), (noise, fit), surf, pre, holdout, upfront, inp, renorm, rune in combos:
                for seed in seeds:
                    specs.append(RunSpec(env, args.algo, n, teacher, sampler, seed, steps, segment_len, rob, surf,
                                         pre, algo_kwargs, holdout, env_text, upfront, inp, n_envs, grace, noise,
                                         renorm, rune, fit))
    return specs


def make_task(spec: RunSpec, results: Path, runs_dir: Path) -> Task:
    """The `prefrl train` config of one run (labels 0: the same learner on the true reward)."""
    teacher, teacher_kwargs = teacher_config(spec.teacher) if spec.labels else ("oracle", {})
    config = asdict(TrainConfig(
        env=spec.env, out=str(runs_dir / spec.run_id), algo=spec.algo, seed=spec.seed, steps=spec.steps,
        segment_len=spec.segment_len, reward="learned" if spec.labels else "true", labels=spec.labels or 1,
        teacher=teacher, teacher_kwargs=teacher_kwargs, sampler=spec.sampler if spec.labels else "uniform",
        robust=spec.robust, surf=spec.surf, pretrain_steps=spec.pretrain,
        algo_kwargs=json.loads(spec.algo_kwargs) if spec.algo_kwargs else {},
        env_kwargs=json.loads(spec.env_kwargs) if spec.env_kwargs else {},
        **({"reward_holdout": spec.holdout} if spec.holdout is not None else {}),
        **({"labels_upfront": spec.upfront} if spec.upfront is not None else {}),
        **({"reward_inputs": spec.input_kinds} if spec.labels else {}),
        **({"n_envs": spec.n_envs} if spec.n_envs != 1 else {}),
        **({"rime_grace": spec.rime_grace} if spec.rime_grace else {}),
        **({"label_noise": spec.label_noise} if spec.label_noise else {}),
        **({"estimate_label_noise": True} if spec.fit_noise else {}),
        **({"reward_renormalize": spec.renormalize} if spec.renormalize is not None else {}),
        **({"rune": spec.rune} if spec.rune else {}),
    ))
    return Task(spec.run_id, config, str(record_path(results, spec)), {"spec": asdict(spec), "method": spec.method})


def record_path(results: Path, spec: RunSpec) -> Path:
    """Where the record of one run lives."""
    return results / "runs" / f"{spec.run_id}.json"


# -------------------------------------------------------------------- aggregate
ROW_KEYS = ("env", "algo", "method", "teacher", "sampler", "robust", "rime_grace", "label_noise", "fit_noise", "surf",
            "pretrain",
            "holdout", "upfront", "inputs", "renormalize", "rune", "labels", "steps", "segment_len", "algo_kwargs", "env_kwargs",
            "n_envs")
"""What makes runs one summary row (all but the seed)."""
_OPTION_DEFAULTS = {f.name: f.default for f in dataclass_fields(RunSpec) if f.default is not MISSING}  # older records


def is_baseline(row: dict[str, Any]) -> bool:
    """Whether a row (or spec) is a plain true-reward run, what preference runs are scored against: no labels, and
    not the true reward after PEBBLE's pre-training (its control)."""
    return row["labels"] == 0 and not row.get("pretrain")


def aggregate(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows over seeds (std: sample std, ddof=1); ratio_to_true_reward uses the baseline with the same env,
    env arguments, steps, seeds, env count and learner arguments."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        values = {**_OPTION_DEFAULTS, **r["spec"], "method": r["method"]}
        return tuple(values[k] for k in ROW_KEYS)

    def same_baseline(fields: dict[str, Any]) -> tuple[Any, ...]:
        return (fields["env"], fields["algo"], fields["steps"], fields["algo_kwargs"], fields["env_kwargs"],
                fields["n_envs"])

    def order(fields: dict[str, Any]) -> tuple[Any, ...]:
        return (fields["env"], fields["env_kwargs"], fields["labels"], fields["teacher"], fields["sampler"],
                fields["robust"], fields["rime_grace"], fields["label_noise"], fields["fit_noise"], fields["surf"] or 0,
                fields["pretrain"],
                fields["n_envs"], fields["algo_kwargs"],
                -1 if fields["holdout"] is None else fields["holdout"], -1 if fields["upfront"] is None else fields["upfront"],
                fields["inputs"], fields["renormalize"] or "", fields["rune"])

    groups = sorted(((dict(zip(ROW_KEYS, k)), v) for k, v in group_records(records, key).items()),
                    key=lambda group: order(group[0]))
    baselines = {same_baseline(fields): {r["spec"]["seed"]: r["metrics"]["true_return"] for r in runs}
                 for fields, runs in groups if is_baseline(fields)}
    rows = []
    for fields, runs in groups:
        seeds = sorted(r["spec"]["seed"] for r in runs)
        mean, std = seed_stats(r["metrics"]["true_return"] for r in runs)
        base = baselines.get(same_baseline(fields), {})
        common = [s for s in seeds if s in base]
        baseline, ratio = is_baseline(fields), None
        if common and not baseline:  # a true-reward run after PEBBLE's pre-training too: against the plain one
            mine = np.mean([r["metrics"]["true_return"] for r in runs if r["spec"]["seed"] in common])
            ref = np.mean([base[s] for s in common])
            ratio = float(mine / ref) if ref > 0 else None  # a ratio of returns means nothing below 0
        rows.append({
            **fields, "seeds": seeds,
            "true_return_mean": mean, "true_return_std": std,
            "ratio_to_true_reward": 1.0 if baseline else ratio,
            "ratio_seeds": seeds if baseline else common,
            "reward_correlation_mean": mean_or_none(r["metrics"].get("reward_correlation") for r in runs),
            "labels_answered_mean": mean_or_none(r["metrics"].get("labels_answered") for r in runs),
            "pref_accuracy_heldout_mean": mean_or_none(r["metrics"].get("pref_accuracy_heldout") for r in runs),
            "wall_seconds_mean": float(np.mean([r["metrics"]["wall_seconds"] for r in runs])),
        })
    return rows


SCREENING = ("robust", "rime_grace", "label_noise", "fit_noise")
"""The fields of a spec that `screen` puts in words: how the labels were distrusted."""


def unscreened(row: dict[str, Any]) -> dict[str, Any]:
    """The same row (or spec) with plain Bradley-Terry: no label screening and no label-noise floor."""
    return {**row, **{k: _OPTION_DEFAULTS[k] for k in SCREENING}}


def screen(row: dict[str, Any]) -> str:
    """A row's (or spec's) label screening in words: `none`, `rime`, or `rime grace 1` with a grace fit for new
    labels; `label noise 0.6` where the Bradley-Terry model took that share of answers for coin flips, `label noise
    fitted` where that share was learned from the held-out labels at every fit (`fitted from 0.2`: starting there)."""
    grace, noise, fit = row.get("rime_grace"), row.get("label_noise"), row.get("fit_noise")
    words = row.get("robust", "none") + (f" grace {grace}" if grace else "")
    if noise or fit:
        floor = (f"fitted from {noise:g}" if noise else "fitted") if fit else f"{noise:g}"
        words = ("" if words == "none" else f"{words}, ") + f"label noise {floor}"
    return words


def variants(row: dict[str, Any]) -> list[str]:
    """What a row (or spec) added to its query sampler, in words: its `screen` where the labels were distrusted
    (`rime`, `rime grace 1`, `label noise 0.6`), `surf 0.95` where SURF added pseudo-labels, `pretrain 30000` after
    PEBBLE's pre-training, `holdout 0` where no labels were held out of reward training, `upfront 0.5` where half the
    labels were asked before any policy learning, `inputs obs+act+act_sq` where the reward saw other inputs than state
    and action, `standardize first` where the reward kept its first fit's input standardization (`standardize
    preserve` where the first layer took each re-standardization in), `rune 0.05` where RUNE's exploration bonus was
    added to the learned reward, `n_envs 4` where the learner stepped several envs (records from before an option have
    no key for it)."""
    robust, surf, pretrain = screen(row), row.get("surf"), row.get("pretrain", 0)
    holdout, upfront, inputs, n_envs = row.get("holdout"), row.get("upfront"), row.get("inputs"), row.get("n_envs", 1)
    renorm, rune = row.get("renormalize"), row.get("rune")
    return [*([robust] if robust != "none" else []), *([f"surf {surf:g}"] if surf else []),
            *([f"pretrain {pretrain}"] if pretrain else []), *([f"holdout {holdout:g}"] if holdout is not None else []),
            *([f"upfront {upfront:g}"] if upfront is not None else []), *([f"inputs {inputs}"] if inputs else []),
            *([f"standardize {renorm}"] if renorm else []), *([f"rune {rune:g}"] if rune else []),
            *([f"n_envs {n_envs}"] if n_envs != 1 else [])]


def queries(row: dict[str, Any]) -> str:
    """How a row's (or spec's) labels were asked for and used: the sampler, then its `variants`."""
    return " + ".join([row["sampler"], *variants(row)])


def write_markdown(rows: list[dict[str, Any]], path: Path, commands: list[str]) -> None:
    """The summary as a markdown table, under the commands that produced its runs."""
    fmt = lambda v, f="{:.2f}": "–" if v is None else f.format(v)  # noqa: E731
    table = []
    for r in rows:
        answered = "" if r["labels_answered_mean"] is None or r["method"] == BASELINE else f" ({r['labels_answered_mean']:.0f})"
        table.append([env_name(r), f"{algo_name(r)} {r['method']}", r["teacher"], queries(r), f"{r['labels']}{answered}",
                      r["steps"], len(r["seeds"]), mean_std_text(r["true_return_mean"], r["true_return_std"]),
                      fmt(r["ratio_to_true_reward"]), fmt(r["reward_correlation_mean"], "{:.3f}")])
    lines = ["Produced by:", *[f"- `{c}`" for c in commands], "",
             *markdown_table(["env", "method", "teacher", "sampler", "labels (answered)", "steps", "seeds",
                              "true return (mean ± std)", "ratio to true reward", "reward corr."], table),
             *(["", "sampler + rime: the labels screened by RIME at every epoch of the reward fits (`--robust rime`)."]
               if any(r.get("robust", "none") != "none" for r in rows) else []),
             *(["", "sampler + surf T: SURF at every reward fit (`--surf T`): pseudo-labels on unlabelled pairs of the "
                "run's segments where the reward is at least T sure, and temporal crops."]
               if any(r.get("surf") for r in rows) else []),
             *(["", "sampler + pretrain N: PEBBLE's pre-training before the first labels (`--pretrain-steps N`): N "
                "env steps on a state-entropy reward, so the first queries see varied behaviour. In a true_reward row "
                "the same pre-training comes before the true reward, and its ratio is to the baseline without it."]
               if any(r.get("pretrain") for r in rows) else []),
             *(["", "sampler + holdout F: a share F of the labels held out of reward training for early stopping "
                "(`--reward-holdout F`; prefrl's default 1/e, Christiano et al.). With 0 every label is trained on "
                "until each member ranks 97% of its pairs right, as PEBBLE and B-Pref do."]
               if any(r.get("holdout") is not None for r in rows) else []),
             *(["", "sampler + upfront F: a share F of the labels asked before any policy learning, on the random-action "
                "warm-up's segments (`--labels-upfront F`; prefrl's default 0.25)."]
               if any(r.get("upfront") is not None for r in rows) else []),
             *(["", "sampler + inputs K: the reward saw the inputs K instead of the state and action (`--reward-inputs`; "
                "act_sq: the action squared, the shape of the envs' control cost; obs+act+act_sq is prefrl's default "
                "since these runs, obs+act was before)."]
               if any(r.get("inputs") for r in rows) else []),
             *(["", "sampler + standardize M: when the reward's inputs were standardized (`--reward-renormalize M`): "
                "at the first fit only (first), or at every refit with the first layer taking the change in so the "
                "reward starts each fit as the same function (preserve); prefrl's default for preference-only runs "
                "re-standardizes from the labelled pairs at every refit while the weights warm-start (every)."]
               if any(r.get("renormalize") is not None for r in rows) else []),
             *(["", "sampler + rune B: RUNE's exploration bonus (`--rune B`): the policy's reward is the learned reward "
                "plus B times the std of the ensemble members' rewards, B shrinking by 1e-5 per env step."]
               if any(r.get("rune") for r in rows) else []),
             "", "std: sample standard deviation across seeds (ddof=1). ratio to true reward: mean true return over "
             "the baseline's (same env and env arguments, steps, seeds, learner arguments); undefined (–) where the baseline's mean return is not positive."]
    short = [f"{env_name(r)} ({r['labels']} {r['teacher']} labels, {queries(r)}: {r['ratio_to_true_reward']:.2f})"
             for r in rows if r["ratio_to_true_reward"] is not None and r["ratio_to_true_reward"] < 0.9]
    if short:
        lines += ["", "Below 0.9 of the true-reward baseline: " + "; ".join(short) + "."]
    path.write_text("\n".join(lines) + "\n")


def plot_env(env: str, records: list[dict[str, Any]], path: Path) -> None:
    """True return vs env steps per method (mean and a band of one std over seeds), learned return beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        s = r["spec"]
        name = f"{algo_name(s)} true reward" if r["method"] == BASELINE else \
            f"{algo_name(s)} {s['labels']} {s['teacher']} labels, {queries(s)}"
        name = f"{name} ({_words(s['env_kwargs'])})" if s.get("env_kwargs") else name
        groups[name].append(r)
    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, runs in sorted(groups.items()):
        n = min(len(r["metrics"]["history"]) for r in runs)
        steps = np.mean([[h["env_steps"] for h in r["metrics"]["history"][:n]] for r in runs], axis=0)
        true = np.array([[h["true_return"] for h in r["metrics"]["history"][:n]] for r in runs])
        line = ax_t.plot(steps, true.mean(0), label=f"{name} ({len(runs)} seeds)")[0]
        ax_t.fill_between(steps, true.mean(0) - true.std(0), true.mean(0) + true.std(0), color=line.get_color(), alpha=0.2)
        learned = [[h.get("learned_return") for h in r["metrics"]["history"][:n]] for r in runs]
        if all(v is not None for row in learned for v in row):
            lr = np.array(learned, dtype=float)
            ax_l.plot(steps, lr.mean(0), color=line.get_color(), label=name)
            ax_l.fill_between(steps, lr.mean(0) - lr.std(0), lr.mean(0) + lr.std(0), color=line.get_color(), alpha=0.2)
    ax_t.set(title=f"{env}: true return", xlabel="env steps", ylabel="episode return")
    ax_l.set(title="learned return (what the agent optimizes)", xlabel="env steps", ylabel="episode return")
    for ax in (ax_t, ax_l):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: Path, command: str) -> list[dict[str, Any]]:
    """Aggregate every finished run in `results` (this sweep's and earlier ones') into the summary
    JSON, markdown and plots; the commands that produced them are kept alongside."""
    records = []
    for path in sorted((results / "runs").glob("*.json")):
        try:
            rec = read_record(path)
        except ValueError:
            continue  # reported (and re-run) when a sweep that covers it starts
        if rec is not None and rec["status"] == "ok" and "spec" in rec:
            records.append(rec)
    try:
        commands = json.loads((results / "mujoco_summary.json").read_text()).get("commands", [])
    except (OSError, json.JSONDecodeError):
        commands = []
    commands = [c for c in commands if c != command] + [command]
    rows = aggregate(records)
    write_json(results / "mujoco_summary.json", {"commands": commands, "rows": rows})
    write_markdown(rows, results / "mujoco.md", commands)
    for env in sorted({r["spec"]["env"] for r in records}):
        plot_env(env, [r for r in records if r["spec"]["env"] == env], results / f"mujoco_{env.replace('/', '_')}.png")
    return rows


# -------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the sweep."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5,Walker2d-v5,Swimmer-v5")
    p.add_argument("--algo", default="ppo", help="the SB3 learner of every run (ppo or sac)")
    p.add_argument("--labels", default="0,700", help="label budgets; 0 = the true-reward baseline")
    p.add_argument("--teachers", default="oracle")
    p.add_argument("--samplers", default="uniform")
    p.add_argument("--robust", default="none", help="label screening of the preference runs: none, rime (or both)")
    p.add_argument("--rime-grace", default="0", help="with rime: fits a new label is trusted before the screen judges "
                   "it, 0 (RIME's own screen) and/or more, comma-separated")
    p.add_argument("--label-noise", default="0", help="share of answers the Bradley-Terry model takes for coin flips "
                   "(prefrl train --label-noise): 0 (none) and/or shares in [0, 1), and/or fit (learned from the held-out "
                   "labels at every fit, prefrl train --estimate-label-noise), comma-separated")
    p.add_argument("--surf", default="none", help="SURF in the preference runs: none, or its confidence threshold "
                                                  "(e.g. 0.95), or several (none,0.95)")
    p.add_argument("--pretrain", default="0", help="PEBBLE pre-training steps before the first labels (or the true "
                                                   "reward of a baseline): 0 (none), a number, or several (0,30000)")
    p.add_argument("--upfront", default="default", help="share of the labels asked before any policy learning: "
                   "default (prefrl's, 0.25) and/or shares in [0, 1], comma-separated")
    p.add_argument("--reward-inputs", default="obs+act", help="what the reward sees: input kinds joined by + and/or "
                   f"default (prefrl's: {'+'.join(DEFAULT_INPUTS)}), comma-separated; obs+act (the sweep's default): "
                   "what every run before the option saw, so earlier commands make the same runs")
    p.add_argument("--holdout", default="default", help="share of the labels held out of reward training: default "
                                                        "(prefrl's, 1/e), a share in [0, 1), or several (default,0)")
    p.add_argument("--algo-kwargs", nargs="*", metavar="KEY=VALUE", default=None,
                   help="learner arguments of every run, baseline included, as prefrl train --algo-kwargs takes them")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", default=None,
                   help="gym.make arguments of every env, baseline included, as prefrl train --env-kwargs takes them")
    p.add_argument("--rune", default="0", help="RUNE's exploration bonus on the learned reward (prefrl train --rune): "
                   "0 (off) and/or weights, comma-separated (0,0.05)")
    p.add_argument("--reward-renormalize", default="default", help="when the reward's inputs are standardized: "
                   "default (prefrl's), every (each refit), first (the first fit's kept) or preserve (each refit, the "
                   "reward kept the same function), or several joined by ,")
    p.add_argument("--n-envs", default="1", help="envs each learner steps side by side, baseline included (prefrl "
                   "train --n-envs: PPO's 2048-step rollout is shared among them)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="300000")
    p.add_argument("--segment-len", default="50")
    p.add_argument("--workers", type=int, default=2, help="runs at a time (local backend)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start or join a local Ray)")
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--runs-dir", default="runs/mujoco", help="where each run's policy, reward model and labels go")
    p.add_argument("--summarize-only", action="store_true", help="only rebuild the summary from finished runs")
    p.add_argument("--quick", action="store_true", help="smoke test: one env, one seed, tiny steps")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the sweep; returns 0, or 2 with one clear line for bad input."""
    args = build_parser().parse_args(argv)
    if args.quick:  # the first env and seed, the baseline and 20 labels, 3000 steps
        args.envs, args.seeds = args.envs.split(",")[0], args.seeds.split(",")[0]
        args.labels, args.steps, args.segment_len = "0,20", "3000", "20"
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--summarize-only"]
    command = "python benchmarks/mujoco_sweep.py " + shlex.join(given)  # the command that produces the runs
    results, runs_dir = Path(args.results_dir), Path(args.runs_dir)
    try:
        specs = parse_specs(args)
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        todo, corrupt = [], []
        for spec in specs:  # every record is checked before any run starts
            try:
                rec = read_record(record_path(results, spec))
            except IncompatibleResults:
                raise
            except ValueError as exc:
                corrupt.append(str(exc))
                rec = None
            if rec is None or rec["status"] != "ok":
                todo.append(make_task(spec, results, runs_dir))
    except ValueError as exc:
        print(f"mujoco_sweep.py: error: {exc}", file=sys.stderr)
        return 2
    for msg in corrupt:
        print(f"mujoco_sweep.py: {msg}: running it again", file=sys.stderr)
    if not args.summarize_only:
        done = len(specs) - len(todo)
        if done:
            print(f"mujoco_sweep.py: {done} of {len(specs)} runs already finished, skipping them", file=sys.stderr)
        progress = Progress(len(specs), done)
        if args.backend == "ray":
            run_ray(todo, args.ray_address, progress)
        else:
            run_local(todo, args.workers, progress)
    rows = summarize(results, command)
    print(json.dumps({"runs": len(specs), "summary_rows": len(rows),
                      "summary": str(results / "mujoco_summary.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
