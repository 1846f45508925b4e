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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from torch import nn

from prefrl.core.data import Segments, atomic_write
from prefrl.core.spaces import check_space, describe, flat_dim
from prefrl.core.validation import check_choice

# act_sq: the action squared, element by element: the shape of most control costs (MuJoCo's -c |a|^2), which a
# small net fitted on few labels learns poorly from the action alone
INPUT_KINDS = ("obs", "act", "act_sq", "next_obs")
# What a preference reward sees unless told otherwise. act_sq joined obs and act after the label-budget grid: at 200
# labels it lifted Ant-v5 from 0.75 to 1.14 of true-reward PPO, within the seeds' spread elsewhere
# (benchmarks/results/efficiency/efficiency.md).
DEFAULT_INPUTS = ("obs", "act", "act_sq")
_STD_FLOOR = 1e-6  # added to every input std, so a constant feature standardizes to 0 rather than dividing by 0
REWARD_ZEROS = ("absorbing", "mean", "raw")
MODEL_FORMAT_VERSION = 1


def input_kinds(kinds: Sequence[str], what: str, other: str = "", how: str = "") -> tuple[str, ...]:
    """`kinds` in INPUT_KINDS' order, refused unless they are distinct input kinds, at least one. `what` names the
    value in the error, `other` what else a caller accepts (e.g. "default or "), `how` how kinds are written there
    (e.g. " joined by +")."""
    if isinstance(kinds, str) or not kinds or len(set(kinds)) < len(kinds) or any(k not in INPUT_KINDS for k in kinds):
        raise ValueError(f"{what} is invalid: expected {other}distinct input kinds of {', '.join(INPUT_KINDS)}{how}")
    return tuple(k for k in INPUT_KINDS if k in kinds)


class EnsembleMLP(nn.Module):
    """K independent leaky-ReLU MLPs held as one module: (K, M, in), or (M, in) shared by all, -> (K, M).

    Every parameter is stacked along a leading member dimension (weights (K, in, out), biases
    (K, 1, out)), so the ensemble is one module with one optimizer entry per layer. How it is
    evaluated is a separate choice. On CPU the members are run one after another on contiguous
    slices of preallocated (K, M, h) activation buffers, with in-place activations and a
    hand-written backward (`_EnsembleMLPFunction`): a CPU thread runs a batched matmul as a loop
    of matmuls anyway, and member-major order keeps each member's activations in cache and avoids
    the large temporaries (and their page faults) that autograd over `baddbmm` creates. With
    (64, 64) hidden layers that trains 1.1-1.3x and infers 1.05-1.15x as fast as a Python list of
    nn.Sequential members, where `baddbmm` under autograd was 0.85-1.0x and 0.7-0.8x; with
    (256, 256) both are bound by the same matmuls (see benchmarks/throughput.py). Other devices
    keep the batched-matmul form (`_batched_forward`).
    """

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
        if x.dim() not in (2, 3):
            raise ValueError(f"expected inputs of shape (M, in) or (K, M, in), got {tuple(x.shape)}")
        params = [t for pair in zip(self.weights, self.biases) for t in pair]
        if x.device.type != "cpu" or self.negative_slope < 0 or len(params) < 4:  # see _EnsembleMLPFunction
            return _batched_forward(x, params, self.negative_slope)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _EnsembleMLPFunction.apply(x, self.negative_slope, *params)
        return _member_forward(x, params, self.negative_slope, save=False)[0]


# Rows per block when evaluating without gradients: bounds the scratch memory on huge batches.
_INFERENCE_ROWS = 1 << 15
_leaky_relu_backward_ = torch.ops.aten.leaky_relu_backward.grad_input  # out= variant: lets the grad be updated in place


