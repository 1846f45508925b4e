"""Point-mass MuJoCo tasks small enough for preference-based RL to work within a minute on a CPU.

Both tasks move a 1 kg sphere in the plane with two slide joints (x, y) and two motors
(action in [-1, 1]^2, force = 4 N * action). Joint damping of 2 N s/m gives a terminal
speed of 2 m/s and a 0.5 s velocity time constant. One `step()` is 4 physics steps of
0.01 s, so ``dt = 0.04`` s (25 fps).

* :class:`PointMassEnv` (``prefrl/PointMass-v0``): reach a target placed at random each
  episode in a walled arena ``[-1, 1]^2``. Dense reward, no termination, 100 steps.
* :class:`PointMassFallEnv` (``prefrl/PointMassFall-v0``): run right along a ridge and
  stay on it. The ridge pushes the mass sideways, so it falls off (episode ends) within
  a few dozen steps unless the policy steers. 200 steps at most.
"""

from __future__ import annotations

import os
from typing import Any, Final

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box
from numpy.typing import NDArray

ASSETS_DIR: Final[str] = os.path.join(os.path.dirname(__file__), "assets")
"""Folder holding the MJCF files of these environments."""

POINT_MASS_XML: Final[str] = os.path.join(ASSETS_DIR, "point_mass.xml")
"""MJCF model of the walled arena with the target site."""

POINT_MASS_FALL_XML: Final[str] = os.path.join(ASSETS_DIR, "point_mass_fall.xml")
"""MJCF model of the ridge track."""

RENDER_MODES: Final[list[str]] = ["human", "rgb_array", "depth_array", "rgbd_tuple"]
"""Render modes supported through Gymnasium's MuJoCo renderer."""

# Straight down onto the arena; distance 3.3 fits the walls into the default 45 degree fovy.
TOP_DOWN_CAMERA: Final[dict[str, Any]] = {
    "distance": 3.3,
    "elevation": -90.0,
    "azimuth": 90.0,
    "lookat": np.array([0.0, 0.0, 0.0]),
}
"""Default camera of :class:`PointMassEnv`: looks straight down on the whole arena."""

# Only for render_mode="human": Gymnasium 1.4's offscreen renderer forces a free camera
# (ignoring trackbodyid), so rgb_array renders use the model's tracking camera instead.
SIDE_CAMERA: Final[dict[str, Any]] = {
    "distance": 3.0,
    "elevation": -30.0,
    "azimuth": 90.0,
    "lookat": np.array([0.0, 0.0, 0.0]),
}
"""Free-camera settings of :class:`PointMassFallEnv` for the interactive viewer."""


def _squared_norm(action: NDArray[np.floating]) -> float:
    """Return ``||action||^2`` computed in float64."""
    # Actions arrive as float32; squaring in float64 keeps the reward formula exact to test.
    return float(np.square(np.asarray(action, dtype=np.float64)).sum())


