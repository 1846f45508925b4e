"""Test-wide settings: headless MuJoCo rendering, one torch thread (the suite runs on 2 cores)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

torch.set_num_threads(1)
