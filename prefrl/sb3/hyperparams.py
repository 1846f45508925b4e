"""RL Baselines3 Zoo hyperparameter files (hyperparams/ppo.yml, sac.yml, ...) and `--algo-kwargs`, turned into
arguments of the SB3 learner the way rl_zoo3's ExperimentManager does, but without `eval`.

A Zoo file maps env ids to settings, e.g.::

    Hopper-v4:
      normalize: true
      n_envs: 1
      policy: 'MlpPolicy'
      n_timesteps: !!float 1e6
      learning_rate: lin_3e-4
      policy_kwargs: "dict(log_std_init=-2, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]))"

`normalize`, `n_envs`, `n_timesteps`, `policy` and `env_kwargs` describe the run, the rest goes to the learner's
constructor. Python-expression strings (policy_kwargs, replay_buffer_kwargs, normalize) are read by a small `ast`
whitelist: literals, `dict(...)`, and a few named torch classes.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.vec_env import VecNormalize

__all__ = [
    "ALLOWED_NAMES",
    "LinearToZero",
    "ZooHyperparams",
    "load_zoo_hyperparams",
    "make_action_noise",
    "parse_algo_kwargs",
    "parse_python_literal",
]

# The names a policy_kwargs string may use, in the spellings Zoo files use (rl_zoo3 evals them with
# `torch as th` and `torch.nn as nn` in scope). Classes only: nothing here runs code when named.
_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU")
_OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD")
ALLOWED_NAMES: dict[str, type] = {
    **{f"{prefix}.{name}": getattr(torch.nn, name) for prefix in ("nn", "th.nn", "torch.nn") for name in _ACTIVATIONS},
    **{f"{prefix}.{name}": getattr(torch.optim, name) for prefix in ("th.optim", "torch.optim") for name in _OPTIMIZERS},
    "RMSpropTFLike": RMSpropTFLike,  # Zoo's a2c.yml: optimizer_class=RMSpropTFLike
}
"""Dotted names allowed in policy_kwargs expressions, and the classes they stand for."""

POLICIES = ("MlpPolicy", "MultiInputPolicy")
"""Zoo `policy` values prefrl can use (it feeds the learner vector or dict observations, never images)."""

# Keys rl_zoo3 turns into linear schedules when given as "lin_<value>" (delta_std: ARS).
_SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf", "delta_std")
# Keys whose strings are Python expressions in Zoo files.
_EXPRESSION_KEYS = ("policy_kwargs", "replay_buffer_kwargs")
# In a mapping-form policy_kwargs these values name classes ("activation_fn: nn.ReLU").
_CLASS_VALUED = ("activation_fn", "optimizer_class")

# Zoo keys whose effect prefrl cannot reproduce; a run that silently dropped them would not be the tuned one.
_UNSUPPORTED: dict[str, str] = {
    "frame_stack": "prefrl does not stack frames",
    "env_wrapper": "prefrl builds the env itself; register a wrapped env and pass it as module:EnvId instead",
    "vec_env_wrapper": "prefrl builds the vector env itself",
    "callback": "prefrl runs its own callbacks",
    "monitor_kwargs": "prefrl wraps each env in its own Monitor",
    "normalize_kwargs": "write them as a mapping under `normalize` instead",
    "replay_buffer_class": "a custom replay buffer (e.g. HER) recomputes rewards and would bypass the learned reward",
    # The old HER format of rl-baselines3-zoo < 1.0:
    "model_class": "old HER format",
    "n_sampled_goal": "old HER format",
    "goal_selection_strategy": "old HER format",
    "online_sampling": "old HER format",
    "max_episode_length": "old HER format",
}
# Set by prefrl itself when it builds the learner; a second value would clash in the constructor call.
_SET_BY_PREFRL: dict[str, str] = {
    "env": "prefrl passes the env",
    "seed": "use --seed",
    "verbose": "prefrl sets it",
    "tensorboard_log": "prefrl writes TensorBoard logs to the run directory",
}
# Run settings that are not learner arguments (read from a Zoo file, refused in --algo-kwargs).
_RUN_SETTINGS: dict[str, str] = {
    "policy": "prefrl builds an MlpPolicy",
    "n_envs": "use --n-envs",
    "n_timesteps": "use --steps",
    "normalize": "set it in a --hyperparams file",
    "env_kwargs": "use --env-kwargs",
}

# PyYAML (YAML 1.1) reads `1e-4` without a dot as a string; Zoo files write !!float for that, people forget.
_EXPONENT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_SCHEDULE = re.compile(r"(lin|linear)_(.+)")


class LinearToZero:
    """Linear schedule from `initial_value` (start of training) to 0 (end): SB3 passes progress_remaining 1 -> 0."""

    def __init__(self, initial_value: float):
        self.initial_value = float(initial_value)

    def __call__(self, progress_remaining: float) -> float:
        """The value at this point of training."""
        return progress_remaining * self.initial_value

    def __repr__(self) -> str:
        return f"LinearToZero({self.initial_value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinearToZero) and other.initial_value == self.initial_value

    def __hash__(self) -> int:
        return hash(("LinearToZero", self.initial_value))


@dataclass
class ZooHyperparams:
    """One env's entry of a Zoo hyperparameter file, split into learner arguments and run settings."""

    algo_kwargs: dict[str, Any]
    """Keyword arguments of the SB3 constructor (schedules as callables, policy_kwargs parsed, action noise built)."""
    n_envs: int | None
    """Parallel envs the entry was tuned with (None: not given)."""
    normalize: dict[str, Any] | None
    """VecNormalize keyword arguments (gamma follows the learner's), or None: no normalization."""
    n_timesteps: int | None
    """The entry's training budget: reported, not applied (prefrl's --steps decides)."""
    source_key: str
    """The file's key that was used (another version of the env when the exact id is absent)."""
    raw: dict[str, Any]
    """The entry as written (original strings such as "lin_3e-4"), JSON-safe, for config.json."""
    policy: str = "MlpPolicy"
    """The entry's policy: one of POLICIES."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """gym.make keyword arguments the entry sets (the caller merges them under its own)."""


# --------------------------------------------------------------------------- safe expressions
def _dotted_name(node: ast.AST) -> str | None:
    """"th.nn.ReLU" for the Name/Attribute chain th.nn.ReLU, None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.AST, expr: str, what: str) -> Any:
    """The value of one whitelisted expression node; ValueError naming the expression for anything else."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and \
            isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)) and \
            not isinstance(node.operand.value, bool):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.List):
        return [_literal(e, expr, what) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e, expr, what) for e in node.elts)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):  # a None key is `**spread`
        keys = [_literal(k, expr, what) for k in node.keys]
        if not all(isinstance(k, (str, int, float, bool, type(None))) for k in keys):
            raise ValueError(f"{what} {expr!r}: dict keys must be plain constants, got {keys!r}")
        return dict(zip(keys, (_literal(v, expr, what) for v in node.values)))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and \
            not node.args and all(k.arg is not None for k in node.keywords):
        return {k.arg: _literal(k.value, expr, what) for k in node.keywords}
    name = _dotted_name(node)
    if name in ALLOWED_NAMES:
        return ALLOWED_NAMES[name]
    shown = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise ValueError(f"{what} {expr!r}: {shown!r} is not allowed; expected literals (numbers, strings, lists, "
                     f"tuples, dicts, True/False/None), dict(...) and the names {sorted(ALLOWED_NAMES)}")


def parse_python_literal(expr: str, what: str = "expression") -> Any:
    """The value of a Zoo-style Python expression such as "dict(net_arch=[64, 64], activation_fn=nn.ReLU)",
    read with `ast` (never eval): literals, dict(...) and ALLOWED_NAMES only; ValueError naming it otherwise."""
    if not isinstance(expr, str):
        raise ValueError(f"{what} must be a string expression, got {expr!r}")
    if len(expr) > 100_000:  # a guard against pathological input, far above any real policy_kwargs
        raise ValueError(f"{what} is {len(expr)} characters long: expected a short expression")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
        return _literal(tree.body, expr, what)
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(f"{what} {expr!r} is not a valid expression ({type(exc).__name__}: {exc}); "
                         f"expected e.g. dict(net_arch=[64, 64])") from exc


# --------------------------------------------------------------------------- value conversions
def _coerce_number(value: Any) -> Any:
    """'1e-4' (what PyYAML makes of 1e-4 without !!float) -> 0.0001; anything else unchanged."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def _schedule(key: str, value: Any, where: str) -> Any:
    """A number (kept: SB3 makes it constant), a callable, or 'lin_X'/'linear_X' -> LinearToZero(X)."""
    if callable(value) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        match = _SCHEDULE.fullmatch(value.strip())
        if match:
            try:
                initial = float(match.group(2))
            except ValueError:
                initial = math.nan
            if math.isfinite(initial) and initial > 0:
                return LinearToZero(initial)
    raise ValueError(f"{where}: {key}={value!r}: expected a number or a linear schedule 'lin_<initial value>' "
                     f"(e.g. lin_3e-4) with a positive finite initial value")


