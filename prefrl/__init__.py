"""prefrl: preference-based reinforcement learning on Gymnasium + Stable-Baselines3.

One subpackage per floor of the house, lower floors never importing higher ones:
core (losses, spaces, data, demonstrations) -> reward (ensemble, trainer) -> feedback (teachers,
samplers, schedules) -> human (clips, label store, page) -> sb3 (wrappers, callback, policies,
evaluation) -> runs (train, bc, sweep, plotting, cli); llm sits on core.
"""

import importlib
import importlib.abc
import importlib.util
import sys

import prefrl_envs  # noqa: F401  (registers the custom MuJoCo tasks as Gymnasium ids)

__version__ = "0.1.0"

# Import paths of the flat layout that users' code may hold: each is the same module object as
# its new home (so `prefrl.data.TrajectoryBuffer is prefrl.core.data.TrajectoryBuffer`).
MOVED = {
    "losses": "prefrl.core.losses",
    "data": "prefrl.core.data",
    "spaces": "prefrl.core.spaces",
    "demos": "prefrl.core.demos",
    "teachers": "prefrl.feedback.teachers",
    "samplers": "prefrl.feedback.samplers",
    "clips": "prefrl.human.clips",
    "labelstore": "prefrl.human.store",
    "labelserver": "prefrl.human.server",
    "wrappers": "prefrl.sb3.wrappers",
    "callbacks": "prefrl.sb3.callback",
    "policies": "prefrl.sb3.policies",
    "evaluation": "prefrl.sb3.evaluation",
    "train": "prefrl.runs.train",
    "cli": "prefrl.runs.cli",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `prefrl.<old name>` to the module that now lives in a subpackage."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head == "prefrl" and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name.partition(".")[2]])
        spec.loader_state = module.__spec__  # importing under the alias overwrites it; exec_module restores it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