class _PointMassBase(MujocoEnv):
    """Shared plumbing of the point-mass tasks: model loading and render metadata."""

    # render_fps is filled in per instance because it depends on frame_skip (see __init__).
    metadata: dict[str, Any] = {"render_modes": RENDER_MODES}

    def __init__(
        self,
        xml_file: str,
        frame_skip: int,
        observation_space: Box,
        default_camera_config: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        """Load the model and set metadata so render_fps matches ``dt``."""
        MujocoEnv.__init__(
            self,
            xml_file,
            frame_skip,
            observation_space=observation_space,
            default_camera_config=default_camera_config,
            **kwargs,
        )
        self.metadata = {"render_modes": RENDER_MODES, "render_fps": int(np.round(1.0 / self.dt))}


class PointMassEnv(_PointMassBase, utils.EzPickle):
    """Move a point mass onto a randomly placed target in a walled 2-D arena.

    Observation (``Box(-inf, inf, (6,), float64)``)::

        [x, y, vx, vy, target_x - x, target_y - y]

    The target offset makes the optimal policy a simple function of the observation
    (a P-D controller does well), which keeps the reward easy to learn from preferences;
    the absolute target position is ``obs[:2] + obs[4:]``.

    Reward, computed after the physics step::

        -||(x, y) - target|| - ctrl_cost_weight * ||action||^2

    Reset: the mass starts near the centre (uniform in ``+-reset_noise_scale``) at rest;
    the target is uniform in ``[-target_range, target_range]^2`` and is written into the
    model's ``target`` site so renders show it. The episode never terminates; the time
    limit (100 steps, 4 s) comes from the registration.
    """

    def __init__(
        self,
        xml_file: str = POINT_MASS_XML,
        frame_skip: int = 4,
        default_camera_config: dict[str, Any] = TOP_DOWN_CAMERA,
        ctrl_cost_weight: float = 0.1,
        target_range: float = 0.9,
        reset_noise_scale: float = 0.1,
        **kwargs: Any,
    ) -> None:
        """Build the arena; keyword arguments beyond ours go to ``MujocoEnv``."""
        utils.EzPickle.__init__(
            self,
            xml_file,
            frame_skip,
            default_camera_config,
            ctrl_cost_weight,
            target_range,
            reset_noise_scale,
            **kwargs,
        )
        self._ctrl_cost_weight = ctrl_cost_weight
        self._target_range = target_range
        self._reset_noise_scale = reset_noise_scale
        observation_space = Box(low=-np.inf, high=np.inf, shape=(6,), dtype=np.float64)
        super().__init__(xml_file, frame_skip, observation_space, default_camera_config, **kwargs)
        self._target_site = self.model.site("target").id
        self.target = np.zeros(2)

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for ``frame_skip`` physics steps and score the new state."""
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        distance = float(np.linalg.norm(obs[4:6]))
        reward_dist = -distance
        reward_ctrl = -self._ctrl_cost_weight * _squared_norm(action)
        info = {
            "reward_dist": reward_dist,
            "reward_ctrl": reward_ctrl,
            "distance": distance,
            "target": self.target.copy(),
        }
        if self.render_mode == "human":
            self.render()
        # Never terminates; truncation comes from the TimeLimit wrapper added by make().
        return obs, reward_dist + reward_ctrl, False, False, info

    def reset_model(self) -> NDArray[np.float64]:
        """Place the mass near the centre at rest and draw a new target."""
        noise = self._reset_noise_scale
        qpos = self.init_qpos + self.np_random.uniform(-noise, noise, size=self.model.nq)
        qvel = np.zeros(self.model.nv)
        self.target = self.np_random.uniform(-self._target_range, self._target_range, size=2)
        # Writing the model (not only our copy) makes the target visible in renders;
        # set_state's mj_forward then refreshes site_xpos.
        self.model.site_pos[self._target_site, :2] = self.target
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> NDArray[np.float64]:
        """Return ``[qpos, qvel, target - qpos]``."""
        pos = self.data.qpos[:2]
        return np.concatenate([pos, self.data.qvel[:2], self.target - pos])

    def _get_reset_info(self) -> dict[str, Any]:
        """Expose the target at reset too, so wrappers can log it."""
        return {"target": self.target.copy()}


class PointMassFallEnv(_PointMassBase, utils.EzPickle):
    """Run a point mass along an unstable ridge in +x; falling off ends the episode.

    The y joint has a negative spring (stiffness ``-6``: a ridge whose slope pushes the
    mass away from ``y = 0``, like a ball on a roof), so a small offset grows about
    e-fold every 0.6 s and a random policy leaves the band ``|y| <= 0.5`` within a few
    dozen steps. At ``|y| = 0.5`` the ridge force (3 N) is already 3/4 of the motor's,
    so late corrections fail: the policy has to keep the mass centred all along.

    Observation (``Box(-inf, inf, (3,), float64)``)::

        [y, vx, vy]

    x is left out because the task is the same everywhere along the track (as in
    Gymnasium's locomotion tasks), and an unbounded input would hurt learning.

    Reward::

        (x_after - x_before) / dt + healthy_reward * (|y| <= 0.5) - ctrl_cost_weight * ||action||^2

    Terminates when ``|y| > fall_threshold``; the time limit (200 steps) comes from the
    registration. Reset: ``y`` and both velocities uniform in ``+-reset_noise_scale``.
    """

    def __init__(
        self,
        xml_file: str = POINT_MASS_FALL_XML,
        frame_skip: int = 4,
        default_camera_config: dict[str, Any] = SIDE_CAMERA,
        ctrl_cost_weight: float = 0.1,
        healthy_reward: float = 1.0,
        fall_threshold: float = 0.5,
        reset_noise_scale: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """Build the ridge; keyword arguments beyond ours go to ``MujocoEnv``."""
        utils.EzPickle.__init__(
            self,
            xml_file,
            frame_skip,
            default_camera_config,
            ctrl_cost_weight,
            healthy_reward,
            fall_threshold,
            reset_noise_scale,
            **kwargs,
        )
        self._ctrl_cost_weight = ctrl_cost_weight
        self._healthy_reward = healthy_reward
        self._fall_threshold = fall_threshold
        self._reset_noise_scale = reset_noise_scale
        observation_space = Box(low=-np.inf, high=np.inf, shape=(3,), dtype=np.float64)
        if "camera_id" not in kwargs and "camera_name" not in kwargs:
            # The "side" camera in the XML tracks the mass; a free camera would be left behind.
            kwargs = {**kwargs, "camera_name": "side"}
        super().__init__(xml_file, frame_skip, observation_space, default_camera_config, **kwargs)

    @property
    def is_healthy(self) -> bool:
        """Whether the mass is still on the ridge (``|y| <= fall_threshold``)."""
        return bool(abs(self.data.qpos[1]) <= self._fall_threshold)

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for ``frame_skip`` physics steps; end the episode on a fall."""
        x_before = float(self.data.qpos[0])
        self.do_simulation(action, self.frame_skip)
        x_after = float(self.data.qpos[0])
        healthy = self.is_healthy
        # Displacement over dt (not qvel) so the return telescopes to distance travelled.
        reward_forward = (x_after - x_before) / self.dt
        reward_healthy = self._healthy_reward * float(healthy)
        reward_ctrl = -self._ctrl_cost_weight * _squared_norm(action)
        info = {
            "reward_forward": reward_forward,
            "reward_healthy": reward_healthy,
            "reward_ctrl": reward_ctrl,
            "x_position": x_after,
            "y_position": float(self.data.qpos[1]),
        }
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward_forward + reward_healthy + reward_ctrl, not healthy, False, info

    def reset_model(self) -> NDArray[np.float64]:
        """Start at x = 0 with a small random lateral offset and velocity."""
        noise = self._reset_noise_scale
        qpos = self.init_qpos.copy()
        qpos[1] += self.np_random.uniform(-noise, noise)
        qvel = self.init_qvel + self.np_random.uniform(-noise, noise, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> NDArray[np.float64]:
        """Return ``[y, vx, vy]``."""
        return np.array([self.data.qpos[1], self.data.qvel[0], self.data.qvel[1]])

    def _get_reset_info(self) -> dict[str, Any]:
        """Report the start position, matching the step info keys."""
        return {"x_position": float(self.data.qpos[0]), "y_position": float(self.data.qpos[1])}