def _resolve_classes(value: Any, key: str, where: str) -> Any:
    """In a mapping-form policy_kwargs, turn 'nn.ReLU'-style strings under activation_fn/optimizer_class into classes."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _CLASS_VALUED and isinstance(v, str):
                if v.strip() not in ALLOWED_NAMES:
                    raise ValueError(f"{where}: {key}.{k}={v!r}: expected one of {sorted(ALLOWED_NAMES)}")
                out[k] = ALLOWED_NAMES[v.strip()]
            else:
                out[k] = _resolve_classes(v, key, where)
        return out
    if isinstance(value, list):
        return [_resolve_classes(v, key, where) for v in value]
    return value


def _kwargs_value(key: str, value: Any, where: str) -> dict[str, Any]:
    """policy_kwargs / replay_buffer_kwargs: an expression string or a mapping -> a dict."""
    if isinstance(value, str):
        value = parse_python_literal(value, f"{where}: {key}")
    elif isinstance(value, dict):
        value = _resolve_classes(value, key, where)
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {key}={value!r}: expected a mapping or a dict(...) expression")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{where}: {key} has non-string keys {bad!r}: expected keyword names")
    return value


def _train_freq(value: Any, where: str) -> Any:
    """[1, "episode"] -> (1, "episode") as rl_zoo3 does; an int stays an int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or isinstance(value[0], bool) or not isinstance(value[0], int) or \
                value[1] not in ("step", "episode"):
            raise ValueError(f"{where}: train_freq={value!r}: expected an int or [n, 'step' | 'episode']")
        return tuple(value)
    return value