def _member_forward(
    x: torch.Tensor, params: Sequence[torch.Tensor], slope: float, save: bool
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Member-major forward over stacked params. With `save`, returns the post-activation hidden
    outputs as (K, M, h) tensors for the backward; without, reuses one scratch buffer per layer."""
    ws, bs = params[0::2], params[1::2]
    k_members, rows = ws[0].shape[0], x.shape[-2]
    block = max(1, rows if save else min(rows, _INFERENCE_ROWS))
    out = torch.empty(k_members, rows, dtype=x.dtype, device=x.device)
    if save:
        hs = [torch.empty(k_members, rows, w.shape[2], dtype=x.dtype, device=x.device) for w in ws[:-1]]
    else:
        scratch = [torch.empty(block, w.shape[2], dtype=x.dtype, device=x.device) for w in ws[:-1]]
    for k in range(k_members):
        xk = x if x.dim() == 2 else x[k]
        for s in range(0, rows, block):
            e = min(s + block, rows)
            h = xk[s:e]
            for i in range(len(ws) - 1):
                h = torch.addmm(bs[i][k], h, ws[i][k], out=hs[i][k, s:e] if save else scratch[i][: e - s])
                nn.functional.leaky_relu(h, slope, inplace=True)
            torch.addmv(bs[-1][k, 0], h, ws[-1][k, :, 0], out=out[k, s:e])
    return out, (hs if save else None)


class _EnsembleMLPFunction(torch.autograd.Function):
    """EnsembleMLP's CPU forward and its hand-written backward, both member by member.

    The backward reuses one scratch buffer per layer across members and writes weight gradients
    straight into their stacked tensors; leaky ReLU's derivative is read off the saved outputs
    (their sign is the input's, since the slope is not negative), so pre-activations are never stored.
    Needs a slope >= 0 and at least one hidden layer; EnsembleMLP uses `_batched_forward` otherwise.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, *params: torch.Tensor) -> torch.Tensor:
        out, hs = _member_forward(x, params, slope, save=True)
        ctx.save_for_backward(x, *params[0::2], *hs)  # hs: intermediates, freed after the backward
        ctx.slope, ctx.n_layers = slope, len(params) // 2
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, *saved = ctx.saved_tensors
        slope, n_layers = ctx.slope, ctx.n_layers
        ws, hs = saved[:n_layers], saved[n_layers:]
        k_members, rows = ws[0].shape[0], grad.shape[1]
        grad = grad.contiguous()
        new = dict(dtype=grad.dtype, device=grad.device)
        gws = [torch.empty_like(w) for w in ws]
        gbs = [torch.empty(w.shape[0], 1, w.shape[2], **new) for w in ws]
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        scratch = [torch.empty(rows, w.shape[2], **new) for w in ws[:-1]]
        torch.sum(grad, 1, keepdim=True, out=gbs[-1][:, :, 0])
        for k in range(k_members):
            h = hs[-1][k]
            torch.mv(h.t(), grad[k], out=gws[-1][k, :, 0])
            d = torch.outer(grad[k], ws[-1][k, :, 0], out=scratch[-1])
            _leaky_relu_backward_(d, h, slope, True, grad_input=d)
            for i in range(n_layers - 2, 0, -1):
                h_prev = hs[i - 1][k]
                torch.mm(h_prev.t(), d, out=gws[i][k])
                torch.sum(d, 0, keepdim=True, out=gbs[i][k])
                d = torch.mm(d, ws[i][k].t(), out=scratch[i - 1])
                _leaky_relu_backward_(d, h_prev, slope, True, grad_input=d)
            xk = x if x.dim() == 2 else x[k]
            torch.mm(xk.t(), d, out=gws[0][k])
            torch.sum(d, 0, keepdim=True, out=gbs[0][k])
            if gx is not None:
                (gx if x.dim() == 2 else gx[k]).addmm_(d, ws[0][k].t())
        return (gx, None, *[g for pair in zip(gws, gbs) for g in pair])


def _batched_forward(x: torch.Tensor, params: Sequence[torch.Tensor], slope: float) -> torch.Tensor:
    """The same MLPs as batched matmuls under autograd (for accelerators, where one kernel per layer wins)."""
    ws, bs = params[0::2], params[1::2]
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(ws[0].shape[0], -1, -1)
    for w, b in zip(ws[:-1], bs[:-1]):
        x = nn.functional.leaky_relu(torch.baddbmm(b, x, w), slope)
    return (x * ws[-1].transpose(1, 2)).sum(-1) + bs[-1][:, :, 0]


class RewardModel(nn.Module):
    """An ensemble reward r(obs, act, next_obs) with input and output normalization built in."""

    def __init__(
        self,
        observation_space: gym_spaces.Space,
        action_space: gym_spaces.Space,
        *,
        ensemble_size: int = 3,
        hidden: Sequence[int] = (64, 64),
        inputs: Sequence[str] = DEFAULT_INPUTS,
        seed: int | None = None,
    ):
        super().__init__()
        check_space(observation_space, "observation")
        check_space(action_space, "action")
        inputs = input_kinds(inputs, f"reward inputs {list(inputs)}")
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden layer sizes must be a non-empty list of positive integers, got {list(hidden)}")
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_dim, self.act_dim = flat_dim(observation_space), flat_dim(action_space)
        self.inputs = inputs
        self.ensemble_size, self.hidden = ensemble_size, tuple(hidden)
        self.in_dim = sum(self.act_dim if i.startswith("act") else self.obs_dim for i in self.inputs)
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
        if "act_sq" in self.inputs:
            parts["act_sq"] = np.square(np.asarray(acts, dtype=np.float32))
        return np.concatenate([np.asarray(parts[k], dtype=np.float32) for k in self.inputs], axis=-1)

    def segment_features(self, segs: Segments) -> np.ndarray:
        """(N, H, in_dim) raw features of a batch of segments."""
        return self.features(segs.obs, segs.acts, segs.next_obs)

    def set_input_normalization(self, x: np.ndarray, keep_function: bool = False) -> None:
        """Standardize inputs with the mean/std of sample features x (M, in_dim). With `keep_function`, the first layer
        takes the change in, so every member computes the same function of the raw inputs as before: the new
        standardization only conditions later training. A feature that was constant under the old standardization
        (its std at the floor) is kept as it was at its one seen value only: folding it whole would multiply its
        weights by its new std over the floor, ~1e6."""
        mean = torch.as_tensor(x.mean(0), dtype=self.in_mean.dtype)
        std = torch.as_tensor(x.std(0) + _STD_FLOOR, dtype=self.in_std.dtype)
        if keep_function:
            old_std = torch.where(self.in_std < 2 * _STD_FLOOR, std, self.in_std)
            with torch.no_grad():  # z_old = (std z_new + mean - old mean) / old std, folded into W and b
                w, b = self.net.weights[0], self.net.biases[0]  # (K, in, h), (K, 1, h)
                b += torch.einsum("i,kih->kh", (mean - self.in_mean) / old_std, w)[:, None, :]
                w *= (std / old_std)[None, :, None]
        self.in_mean.copy_(mean)
        self.in_std.copy_(std)
        self._np_params = None

    # ------------------------------------------------------------- forward
    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalized per-member rewards for raw features x (..., in_dim) -> (K, ...)."""
        lead = x.shape[:-1]
        z = ((x - self.in_mean) / self.in_std).reshape(-1, self.in_dim)
        return self.net(z).reshape(self.ensemble_size, *lead)

    def step_rewards(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-member rewards (K, N, H) of each step of segments with features x (N, H, in): the network's on real
        steps, the learned absorbing reward after an episode's end."""
        return self.member_rewards(x) * mask + (1.0 - mask) * self.absorbing.view(-1, 1, 1)

    def segment_returns(self, x: torch.Tensor, mask: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
        """Per-member segment returns (K, N) for features x (N, H, in): real steps plus absorbing ones; with a 0/1
        `window` (N, H), only the steps it marks (a segment cropped in time)."""
        steps = self.step_rewards(x, mask)
        return (steps if window is None else steps * window).sum(-1)

    @torch.no_grad()
    def segment_member_returns(self, segs: Segments) -> np.ndarray:
        """Per-member learned returns (K, N) of a batch of segments (for samplers and metrics)."""
        x = torch.as_tensor(self.segment_features(segs))
        return self.segment_returns(x, torch.as_tensor(segs.mask)).numpy()

    # ------------------------------------------------- output normalization
    @torch.no_grad()
    def set_output_normalization(self, x: np.ndarray, zero: str) -> None:
        """Scale each member to unit std on sample features x, with its zero at the learned absorbing reward
        (`absorbing`), at the mean reward on x (`mean`), or at the network's own output 0 (`raw`).

        Without terminations in the data the absorbing reward is never trained, so callers put the zero
        at the mean reward instead (a constant shift is harmless without early termination).
        """
        check_choice("zero", zero, REWARD_ZEROS)
        r = self.member_rewards(torch.as_tensor(x, dtype=torch.float32))
        if zero == "absorbing":
            shift = self.absorbing.detach().clone()
        elif zero == "mean":
            shift = r.mean(dim=1)
        else:
            shift = torch.zeros(self.ensemble_size)
        self.out_shift.copy_(shift)
        self.out_scale.copy_(r.std(dim=1) + 1e-6)
        self._np_params = None

    def _compile_numpy(self) -> list[np.ndarray]:
        """Fold input and output normalization and the member average into plain numpy weights.

        The first layers of all members share the input, so they become one (in, K*h) matmul;
        the last layers and the mean over normalized members become one dot product (and, for the members one
        by one, one per member).
        """
        k = self.ensemble_size
        ws = [w.detach().cpu().double().numpy() for w in self.net.weights]
        bs = [b.detach().cpu().double().numpy() for b in self.net.biases]
        mean, std = self.in_mean.double().numpy(), self.in_std.double().numpy()
        shift, scale = self.out_shift.double().numpy(), self.out_scale.double().numpy()
        w1 = ws[0] / std[None, :, None]
        b1 = bs[0][:, 0, :] - np.einsum("i,kih->kh", mean / std, ws[0])
        first = (w1.transpose(1, 0, 2).reshape(w1.shape[1], -1), b1.reshape(-1))
        w_member = ws[-1][..., 0] / scale[:, None]  # (K, h_L): each member's last layer, normalized
        c_member = (bs[-1][:, 0, 0] - shift) / scale  # (K,)
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        middle = [(f32(w), f32(b)) for w, b in zip(ws[1:-1], bs[1:-1])]
        return [(f32(first[0]), f32(first[1])), middle, f32(w_member / k), np.float32(c_member.sum() / k),
                f32(w_member), f32(c_member)]

    def _last_hidden(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Every member's last hidden layer (K, B, h_L) for a batch of flat transitions, on the numpy weights."""
        if self._np_params is None:
            self._np_params = self._compile_numpy()
        (w1, b1), middle = self._np_params[:2]
        slope, k = self.net.negative_slope, self.ensemble_size
        h = self.features(obs, acts, next_obs) @ w1 + b1  # all members' first layers at once: (B, K*h1)
        h = np.maximum(h, slope * h)
        h = h.reshape(len(h), k, -1).transpose(1, 0, 2)  # (K, B, h1)
        for w, b in middle:
            h = np.matmul(h, w) + b
            h = np.maximum(h, slope * h)
        return h

    def predict(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Normalized ensemble-mean reward for a batch of flat transitions, shape (B,). Numpy fast path."""
        h = self._last_hidden(obs, acts, next_obs)
        w_mean, c_mean = self._np_params[2:4]
        return np.einsum("kbh,kh->b", h, w_mean) + c_mean

    def predict_members(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Each member's normalized reward for a batch of flat transitions, shape (K, B); their mean is `predict`'s."""
        h = self._last_hidden(obs, acts, next_obs)
        w_member, c_member = self._np_params[4:]
        return np.einsum("kbh,kh->kb", h, w_member) + c_member[:, None]

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
    ) -> RewardModel:
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
