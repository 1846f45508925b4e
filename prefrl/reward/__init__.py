"""Floor 3: the reward ensemble (`RewardModel`) and its trainer (`RewardTrainer`: Bradley-Terry, AIHF)."""

from prefrl.reward.model import EnsembleMLP, RewardModel
from prefrl.reward.trainer import FitReport, RewardTrainer, evaluate_preferences

__all__ = ["EnsembleMLP", "FitReport", "RewardModel", "RewardTrainer", "evaluate_preferences"]