def make_action_noise(noise_type: str, noise_std: Any, action_space: gym.Space) -> ActionNoise:
    """Zoo's noise_type ('normal' or 'ornstein-uhlenbeck') and noise_std (scalar or one per action) -> ActionNoise."""
    if not isinstance(action_space, gym_spaces.Box):
        raise ValueError(f"noise_type={noise_type!r} needs a continuous (Box) action space, got {action_space}")
    n = int(np.prod(action_space.shape))
    try:
        sigma = np.broadcast_to(np.asarray(noise_std, dtype=np.float64), (n,)).copy()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"noise_std={noise_std!r}: expected a number or {n} numbers (one per action)") from exc
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise ValueError(f"noise_std={noise_std!r}: expected finite values >= 0")
    kind = noise_type.strip() if isinstance(noise_type, str) else noise_type
    if kind == "normal":
        return NormalActionNoise(mean=np.zeros(n), sigma=sigma)
    if kind == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean=np.zeros(n), sigma=sigma)
    raise ValueError(f"noise_type={noise_type!r}: expected 'normal' or 'ornstein-uhlenbeck'")


def _action_space_of(env_id: str | None, action_space: gym.Space | None) -> Callable[[], gym.Space]:
    """A lazy getter of the action space (the env is only made when action noise needs it)."""
    def get() -> gym.Space:
        if action_space is not None:
            return action_space
        if env_id is None:
            raise ValueError("noise_type/noise_std need the env's action space: pass env_id or action_space")
        from prefrl.sb3.envs import check_env_id

        env = gym.make(check_env_id(env_id))
        try:
            return env.action_space
        finally:
            env.close()
    return get


