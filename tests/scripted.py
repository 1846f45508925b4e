"""Scripted policies shared by the tests (no training needed)."""

import numpy as np

FALL = "prefrl/PointMassFall-v0"


def steer(obs):
    """An expert for PointMassFall-v0 (obs [y, vx, vy]): run right, keep y near 0."""
    obs = np.asarray(obs)
    return np.stack([np.ones(len(obs)), np.clip(-4.0 * obs[:, 0] - 1.5 * obs[:, 2], -1, 1)], axis=1)
