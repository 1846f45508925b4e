"""Scripted policies shared by the tests (no training needed)."""

import numpy as np

FALL = "prefrl/PointMassFall-v0"


def steer(obs):
    """An expert for PointMassFall-v0 (obs [y, vx, vy]): run right, keep y near 0."""
    obs = np.asarray(obs)
    return np.stack([np.ones(len(obs)), np.clip(-4.0 * obs[:, 0] - 1.5 * obs[:, 2], -1, 1)], axis=1)


class LineWalk:
    """A tiny non-MuJoCo env with rgb_array rendering: walk right along a line (reward = progress)."""

    ID = "tests/LineWalk-v0"

    @classmethod
    def register(cls):
        import gymnasium as gym

        if cls.ID not in gym.registry:
            gym.register(cls.ID, entry_point=_LineWalkEnv, max_episode_steps=40)
        return cls.ID


import gymnasium as _gym  # noqa: E402


class _LineWalkEnv(_gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = _gym.spaces.Box(-10, 10, (1,), np.float32)
        self.action_space = _gym.spaces.Discrete(2)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.1, 0.1))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        dx = 0.2 if action == 1 else -0.2
        self.x = float(np.clip(self.x + dx, -10, 10))
        return np.array([self.x], np.float32), dx, False, False, {}

    def render(self):
        img = np.full((32, 64, 3), 255, np.uint8)
        col = int(np.clip((self.x + 10) / 20 * 63, 0, 63))
        img[:, col] = (200, 0, 0)
        return img