def _convert(settings: dict[str, Any], where: str, action_space: Callable[[], gym.Space]) -> dict[str, Any]:
    """The conversions shared by Zoo entries and --algo-kwargs: schedules, expressions, train_freq, action noise."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{where}: {key!r} is not a keyword argument name")
        value = _coerce_number(value)
        if key in _SCHEDULE_KEYS:
            out[key] = _schedule(key, value, where)
        elif key in _EXPRESSION_KEYS:
            out[key] = _kwargs_value(key, value, where)
        elif key == "train_freq":
            out[key] = _train_freq(value, where)
        elif key not in ("noise_type", "noise_std"):
            out[key] = value
    noise_type = settings.get("noise_type")
    if noise_type is not None:
        if "noise_std" not in settings:
            raise ValueError(f"{where}: noise_type={noise_type!r} without noise_std: expected both")
        out["action_noise"] = make_action_noise(noise_type, _coerce_number(settings["noise_std"]), action_space())
    elif settings.get("noise_std") is not None:
        raise ValueError(f"{where}: noise_std={settings['noise_std']!r} without noise_type: expected both")
    return out


def _refuse(keys: list[str], reasons: dict[str, str], where: str) -> None:
    """One ValueError naming every refused key and why."""
    if keys:
        detail = "; ".join(f"{k} ({reasons[k]})" for k in sorted(keys))
        raise ValueError(f"{where}: cannot honour {detail}: remove {'it' if len(keys) == 1 else 'them'}")


def parse_algo_kwargs(d: dict[str, Any], *, env_id: str | None = None,
                      action_space: gym.Space | None = None) -> dict[str, Any]:
    """`--algo-kwargs` values (already parsed from JSON-ish text) -> SB3 constructor arguments, converted like a Zoo
    entry's (lin_X schedules, policy_kwargs strings, train_freq lists; noise_type needs env_id or action_space)."""
    if not isinstance(d, dict):
        raise ValueError(f"algo kwargs must be a mapping of keyword arguments, got {d!r}")
    where = "--algo-kwargs"
    reasons = {**_UNSUPPORTED, **_SET_BY_PREFRL, **_RUN_SETTINGS}
    _refuse([k for k in d if k in reasons], reasons, where)
    return _convert(d, where, _action_space_of(env_id, action_space))


# --------------------------------------------------------------------------- Zoo files
def _json_safe(value: Any) -> Any:
    """A JSON-serializable copy: tuples -> lists, non-finite floats and other objects -> strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # e.g. a YAML date


def _parse_id(env_id: str) -> tuple[str | None, str, int | None] | None:
    """(namespace, name, version) of a Gymnasium-style id, or None when it is not one."""
    from gymnasium.envs.registration import parse_env_id

    try:
        return parse_env_id(env_id)
    except Exception:  # noqa: BLE001 - gymnasium raises its own error types for malformed ids
        return None


def _pick_key(data: dict[Any, Any], env_id: str, path: Path) -> str:
    """The exact id; else the same env with another version (the newest); else Zoo's 'default'; else ValueError."""
    from prefrl.sb3.envs import split_env_id

    plain = split_env_id(env_id)[1]
    for candidate in (env_id, plain):
        if candidate in data:
            return candidate
    wanted = _parse_id(plain)
    if wanted is not None:
        same = []
        for key in data:
            parsed = _parse_id(key) if isinstance(key, str) else None
            if parsed is not None and parsed[:2] == wanted[:2]:
                same.append((-1 if parsed[2] is None else parsed[2], key))
        if same:
            return max(same)[1]
    if "default" in data:  # rl_zoo3's own fallback for envs without an entry
        return "default"
    keys = sorted(str(k) for k in data)
    shown = difflib.get_close_matches(plain, keys, n=5, cutoff=0.5) or keys[:8]
    more = f" (of {len(keys)})" if len(keys) > len(shown) else ""
    raise ValueError(f"hyperparameter file {path} has no entry for {env_id!r} nor another version of it: "
                     f"expected one of its keys, e.g. {', '.join(shown)}{more}")


