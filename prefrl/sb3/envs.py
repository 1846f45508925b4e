"""Environments from what users type: a Gymnasium id (Hopper-v5, prefrl/PointMass-v0) or Gymnasium's
`module:EnvId` form (the module registers the env on import), plus gym.make keyword arguments."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

__all__ = ["check_env_id", "make_vec_env", "split_env_id"]


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """(module, plain id) of `module:EnvId`, or (None, env_id) for a plain id; refuses an empty side."""
    if not isinstance(env_id, str):
        raise ValueError(f"env id must be a string, got {env_id!r}")
    module, sep, plain = env_id.partition(":")
    if not sep:
        return None, env_id
    if not module.strip() or not plain.strip():
        raise ValueError(f"env id {env_id!r}: expected 'module:EnvId' with both parts, e.g. 'mypkg.envs:Reach-v0'")
    return module.strip(), plain.strip()


def _not_registered(env_id: str) -> str:
    """The "did you mean" part of an unknown-id error (empty when nothing is close)."""
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def check_env_id(env_id: str) -> str:
    """The plain registered id of `env_id` (importing the module of a `module:EnvId`); ValueError naming close matches."""
    import prefrl_envs  # noqa: F401  (registers the custom tasks)

    module, plain = split_env_id(env_id)
    if module is None:
        if env_id not in gym.registry:
            raise ValueError(f"unknown env id {env_id!r}: not registered with Gymnasium{_not_registered(env_id)}")
        return env_id
    try:
        importlib.import_module(module)
    except (ImportError, SyntaxError) as exc:  # a missing module, or one that fails to import
        raise ValueError(f"env id {env_id!r}: cannot import module {module!r} "
                         f"({type(exc).__name__}: {exc}); expected an importable module that registers {plain!r}") \
            from exc
    if plain not in gym.registry:
        raise ValueError(f"env id {env_id!r}: module {module!r} was imported but {plain!r} is not registered "
                         f"with Gymnasium{_not_registered(plain)}")
    return plain


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any) -> gym.Env:
    """gym.make with `env_kwargs` (the user's) and `make_kwargs` (the caller's), naming the env kwargs an env's
    constructor refuses."""
    try:
        return gym.make(env_id, **(env_kwargs or {}), **make_kwargs)
    except TypeError as exc:
        if not env_kwargs:
            raise
        # The usual cause: a keyword the env's constructor does not take.
        raise ValueError(f"env {env_id!r} refused the env kwargs {env_kwargs}: {exc}") from exc


def make_vec_env(env_id: str, n_envs: int, seed: int, wrap: Callable[[gym.Env], gym.Env] | None = None,
                 env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any) -> DummyVecEnv:
    """n Monitor-wrapped copies of the env in this process (so MuJoCo states can be recorded);
    `wrap` goes around each env inside the Monitor, `env_kwargs` and `make_kwargs` to gym.make."""
    if split_env_id(env_id)[0] is not None:
        env_id = check_env_id(env_id)  # imports the module that registers it; plain ids go to gym.make as before
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a mapping of gym.make keyword arguments, got {env_kwargs!r}")
    env_kwargs = dict(env_kwargs or {})
    clash = sorted(set(env_kwargs) & set(make_kwargs))
    if clash:
        # Silently preferring one side would hide which value the env got.
        raise ValueError(f"env kwargs {clash} of {env_id!r} are also set by the caller "
                         f"({ {k: make_kwargs[k] for k in clash} }): expected each keyword once")
    wrap = wrap or (lambda e: e)

    def make_one() -> gym.Env:
        return Monitor(wrap(make_env(env_id, env_kwargs, **make_kwargs)))

    venv = DummyVecEnv([make_one for _ in range(n_envs)])
    venv.seed(seed)
    return venv
