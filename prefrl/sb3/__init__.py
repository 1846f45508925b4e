"""Floors 5-6 on Gymnasium + Stable-Baselines3: reward wrappers, the preference callback, policies, evaluation."""