def _positive_int(name: str, value: Any, where: str) -> int | None:
    """None, or a positive whole number (1e6 from YAML is a float) as int."""
    value = _coerce_number(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            value <= 0 or value != int(value):
        raise ValueError(f"{where}: {name}={value!r}: expected a positive whole number")
    return int(value)


_VECNORMALIZE_ARGS = tuple(p for p in inspect.signature(VecNormalize.__init__).parameters if p not in ("self", "venv"))


def _normalize(spec: Any, gamma: Any, where: str) -> dict[str, Any] | None:
    """Zoo's `normalize` (bool, mapping, or a dict expression string) -> VecNormalize kwargs, or None."""
    if isinstance(spec, str):
        spec = parse_python_literal(spec, f"{where}: normalize")
    if spec is None or spec is False:
        return None
    if spec is True:
        spec = {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: normalize={spec!r}: expected true/false or a mapping of VecNormalize arguments")
    bad = sorted(str(k) for k in spec if k not in _VECNORMALIZE_ARGS)
    if bad:
        raise ValueError(f"{where}: normalize has unknown keys {bad}: expected some of {list(_VECNORMALIZE_ARGS)}")
    for key in ("training", "norm_obs", "norm_reward"):
        if key in spec and not isinstance(spec[key], bool):
            raise ValueError(f"{where}: normalize {key}={spec[key]!r}: expected true or false")
    # Explicit defaults, so config.json says what was normalized.
    kwargs = {"norm_obs": True, "norm_reward": True, **spec}
    if gamma is not None:
        kwargs["gamma"] = gamma  # as rl_zoo3: the normalized return is discounted like the learner's
    return kwargs


def load_zoo_hyperparams(path: str | Path, env_id: str, action_space: gym.Space | None = None) -> ZooHyperparams:
    """`env_id`'s entry of an RL Baselines3 Zoo YAML file (or another version's, see `source_key`), converted;
    action noise (noise_type) is sized from `action_space`, or from the env made once when not given."""
    path = Path(path)
    try:
        import yaml
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("reading Zoo hyperparameter files needs PyYAML: pip install pyyaml") from exc
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read hyperparameter file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"hyperparameter file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"hyperparameter file {path}: expected a mapping of env ids to settings at the top level, "
                         f"got {type(data).__name__}")
    key = _pick_key(data, env_id, path)
    entry = data[key]
    where = f"{path} [{key}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {entry!r}")
    raw = _json_safe(entry)
    settings = dict(entry)
    _refuse([k for k in settings if k in _UNSUPPORTED and settings[k] is not None], _UNSUPPORTED, where)
    _refuse([k for k in settings if k in _SET_BY_PREFRL], _SET_BY_PREFRL, where)
    for k in _UNSUPPORTED:
        settings.pop(k, None)  # only null values are left: rl_zoo3 treats them as absent

    policy = settings.pop("policy", "MlpPolicy")
    if policy not in POLICIES:
        raise ValueError(f"{where}: policy={policy!r}: expected one of {list(POLICIES)}")
    n_envs = _positive_int("n_envs", settings.pop("n_envs", None), where)
    n_timesteps = _positive_int("n_timesteps", settings.pop("n_timesteps", None), where)
    env_kwargs = settings.pop("env_kwargs", None) or {}
    if not isinstance(env_kwargs, dict):
        raise ValueError(f"{where}: env_kwargs={env_kwargs!r}: expected a mapping of gym.make keyword arguments")
    normalize_spec = settings.pop("normalize", False)

    algo_kwargs = _convert(settings, where, _action_space_of(env_id, action_space))
    normalize = _normalize(normalize_spec, algo_kwargs.get("gamma"), where)
    return ZooHyperparams(algo_kwargs=algo_kwargs, n_envs=n_envs, normalize=normalize, n_timesteps=n_timesteps,
                          source_key=str(key), raw=raw, policy=policy, env_kwargs=dict(env_kwargs))
