"""Bradley-Terry reward ensembles: K MLPs held as one module with a leading member dimension.

The reward of a segment is the sum of per-step rewards over its real steps plus, for steps
after the episode terminated, a learned constant: the reward of the absorbing state. Learning
that constant is what lets the policy know whether ending an episode early is good or bad; the
reward handed to the policy is shifted so the absorbing state is worth exactly 0, which is what
Gymnasium's termination implies (see REFERENCES: the learned reward's offset).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from torch import nn

from prefrl import losses
from prefrl.data import ComparisonDataset, Segments, atomic_write
from prefrl.demos import Demonstrations
from prefrl.spaces import check_space, describe, flat_dim

INPUT_KINDS = ("obs", "act", "next_obs")
MODEL_FORMAT_VERSION = 1


class EnsembleMLP(nn.Module):
    """K independent MLPs evaluated with batched matmuls: (K, M, in) -> (K, M)."""

    def __init__(self, members: int, in_dim: int, hidden: Sequence[int] = (64, 64), negative_slope: float = 0.01):
        super().__init__()
        dims = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound)))
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-member rewards; x is (K, M, in), or (M, in) to feed every member the same inputs."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.weights[0].shape[0], -1, -1)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = nn.functional.leaky_relu(torch.baddbmm(b, x, w), self.negative_slope)
        # A batched matmul with one output column is slow on CPU; multiply-and-sum is the same math.
        return (x * self.weights[-1].transpose(1, 2)).sum(-1) + self.biases[-1][:, :, 0]


class RewardModel(nn.Module):
    """An ensemble reward r(obs, act, next_obs) with input and output normalization built in."""

    def __init__(
        self,
        observation_space: gym_spaces.Space,
        action_space: gym_spaces.Space,
        *,
        ensemble_size: int = 3,
        hidden: Sequence[int] = (64, 64),
        inputs: Sequence[str] = ("obs", "act"),
        seed: int | None = None,
    ):
        super().__init__()
        check_space(observation_space, "observation")
        check_space(action_space, "action")
        bad = [i for i in inputs if i not in INPUT_KINDS]
        if bad or not inputs:
            raise ValueError(f"reward inputs {list(inputs)} invalid: choose a non-empty subset of {INPUT_KINDS}")
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden layer sizes must be a non-empty list of positive integers, got {list(hidden)}")
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_dim, self.act_dim = flat_dim(observation_space), flat_dim(action_space)
        self.inputs = tuple(i for i in INPUT_KINDS if i in inputs)
        self.ensemble_size, self.hidden = ensemble_size, tuple(hidden)
        self.in_dim = sum(self.act_dim if i == "act" else self.obs_dim for i in self.inputs)
        if seed is not None:
            torch.manual_seed(seed)
        self.net = EnsembleMLP(ensemble_size, self.in_dim, hidden)
        self.absorbing = nn.Parameter(torch.zeros(ensemble_size))
        self.register_buffer("in_mean", torch.zeros(self.in_dim))
        self.register_buffer("in_std", torch.ones(self.in_dim))
        self.register_buffer("out_shift", torch.zeros(ensemble_size))
        self.register_buffer("out_scale", torch.ones(ensemble_size))
        self._np_params: list[np.ndarray] | None = None

    # ----------------------------------------------------------------- inputs
    def features(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Concatenate the chosen inputs (flat float arrays with any leading dims) into (..., in_dim)."""
        parts = {"obs": obs, "act": acts, "next_obs": next_obs}
        return np.concatenate([np.asarray(parts[k], dtype=np.float32) for k in self.inputs], axis=-1)

    def segment_features(self, segs: Segments) -> np.ndarray:
        """(N, H, in_dim) raw features of a batch of segments."""
        return self.features(segs.obs, segs.acts, segs.next_obs)

    def set_input_normalization(self, x: np.ndarray) -> None:
        """Standardize inputs with the mean/std of sample features x (M, in_dim)."""
        self.in_mean.copy_(torch.as_tensor(x.mean(0)))
        self.in_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
        self._np_params = None

    # ------------------------------------------------------------- forward
    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalized per-member rewards for raw features x (..., in_dim) -> (K, ...)."""
        lead = x.shape[:-1]
        z = ((x - self.in_mean) / self.in_std).reshape(-1, self.in_dim)
        return self.net(z).reshape(self.ensemble_size, *lead)

    def segment_returns(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-member segment returns (K, N) for features x (N, H, in): real steps plus absorbing ones."""
        r = self.member_rewards(x)  # (K, N, H)
        return (r * mask + (1.0 - mask) * self.absorbing.view(-1, 1, 1)).sum(-1)

    @torch.no_grad()
    def segment_member_returns(self, segs: Segments) -> np.ndarray:
        """Per-member learned returns (K, N) of a batch of segments (for samplers and metrics)."""
        x = torch.as_tensor(self.segment_features(segs))
        return self.segment_returns(x, torch.as_tensor(segs.mask)).numpy()

    # ------------------------------------------------- output normalization
    @torch.no_grad()
    def set_output_normalization(self, x: np.ndarray, anchor_absorbing: bool) -> None:
        """Scale each member to unit std on sample features x, zero at the absorbing state if anchored.

        Without terminations in the data the absorbing reward is never trained, so the zero is
        put at the mean reward instead (a constant shift is harmless without early termination).
        """
        r = self.member_rewards(torch.as_tensor(x, dtype=torch.float32))
        shift = self.absorbing.detach().clone() if anchor_absorbing else r.mean(dim=1)
        self.out_shift.copy_(shift)
        self.out_scale.copy_(r.std(dim=1) + 1e-6)
        self._np_params = None

    def _compile_numpy(self) -> list[np.ndarray]:
        """Fold input and output normalization and the member average into plain numpy weights.

        The first layers of all members share the input, so they become one (in, K*h) matmul;
        the last layers and the mean over normalized members become one dot product.
        """
        k = self.ensemble_size
        ws = [w.detach().cpu().double().numpy() for w in self.net.weights]
        bs = [b.detach().cpu().double().numpy() for b in self.net.biases]
        mean, std = self.in_mean.double().numpy(), self.in_std.double().numpy()
        shift, scale = self.out_shift.double().numpy(), self.out_scale.double().numpy()
        w1 = ws[0] / std[None, :, None]
        b1 = bs[0][:, 0, :] - np.einsum("i,kih->kh", mean / std, ws[0])
        first = (w1.transpose(1, 0, 2).reshape(w1.shape[1], -1), b1.reshape(-1))
        w_last = ws[-1][..., 0] / (k * scale[:, None])  # (K, h_L)
        c = float(np.sum((bs[-1][:, 0, 0] - shift) / (k * scale)))
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        middle = [(f32(w), f32(b)) for w, b in zip(ws[1:-1], bs[1:-1])]
        return [(f32(first[0]), f32(first[1])), middle, f32(w_last), np.float32(c)]

    def predict(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Normalized ensemble-mean reward for a batch of flat transitions, shape (B,). Numpy fast path."""
        if self._np_params is None:
            self._np_params = self._compile_numpy()
        (w1, b1), middle, w_last, c = self._np_params
        slope, k = self.net.negative_slope, self.ensemble_size
        h = self.features(obs, acts, next_obs) @ w1 + b1  # all members' first layers at once: (B, K*h1)
        h = np.maximum(h, slope * h)
        h = h.reshape(len(h), k, -1).transpose(1, 0, 2)  # (K, B, h1)
        for w, b in middle:
            h = np.matmul(h, w) + b
            h = np.maximum(h, slope * h)
        return np.einsum("kbh,kh->b", h, w_last) + c

    def invalidate_cache(self) -> None:
        """Drop the numpy copy of the weights (call after changing parameters in place by hand)."""
        self._np_params = None

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        """As nn.Module's, and the policy-facing numpy path follows the new weights."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._np_params = None
        return result

    # ------------------------------------------------------------ save/load
    def config(self) -> dict[str, Any]:
        """The constructor arguments and the spaces trained on, as plain JSON-able values."""
        return {
            "format_version": MODEL_FORMAT_VERSION,
            "observation_space": describe(self.observation_space),
            "action_space": describe(self.action_space),
            "ensemble_size": self.ensemble_size,
            "hidden": list(self.hidden),
            "inputs": list(self.inputs),
        }

    def check_spaces(self, observation_space: gym_spaces.Space, action_space: gym_spaces.Space) -> None:
        """Raise a ValueError naming both if this model was built for other spaces than the given ones."""
        _check_spaces(self.config(), observation_space, action_space, "reward model")

    def save(self, path: str | os.PathLike) -> None:
        """Save weights + config (a plain dict; loads with torch's weights_only=True)."""
        atomic_write(path, lambda fh: torch.save({"config": self.config(), "state_dict": self.state_dict()}, fh))

    @classmethod
    def load(
        cls, path: str | os.PathLike, observation_space: gym_spaces.Space, action_space: gym_spaces.Space
    ) -> "RewardModel":
        """Load a saved model, refusing one trained on spaces other than the given ones."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reward model file {path} does not exist")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            cfg, state = blob["config"], blob["state_dict"]
        except Exception as exc:
            raise ValueError(f"reward model file {path} is corrupt or not a prefrl reward model: {exc}") from exc
        if cfg.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(f"reward model {path} has format version {cfg.get('format_version')}, expected {MODEL_FORMAT_VERSION}")
        _check_spaces(cfg, observation_space, action_space, f"reward model {path}")
        model = cls(observation_space, action_space, ensemble_size=cfg["ensemble_size"], hidden=cfg["hidden"], inputs=cfg["inputs"])
        model.load_state_dict(state)
        return model


def _check_spaces(cfg: dict[str, Any], observation_space: gym_spaces.Space, action_space: gym_spaces.Space, name: str) -> None:
    for what, space in (("observation", observation_space), ("action", action_space)):
        saved, now = cfg[f"{what}_space"], describe(space)
        if saved["repr"] != now["repr"]:
            raise ValueError(
                f"{name} was trained on {what} space {saved['repr']} (shape {tuple(saved['shape'])}), "
                f"env gives {now['repr']} (shape {tuple(now['shape'])})"
            )


@dataclass
class FitReport:
    """What one call of `RewardTrainer.fit` did."""

    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    pairs: int
    weight_decay: float
    seconds: float
    pair_updates: int = 0  # (labelled pair, member) gradient evaluations, for speed reports
    demo_gap: float = math.nan  # mean learned return of demo segments minus the policy's (joint training)


class RewardTrainer:
    """Fits a RewardModel to a ComparisonDataset with the Bradley-Terry loss from prefrl.losses.

    Each member trains on its own bootstrap weights of the pairs; 1/e of the pairs are held out for early
    stopping, and the L2 weight is tuned so held-out loss stays within 1.1-1.5x the training loss
    (Christiano et al. 2017). Training warm-starts from the current weights on every call and
    spends at most `max_updates` gradient steps, so refits stay cheap as labels accumulate.

    Given demonstrations and `demo_weight > 0`, `fit` trains the AIHF objective instead
    (`losses.aihf_loss` of the Bradley-Terry term and `losses.ml_irl_loss` of demonstration
    segments against segments of the current policy), `demo_updates` steps per call, warm-started,
    since the IRL term follows a moving policy and has no held-out optimum to stop at. The same
    pairs are held out as in preference-only training. `demo_weight = 0` (or no demonstrations) is
    preference-only training, `pref_weight = 0` demonstration-only IRL: the other term is skipped.
    """

    def __init__(
        self,
        model: RewardModel,
        *,
        lr: float = 3e-4,
        batch_size: int = 64,
        max_updates: int = 400,
        patience: int = 5,
        weight_decay: float = 1e-4,
        label_noise: float = 0.0,
        holdout_fraction: float = 1 / math.e,
        seed: int = 0,
        demos: Demonstrations | None = None,
        demo_weight: float = 1.0,
        pref_weight: float = 1.0,
        demo_l2: float = 0.1,
        demo_updates: int = 100,
        demo_pool: int = 512,
        absorbing_lr: float = 1e-2,
    ):
        self.model = model
        self.batch_size, self.max_updates, self.patience = batch_size, max_updates, patience
        self.weight_decay, self.label_noise, self.holdout_fraction = weight_decay, label_noise, holdout_fraction
        self.seed, self.rng = seed, np.random.default_rng(seed)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        if demos is not None and demo_weight > 0:
            # The absorbing reward is one scalar per member: at the network's learning rate it would
            # barely move within a refit, while the IRL term pushes the policy's real steps down
            # fast, leaving falling (absorbing) ranked above staying up. It gets a faster rate.
            rest = [p for n, p in model.named_parameters() if n != "absorbing"]
            self.optimizer = torch.optim.Adam([{"params": rest}, {"params": [model.absorbing], "lr": absorbing_lr}], lr=lr)
        losses.aihf_loss(None if pref_weight == 0 else torch.zeros(()), None if demo_weight == 0 else torch.zeros(()),
                         pref_weight=pref_weight, demo_weight=demo_weight)  # same checks as the loss: >= 0, not both 0
        self.demo_weight, self.pref_weight = float(demo_weight), float(pref_weight)
        self.demo_l2, self.demo_updates, self.demo_pool = demo_l2, demo_updates, demo_pool
        self.demos = demos.buffer() if demos is not None and self.demo_weight > 0 else None
        if demos is not None:
            demos.check_env(model.observation_space, model.action_space)

    @property
    def uses_demos(self) -> bool:
        """Whether `fit` trains the joint objective (it needs the current policy's segments)."""
        return self.demos is not None

    def split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(held-out, training) pair indices. A pair keeps its side for good: draws come from a
        seeded stream whose prefix does not change as labels are appended, so a pair that was
        held out is never trained on in a later refit (which would bias early stopping)."""
        if n < 10:
            return np.zeros(0, np.int64), np.arange(n)
        held = np.random.default_rng([self.seed, 0]).random(n) < self.holdout_fraction
        return np.flatnonzero(held), np.flatnonzero(~held)

    def bootstrap_counts(self, n: int) -> np.ndarray:
        """(K, n) Poisson(1) weights: member k counts pair i that many times (an online bootstrap,
        fixed per pair like the split, so members stay diverse across refits)."""
        return np.stack([np.random.default_rng([self.seed, 1, k]).poisson(1.0, n) for k in range(self.model.ensemble_size)])

    def _losses(self, pairs: "_PairTensors", ids: torch.Tensor) -> torch.Tensor:
        """Per-member BT losses (K, B) of the pairs at ids (B,)."""
        ra = self.model.segment_returns(pairs.fa[ids], pairs.ma[ids])
        rb = self.model.segment_returns(pairs.fb[ids], pairs.mb[ids])
        return losses.bradley_terry_loss(ra, rb, pairs.y[ids], noise=self.label_noise, reduction="none")

    def _weighted_losses(self, pairs: "_PairTensors", ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Sum over members of each member's bootstrap-weighted mean BT loss on the pairs at ids
        (members are independent: the sum trains each on its own weighted mean)."""
        w = weights[:, ids]
        return ((self._losses(pairs, ids) * w).sum(1) / w.sum(1).clamp(min=1.0)).sum()

    def fit(self, dataset: ComparisonDataset, policy_segments: Segments | None = None) -> FitReport:
        """Train on all labelled pairs (and, with demonstrations, the demonstration term); returns a report.

        Preference-only: until held-out loss stops improving. Joint: `demo_updates` steps, with
        `policy_segments` (the current policy's behaviour) as the IRL term's negatives.
        """
        if self.demos is None:
            return self._fit_preferences(dataset)
        return self._fit_joint(dataset, policy_segments)

    def _fit_preferences(self, dataset: ComparisonDataset) -> FitReport:
        t0 = time.perf_counter()
        model, n = self.model, len(dataset)
        if n == 0:
            raise ValueError("cannot fit a reward model on an empty comparison dataset")
        pairs = _PairTensors.from_dataset(model, dataset)
        model.set_input_normalization(pairs.real_features)

        val, train = self.split(n)
        n_val = len(val)
        weights = torch.as_tensor(self.bootstrap_counts(n), dtype=torch.float32)  # (K, n)
        val = torch.as_tensor(val)
        for g in self.optimizer.param_groups:
            g["weight_decay"] = self.weight_decay

        best_loss, best_state, best_epoch = math.inf, None, 0
        epoch = updates = pair_updates = 0
        while updates < self.max_updates:
            epoch += 1
            model.train()
            order = self.rng.permutation(train)
            for s in range(0, len(train), self.batch_size):
                ids = torch.as_tensor(order[s : s + self.batch_size])
                loss = self._weighted_losses(pairs, ids, weights)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # members are independent: the sum trains each on its own weighted mean
                self.optimizer.step()
                updates += 1
                pair_updates += ids.numel() * model.ensemble_size
            if n_val == 0:
                continue
            with torch.no_grad():
                val_loss = float(self._losses(pairs, val).mean())
            if val_loss < best_loss - 1e-4:
                best_loss, best_state, best_epoch = val_loss, {kk: v.clone() for kk, v in model.state_dict().items()}, epoch
            elif epoch - best_epoch >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        val_loss, val_acc = pairs.evaluate(model, val, self.label_noise) if n_val else (math.nan, math.nan)
        train_loss, _ = pairs.evaluate(model, torch.as_tensor(train), self.label_noise)
        if n_val and train_loss > 0:  # keep held-out loss within 1.1-1.5x training loss
            ratio = val_loss / train_loss
            if ratio > 1.5:
                self.weight_decay = min(self.weight_decay * 2, 1.0)
            elif ratio < 1.1:
                self.weight_decay = max(self.weight_decay / 2, 1e-7)
        model.set_output_normalization(pairs.real_features, anchor_absorbing=pairs.has_absorbing)
        return FitReport(epoch, train_loss, val_loss, val_acc, n, self.weight_decay, time.perf_counter() - t0, pair_updates)


    def _fit_joint(self, dataset: ComparisonDataset, policy_segments: Segments | None) -> FitReport:
        t0 = time.perf_counter()
        model, k = self.model, self.model.ensemble_size
        if policy_segments is None or len(policy_segments) == 0:
            raise ValueError("the demonstration term needs segments of the current policy's behaviour (policy_segments)")
        demo = self.demos.sample_segments(self.demo_pool, policy_segments.horizon, self.rng)
        fd, fp = model.segment_features(demo), model.segment_features(policy_segments)
        md, mp = torch.as_tensor(demo.mask), torch.as_tensor(policy_segments.mask)
        real = [fd[demo.mask > 0], fp[policy_segments.mask > 0]]
        use_pairs = self.pref_weight > 0 and len(dataset) > 0
        n = len(dataset) if use_pairs else 0
        val, train = self.split(n)
        if use_pairs:
            pairs = _PairTensors.from_dataset(model, dataset)
            real.append(pairs.real_features)
            weights = torch.as_tensor(self.bootstrap_counts(n), dtype=torch.float32)
        model.set_input_normalization(np.concatenate(real))
        fd, fp = torch.as_tensor(fd), torch.as_tensor(fp)
        for g in self.optimizer.param_groups:
            g["weight_decay"] = self.weight_decay
        model.train()
        pair_updates = 0
        for _ in range(self.demo_updates):
            pref_loss = None
            if use_pairs and len(train):
                ids = torch.as_tensor(self.rng.choice(train, size=min(self.batch_size, len(train)), replace=False))
                pref_loss = self._weighted_losses(pairs, ids, weights)
                pair_updates += ids.numel() * k
            di = torch.as_tensor(self.rng.integers(0, len(fd), self.batch_size))
            pi = torch.as_tensor(self.rng.integers(0, len(fp), self.batch_size))
            rd, rp = model.segment_returns(fd[di], md[di]), model.segment_returns(fp[pi], mp[pi])  # (K, B)
            demo_loss = k * losses.ml_irl_loss(rd, rp, l2=self.demo_l2)  # each member its own mean, as above
            loss = losses.aihf_loss(pref_loss, demo_loss, pref_weight=self.pref_weight if pref_loss is not None else 0.0,
                                    demo_weight=self.demo_weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        model.eval()
        with torch.no_grad():
            gap = float((model.segment_returns(fd, md).mean() - model.segment_returns(fp, mp).mean()))
        val_loss = val_acc = train_loss = math.nan
        if use_pairs:
            if len(val):
                val_loss, val_acc = pairs.evaluate(model, torch.as_tensor(val), self.label_noise)
            train_loss, _ = pairs.evaluate(model, torch.as_tensor(train), self.label_noise)
        policy_side = real[1:]  # what the policy visits: its own data and the labelled segments
        absorbing = bool((policy_segments.mask == 0).any()) or (use_pairs and pairs.has_absorbing)
        model.set_output_normalization(np.concatenate(policy_side), anchor_absorbing=absorbing)
        return FitReport(self.demo_updates, train_loss, val_loss, val_acc, n, self.weight_decay,
                         time.perf_counter() - t0, pair_updates, gap)


@dataclass
class _PairTensors:
    """A dataset's features, masks and labels as tensors, built once per fit."""

    fa: torch.Tensor
    ma: torch.Tensor
    fb: torch.Tensor
    mb: torch.Tensor
    y: torch.Tensor
    real_features: np.ndarray
    has_absorbing: bool

    @classmethod
    def from_dataset(cls, model: RewardModel, dataset: ComparisonDataset) -> "_PairTensors":
        sa, sb = dataset.segments_a, dataset.segments_b
        fa, fb = model.segment_features(sa), model.segment_features(sb)
        return cls(
            torch.as_tensor(fa), torch.as_tensor(sa.mask), torch.as_tensor(fb), torch.as_tensor(sb.mask),
            torch.as_tensor(dataset.labels), np.concatenate([fa[sa.mask > 0], fb[sb.mask > 0]]),
            bool((sa.mask == 0).any() or (sb.mask == 0).any()),
        )

    @torch.no_grad()
    def evaluate(self, model: RewardModel, idx: torch.Tensor, noise: float) -> tuple[float, float]:
        ra = model.segment_returns(self.fa[idx], self.ma[idx]).mean(0)
        rb = model.segment_returns(self.fb[idx], self.mb[idx]).mean(0)
        return _loss_and_accuracy(ra, rb, self.y[idx], noise)


def _loss_and_accuracy(ra: torch.Tensor, rb: torch.Tensor, y: torch.Tensor, noise: float) -> tuple[float, float]:
    loss = float(losses.bradley_terry_loss(ra, rb, y, noise=noise))
    decided = y != 0.5
    acc = float(((ra > rb) == (y > 0.5))[decided].float().mean()) if decided.any() else math.nan
    return loss, acc


@torch.no_grad()
def evaluate_preferences(
    model: RewardModel, seg_a: Segments, seg_b: Segments, labels: np.ndarray, noise: float = 0.0
) -> tuple[float, float]:
    """Bradley-Terry loss and accuracy of the ensemble's mean segment return against labels."""
    ra = torch.as_tensor(model.segment_member_returns(seg_a)).mean(0)
    rb = torch.as_tensor(model.segment_member_returns(seg_b)).mean(0)
    return _loss_and_accuracy(ra, rb, torch.as_tensor(np.asarray(labels, dtype=np.float32)), noise)
