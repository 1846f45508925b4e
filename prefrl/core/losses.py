"""Preference, demonstration and policy-optimisation losses: the project's single loss core.

Pure functions on torch tensors. No environments, models or other ``prefrl`` imports, so that
the MuJoCo reward-model trainer and the LLM trainer share exactly the same arithmetic.

Conventions
-----------
* A *score* is a scalar per segment/sequence: a summed learned reward for a MuJoCo segment, or a
  log-ratio ``log pi(y|x) - log pi_ref(y|x)`` for an LLM response.
* Every loss takes ``reduction`` in ``{"mean", "sum", "none"}``; ``"none"`` returns the
  per-example loss with the broadcast shape of the inputs.
* Paired inputs must broadcast to the shape of one of them. Shapes such as ``(N,)`` and ``(N, 1)``
  are rejected: broadcasting them would silently produce an ``(N, N)`` outer product.
* Log-probabilities are always taken via ``F.logsigmoid`` / ``torch.logaddexp``, never
  ``log(sigmoid(x))``, which underflows to ``-inf`` for ``x`` around ``-100`` in float32.

Sources: Christiano et al. 2017 (Bradley-Terry reward learning, label noise); Rafailov et al. 2023
(DPO); Azar et al. 2023 (IPO); Chowdhury et al. 2024 (robust DPO); Liu et al. 2024 (RPO); the DPO
variants of TRL's ``DPOTrainer`` (EXO, NCA, BCO, SPPO, AOT, APO, DiscoPOP), checked against TRL itself in
``tests/test_trl_parity.py``;
Li et al. 2024 (AIHF, joint demonstration and preference learning); Zhou et al. 2023 (MODPO).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DPO_LOSS_TYPES",
    "REDUCTIONS",
    "aihf_dpo_loss",
    "aihf_loss",
    "bradley_terry_loss",
    "bradley_terry_probability",
    "check_aihf_weights",
    "check_loss_combination",
    "dpo_loss",
    "dpo_rewards",
    "label_noise_estimate",
    "label_noise_interval",
    "label_noise_profile",
    "ml_irl_loss",
    "modpo_loss",
    "pseudo_label_loss",
    "reward_model_loss",
    "rpo_loss",
    "SEQUENCE_LOSS_TYPES",
    "sequence_nll",
    "sft_loss",
]

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
"""Valid values of every ``reduction`` argument."""

DPO_LOSS_TYPES: tuple[str, ...] = (
    "sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sigmoid_norm",
)
"""Valid values of ``dpo_loss(loss_type=...)``, named as in TRL's ``DPOTrainer``, whose arithmetic each follows."""

SEQUENCE_LOSS_TYPES: tuple[str, ...] = DPO_LOSS_TYPES + ("sft",)
"""Every loss TRL's ``DPOTrainer`` accepts in ``loss_type``: the DPO family and ``sft`` (``sft_loss``)."""

_SMOOTHING = {  # loss type -> (upper bound of label_smoothing, whether the bound is open, whether 0 is allowed)
    "sigmoid": (0.5, False, True),
    "robust": (0.5, True, True),  # ls = 0.5 makes the label pure noise and the 1/(1-2ls) correction infinite
    "exo_pair": (0.5, False, False),  # EXO's target distribution [1 - ls, ls]: log(ls) needs ls > 0
    "aot": (0.5, False, True),
    "aot_unpaired": (0.5, False, True),
}

Number = int | float


# --------------------------------------------------------------------------- validation helpers


def _check_reduction(reduction: str) -> None:
    """Raise ValueError unless ``reduction`` is one of REDUCTIONS."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply a validated reduction."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> torch.Size:
    """Check two tensors broadcast to the shape of one of them; return that shape."""
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{name_a} shape {tuple(a.shape)} and {name_b} shape {tuple(b.shape)} do not broadcast"
        ) from None
    # Broadcasting that enlarges *both* inputs is almost always a bug ((N,) vs (N, 1) -> (N, N)).
    if shape != a.shape and shape != b.shape:
        raise ValueError(
            f"{name_a} shape {tuple(a.shape)} and {name_b} shape {tuple(b.shape)} would broadcast "
            f"to {tuple(shape)}, larger than both; reshape one of them explicitly"
        )
    return shape


def _check_number(
    name: str,
    value: Number,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """Check a finite python number lies in the given interval; return it as float."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number in {interval}, got {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low)
    ok = ok and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


def _as_nonneg(name: str, value: Number | Tensor, like: Tensor) -> float | Tensor:
    """Validate a nonnegative scalar or per-example tensor (e.g. a margin)."""
    if isinstance(value, Tensor) and value.numel() != 1:
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError(
                f"{name} must be finite and in [0, inf) everywhere, got min {value.min().item()!r}"
            )
        return value.to(dtype=like.dtype, device=like.device)
    return _check_number(name, value, 0.0)


def check_aihf_weights(pref_weight: Number, demo_weight: Number) -> tuple[float, float]:
    """The AIHF weights (W_P, W_D) as floats: finite, >= 0 and not both zero, else a ValueError naming them."""
    w_p = _check_number("pref_weight", pref_weight, 0.0)
    w_d = _check_number("demo_weight", demo_weight, 0.0)
    if w_p == 0.0 and w_d == 0.0:
        raise ValueError(
            f"pref_weight and demo_weight must not both be zero, got pref_weight={pref_weight!r}, "
            f"demo_weight={demo_weight!r}"
        )
    return w_p, w_d


# --------------------------------------------------------------------------- Bradley-Terry


def _check_labels(label: Tensor) -> None:
    """Refuse preference labels outside [0, 1], naming their range (NaN fails both comparisons: tested apart)."""
    if bool(torch.isnan(label).any()) or bool(((label < 0) | (label > 1)).any()):
        raise ValueError(f"label must lie in [0, 1] everywhere (no NaN), got min {label.min().item()!r}, "
                         f"max {label.max().item()!r}")


def _log_bt_prob(x: Tensor, noise: float) -> Tensor:
    """log(noise/2 + (1-noise)*sigmoid(x)), computed stably."""
    if noise == 0.0:
        return F.logsigmoid(x)
    # log-sum-exp of the two mixture components: never forms sigmoid(x) itself.
    floor = torch.full((), math.log(noise / 2.0), dtype=x.dtype, device=x.device)
    return torch.logaddexp(floor, math.log1p(-noise) + F.logsigmoid(x))


def bradley_terry_probability(score_a: Tensor, score_b: Tensor, *, noise: float = 0.0) -> Tensor:
    """P(segment a preferred) = ``noise/2 + (1-noise) * sigmoid(score_a - score_b)``.

    Bradley-Terry model with a uniform label-noise floor (Christiano et al. 2017 use noise=0.1:
    the teacher answers at random 10% of the time). Used by samplers and metrics.
    """
    noise = _check_number("noise", noise, 0.0, 1.0)
    _check_pair(score_a, score_b, "score_a", "score_b")
    return noise / 2.0 + (1.0 - noise) * torch.sigmoid(score_a - score_b)


def bradley_terry_loss(
    score_a: Tensor,
    score_b: Tensor,
    label: float | Tensor,
    *,
    margin: float | Tensor = 0.0,
    noise: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Bradley-Terry cross-entropy between preference labels and segment scores.

    With ``delta = score_a - score_b`` and ``P(x) = noise/2 + (1-noise) * sigmoid(x)``::

        loss = -[label * log P(delta - margin) + (1 - label) * log(1 - P(delta + margin))]

    where ``1 - P(x) = P(-x)``. ``label`` is the probability that a is preferred (1 a better,
    0 b better, 0.5 tie, any soft value in [0, 1]). The margin demands the winner beat the loser
    by at least ``margin``; ``noise`` in [0, 1) bounds the loss by ``-log(noise/2)`` so that
    mislabelled pairs cannot dominate (Christiano et al. 2017, section 2.2.3).
    """
    _check_reduction(reduction)
    noise = _check_number("noise", noise, 0.0, 1.0)
    margin = _as_nonneg("margin", margin, score_a)
    shape = _check_pair(score_a, score_b, "score_a", "score_b")
    delta = score_a - score_b

    if isinstance(label, Tensor):
        _check_labels(label)
        label_t = label.to(dtype=delta.dtype, device=delta.device)
        _check_pair(delta, label_t, "score difference", "label")
    else:
        _check_number("label", label, 0.0, 1.0, high_open=False)
        label_t = torch.full(shape, float(label), dtype=delta.dtype, device=delta.device)
    if isinstance(margin, Tensor):
        _check_pair(delta, margin, "score difference", "margin")

    log_p_a = _log_bt_prob(delta - margin, noise)
    log_p_b = _log_bt_prob(-(delta + margin), noise)
    loss = -(label_t * log_p_a + (1.0 - label_t) * log_p_b)
    return _reduce(loss, reduction)


LABEL_NOISE_SCALES = 2.0 ** (torch.arange(-48, 49, dtype=torch.float64) / 8)  # label_noise_estimate's scales: 1/64 .. 64
CHI2_95 = 3.841458820694124  # the 95% quantile of chi-square with one degree of freedom


def label_noise_estimate(score_a: Tensor, score_b: Tensor, label: Tensor, *, max_noise: float = 0.8) -> float:
    """The label-noise floor under which `label` is likeliest given the scores up to their scale: the
    maximum-likelihood ``noise`` in [0, max_noise] of ``bradley_terry_loss`` on ``c * score_a, c * score_b``, fitted
    together with a common scale ``c`` > 0 (searched on a grid from 1/64 to 64).

    The scale is what makes the floor identifiable from a reward trained without one: such a reward takes a teacher's
    flips in by shrinking its differences (so that no pair is ever very sure), and under its own scale no floor adds
    anything. Scaled up, its confident pairs show what share of answers still contradicts them. For each scale the
    log-likelihood is a sum of logs of functions linear in ``noise``, hence concave in it: its maximum is 0 where the
    slope at 0 is not positive, ``max_noise`` where the slope there is not negative, else the slope's one root, found
    by bisection. On pairs the scores were not fitted to, the floor counts the answers the scores cannot explain: a
    teacher's flipped answers (a flip rate m gives 2m) and the model's own errors. ``max_noise`` < 1 keeps a floor that
    the scores still move (at 1 the loss no longer depends on them).
    """
    _check_number("max_noise", max_noise, 0.0, 1.0)
    delta, y = _noise_fit_inputs(score_a, score_b, label)
    scales = LABEL_NOISE_SCALES
    s = torch.sigmoid(scales[:, None] * delta)  # (C, N): P(a) without a floor

    def prob(noise: Tensor) -> Tensor:  # P(a preferred) per scale and pair, kept off 0 and 1
        return (noise[:, None] / 2 + (1 - noise[:, None]) * s).clamp(1e-300, 1 - 1e-16)

    def slope(noise: Tensor) -> Tensor:  # d log-likelihood / d noise per scale; dP/dnoise = 1/2 - s
        p = prob(noise)
        return ((0.5 - s) * (y / p - (1 - y) / (1 - p))).sum(1)

    least, most = torch.zeros(len(scales), dtype=torch.float64), torch.full((len(scales),), float(max_noise),
                                                                          dtype=torch.float64)
    low, high = least, most
    for _ in range(50):  # the root to 2^-50 of max_noise, where there is one
        mid = (low + high) / 2
        up = slope(mid) > 0
        low, high = torch.where(up, mid, low), torch.where(up, high, mid)
    noise = torch.where(slope(least) <= 0, least, torch.where(slope(most) >= 0, most, (low + high) / 2))
    p = prob(noise)
    loglik = (y * p.log() + (1 - y) * (1 - p).log()).sum(1)
    return float(noise[loglik.argmax()])


def label_noise_profile(score_a: Tensor, score_b: Tensor, label: Tensor, noise: Tensor) -> Tensor:
    """The profile log-likelihood of the label-noise floor: for each floor of ``noise`` (F,), the log-likelihood of
    ``label`` under ``bradley_terry_loss`` with that floor at its best common scale of the scores (``label_noise_estimate``'s
    scale grid). ``label_noise_estimate`` is its maximum (off the grid); how fast it falls away says how well the labels
    determine the floor (``label_noise_interval``)."""
    delta, y = _noise_fit_inputs(score_a, score_b, label)
    noise = torch.as_tensor(noise, dtype=torch.float64).flatten()
    if noise.numel() == 0 or not bool(((noise >= 0) & (noise < 1)).all()):
        raise ValueError(f"noise {noise.tolist()}: expected one or more floors in [0, 1)")
    scaled = LABEL_NOISE_SCALES[:, None] * delta  # (C, N)
    zeros, labels = torch.zeros_like(scaled), y.expand_as(scaled)
    return torch.stack([-bradley_terry_loss(scaled, zeros, labels, noise=float(f), reduction="none").sum(1).min()
                        for f in noise])


def label_noise_interval(score_a: Tensor, score_b: Tensor, label: Tensor, *, max_noise: float = 0.8,
                         step: float = 0.01) -> tuple[float, float]:
    """The floor's 95% likelihood-ratio interval: the lowest and highest floor on a grid of ``step`` over
    [0, max_noise] whose profile log-likelihood (``label_noise_profile``) is within 1.92 nats (half the chi-square
    95% quantile with one degree of freedom) of the grid's best. Few or barely informative pairs give an interval
    as wide as the range: the estimate then says little about the teacher."""
    _check_number("max_noise", max_noise, 0.0, 1.0)
    _check_number("step", step, 0.0, 1.0, low_open=True)
    floors = torch.linspace(0.0, max_noise, int(round(max_noise / step)) + 1, dtype=torch.float64)
    loglik = label_noise_profile(score_a, score_b, label, floors)
    inside = floors[loglik >= loglik.max() - CHI2_95 / 2]
    return float(inside.min()), float(inside.max())


def _noise_fit_inputs(score_a: Tensor, score_b: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Score differences and labels (N,) in float64 for the label-noise floor's likelihood, bad input refused."""
    _check_pair(score_a, score_b, "score_a", "score_b")
    if label.shape != score_a.shape:
        raise ValueError(f"label shape {tuple(label.shape)} must match the scores' {tuple(score_a.shape)}")
    y = label.detach().double().flatten()
    if y.numel() == 0:
        raise ValueError("a label-noise estimate needs at least one labelled pair, got none")
    _check_labels(y)
    return (score_a - score_b).detach().double().flatten(), y


def pseudo_label_loss(
    score_a: Tensor,
    score_b: Tensor,
    target_a: Tensor,
    target_b: Tensor,
    *,
    threshold: float,
    reduction: str = "mean",
) -> tuple[Tensor, Tensor]:
    """SURF's semi-supervised term (Park et al. 2022) on unlabelled pairs; returns (loss, confident).

    The model's own prediction ``P = sigmoid(target_a - target_b)`` (no gradient) labels a pair with its likelier
    side when ``max(P, 1 - P) >= threshold``; the loss is the Bradley-Terry loss of ``score_a``/``score_b`` (the
    same pairs, e.g. cropped in time) against those labels, zero for the pairs below the threshold, averaged over
    all pairs as in the authors' code. ``confident`` is the 0/1 tensor of pairs that were labelled.
    """
    threshold = _check_number("threshold", threshold, 0.5, 1.0, high_open=False)
    _check_pair(target_a, target_b, "target_a", "target_b")
    with torch.no_grad():
        p = torch.sigmoid(target_a - target_b)
        confident = (torch.maximum(p, 1.0 - p) >= threshold).to(score_a.dtype)
        labels = (p > 0.5).to(score_a.dtype)
    loss = bradley_terry_loss(score_a, score_b, labels, reduction="none") * confident
    return _reduce(loss, reduction), confident


def reward_model_loss(
    reward_chosen: Tensor,
    reward_rejected: Tensor,
    *,
    margin: float | Tensor = 0.0,
    center_coef: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Pairwise reward-model loss in TRL ``RewardTrainer`` form.

    ``-logsigmoid(r_c - r_r - margin) + center_coef * (r_c + r_r)^2``. The margin (per-example,
    as in Llama 2's rating-gap margins) is the label-1 Bradley-Terry loss with margin; the centring
    term (Eisenstein et al. 2023, TRL ``center_rewards_coefficient``) pins the reward's free offset
    near zero.
    """
    _check_reduction(reduction)
    margin = _as_nonneg("margin", margin, reward_chosen)
    center_coef = _check_number("center_coef", center_coef, 0.0)
    _check_pair(reward_chosen, reward_rejected, "reward_chosen", "reward_rejected")
    diff = reward_chosen - reward_rejected
    if isinstance(margin, Tensor):
        _check_pair(diff, margin, "reward difference", "margin")
    loss = -F.logsigmoid(diff - margin)
    if center_coef != 0.0:
        loss = loss + center_coef * (reward_chosen + reward_rejected) ** 2
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------- DPO family


def _dpo_margin(logratio_chosen: Tensor, logratio_rejected: Tensor) -> Tensor:
    """h = logratio_chosen - logratio_rejected after a shape check."""
    _check_pair(logratio_chosen, logratio_rejected, "logratio_chosen", "logratio_rejected")
    return logratio_chosen - logratio_rejected


def _per_token(name: str, tokens: Tensor | None, like: Tensor, loss_type: str) -> Tensor:
    """Completion token counts for a length-normalized loss: positive, finite, shaped like the log-ratios."""
    if tokens is None:
        raise ValueError(f"loss_type={loss_type!r} divides log-ratios by completion lengths: {name} is required")
    n = torch.as_tensor(tokens).to(dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(n).all()) or bool((n <= 0).any()):
        raise ValueError(f"{name} must be finite and in (0, inf) everywhere, got min {n.min().item()!r}")
    _check_pair(like, n, "logratio", name)
    return n


def _sorted(x: Tensor) -> Tensor:
    """``x`` sorted along the batch (first) dimension, as AOT compares quantiles rather than pairs."""
    return torch.sort(x, dim=0).values


def dpo_loss(
    logratio_chosen: Tensor,
    logratio_rejected: Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_tokens: Tensor | None = None,
    rejected_tokens: Tensor | None = None,
    ref_margin: Tensor | None = None,
    discopop_tau: float = 0.05,
    reduction: str = "mean",
) -> Tensor:
    """Direct preference optimisation loss and its variants, each as TRL's ``DPOTrainer`` computes it.

    Each log-ratio is ``log pi(y|x) - log pi_ref(y|x)`` summed over the response: ``c`` for the chosen,
    ``r`` for the rejected one; ``h = c - r``, ``z = beta h``, ``ls = label_smoothing``, ``s = logsigmoid``:

    * ``sigmoid``: ``-(1-ls) s(z) - ls s(-z)`` (Rafailov et al. 2023; ls > 0 is conservative DPO).
    * ``ipo``: ``(h - 1/(2 beta))^2`` (Azar et al. 2023). With ``chosen_tokens``/``rejected_tokens`` the
      log-ratios are first divided by their completion lengths, as TRL does (its authors confirmed with
      IPO's that the paper's results use this form); without them the summed log-ratios are used.
    * ``hinge``: ``relu(1 - z)`` (SLiC). ``robust``: ``[-(1-ls) s(z) + ls s(-z)] / (1 - 2 ls)``, unbiased
      under a label-flip rate ls (Chowdhury et al. 2024).
    * ``exo_pair``: ``KL(softmax(beta [c, r]) || [1-ls, ls])`` (EXO, Ji et al. 2024); needs ls > 0.
    * ``nca_pair``: ``-s(beta c) - s(-beta c)/2 - s(-beta r)/2`` (NCA, Chen et al. 2024).
    * ``bco_pair``: ``-s(beta c) - s(-beta r)`` (BCO's paired form, without a running reward shift, as TRL).
    * ``sppo_hard``: ``(c - 1/(2 beta))^2 + (r + 1/(2 beta))^2`` (SPPO with hard win probabilities).
    * ``aot``: sigmoid DPO on the sorted policy margins ``sort(c - r + ref_margin)`` against the sorted reference
      margins ``sort(ref_margin)``, ``ref_margin = log pi_ref(y_c) - log pi_ref(y_r)`` (AOT, Melnyk et al.
      2024); ``aot_unpaired``: on ``sort(c) - sort(r)``. Both pair quantiles across the batch, so their
      ``none`` reduction gives one value per rank, not per example.
    * ``apo_zero``: ``1 - sigmoid(beta c) + sigmoid(beta r)``; ``apo_down``: ``sigmoid(beta c) + 1 -
      sigmoid(z)`` (APO, D'Oosterlinck et al. 2024).
    * ``discopop``: ``-s(z) (1 - m) + exp(-z) m`` with ``m = sigmoid(z / discopop_tau)`` (DiscoPOP, Chan Lu
      et al. 2024), computed as ``exp(-z + s(z/tau))`` so that neither factor overflows.
    * ``sigmoid_norm``: sigmoid DPO on per-token log-ratios ``c/n_c - r/n_r``; needs the token counts.

    ``label_smoothing`` applies to ``sigmoid``, ``robust``, ``exo_pair``, ``aot`` and ``aot_unpaired`` and must be
    0 for the rest.
    """
    _check_reduction(reduction)
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {DPO_LOSS_TYPES}, got {loss_type!r}")
    beta = _check_number("beta", beta, 0.0, low_open=True)
    if loss_type in _SMOOTHING:
        high, high_open, zero_ok = _SMOOTHING[loss_type]
        ls = _check_number("label_smoothing", label_smoothing, 0.0, high, low_open=not zero_ok, high_open=high_open)
    else:
        # Silently ignoring a smoothing setting would hide a misconfigured run.
        if label_smoothing != 0.0:
            raise ValueError(
                f"label_smoothing applies only to loss_type {tuple(_SMOOTHING)}; it must be 0 "
                f"for loss_type={loss_type!r}, got {label_smoothing!r}"
            )
        ls = 0.0
    c, r = logratio_chosen, logratio_rejected
    h = _dpo_margin(c, r)
    z = beta * h

    def smoothed(x: Tensor) -> Tensor:  # -(1 - ls) s(x) - ls s(-x), bit-identical to -s(x) at ls = 0
        loss = -F.logsigmoid(x)
        return loss if ls == 0.0 else (1.0 - ls) * loss - ls * F.logsigmoid(-x)

    if loss_type == "sigmoid":
        loss = smoothed(z)
    elif loss_type == "robust":
        loss = (-(1.0 - ls) * F.logsigmoid(z) + ls * F.logsigmoid(-z)) / (1.0 - 2.0 * ls)
    elif loss_type in ("ipo", "sigmoid_norm"):
        if loss_type == "sigmoid_norm" or chosen_tokens is not None or rejected_tokens is not None:
            h = (c / _per_token("chosen_tokens", chosen_tokens, c, loss_type)
                 - r / _per_token("rejected_tokens", rejected_tokens, r, loss_type))
        loss = (h - 1.0 / (2.0 * beta)) ** 2 if loss_type == "ipo" else -F.logsigmoid(beta * h)
    elif loss_type == "hinge":
        loss = F.relu(1.0 - z)
    elif loss_type == "exo_pair":
        loss = (torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-ls))
                + torch.sigmoid(-z) * (F.logsigmoid(-z) - math.log(ls)))
    elif loss_type == "nca_pair":
        loss = -F.logsigmoid(beta * c) - 0.5 * F.logsigmoid(-beta * c) - 0.5 * F.logsigmoid(-beta * r)
    elif loss_type == "bco_pair":
        loss = -F.logsigmoid(beta * c) - F.logsigmoid(-beta * r)
    elif loss_type == "sppo_hard":
        loss = (c - 0.5 / beta) ** 2 + (r + 0.5 / beta) ** 2
    elif loss_type == "aot":
        if ref_margin is None:
            raise ValueError("loss_type='aot' compares policy and reference margins: ref_margin is required")
        ref_margin = ref_margin.to(dtype=h.dtype, device=h.device)
        _check_pair(h, ref_margin, "logratio difference", "ref_margin")
        loss = smoothed(beta * (_sorted(h + ref_margin) - _sorted(ref_margin)))
    elif loss_type == "aot_unpaired":
        loss = smoothed(beta * (_sorted(c) - _sorted(r)))
    elif loss_type == "apo_zero":
        loss = 1.0 - torch.sigmoid(beta * c) + torch.sigmoid(beta * r)
    elif loss_type == "apo_down":
        loss = torch.sigmoid(beta * c) + 1.0 - torch.sigmoid(z)
    else:  # discopop
        tau = _check_number("discopop_tau", discopop_tau, 0.0, low_open=True)
        loss = -F.logsigmoid(z) * torch.sigmoid(-z / tau) + torch.exp(-z + F.logsigmoid(z / tau))
    return _reduce(loss, reduction)


def sft_loss(logp_chosen: Tensor, chosen_tokens: Tensor) -> Tensor:
    """Negative log-likelihood per completion token over the whole batch, ``-sum(logp) / sum(tokens)``.

    TRL's ``loss_type="sft"``: every token of the batch weighs the same, so a long completion counts more
    than a short one (``sequence_nll`` instead averages each sequence's per-token NLL).
    """
    n = _per_token("chosen_tokens", chosen_tokens, logp_chosen, "sft")
    return -logp_chosen.sum() / n.sum()


def check_loss_combination(types: Sequence[str], weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """(type, weight) pairs of a combined loss ``sum_i w_i * loss_i`` (TRL's ``loss_type`` list with
    ``loss_weights``; default weights 1): names from SEQUENCE_LOSS_TYPES, no name twice, finite weights >= 0 and
    not all 0, as many weights as types."""
    types = list(types)
    if not types:
        raise ValueError(f"at least one loss type is needed, from {SEQUENCE_LOSS_TYPES}")
    unknown = [t for t in types if t not in SEQUENCE_LOSS_TYPES]
    if unknown:
        raise ValueError(f"unknown loss type(s) {unknown}: expected names from {SEQUENCE_LOSS_TYPES}")
    if len(set(types)) != len(types):
        raise ValueError(f"a loss type is named twice in {types}: give it one weight instead")
    weights = [1.0] * len(types) if weights is None else list(weights)
    if len(weights) != len(types):
        raise ValueError(f"{len(weights)} loss weights for {len(types)} loss types {types}: expected one per type")
    checked = [_check_number(f"weight of {t}", w, 0.0) for t, w in zip(types, weights)]
    if not any(checked):
        raise ValueError(f"the loss weights {weights} are all 0: at least one must be positive")
    return list(zip(types, checked))


def dpo_rewards(
    logratio_chosen: Tensor, logratio_rejected: Tensor, beta: float
) -> tuple[Tensor, Tensor]:
    """Implicit DPO rewards ``beta * logratio`` for chosen and rejected, detached (for logging)."""
    beta = _check_number("beta", beta, 0.0, low_open=True)
    _check_pair(logratio_chosen, logratio_rejected, "logratio_chosen", "logratio_rejected")
    return beta * logratio_chosen.detach(), beta * logratio_rejected.detach()


def sequence_nll(
    logp_sum: Tensor, n_tokens: int | Tensor, *, reduction: str = "mean"
) -> Tensor:
    """Per-token negative log-likelihood ``-logp_sum / n_tokens`` of each sequence."""
    _check_reduction(reduction)
    if isinstance(n_tokens, Tensor):
        if bool((n_tokens <= 0).any()) or not bool(torch.isfinite(n_tokens).all()):
            raise ValueError(
                f"n_tokens must be finite and in (0, inf) everywhere, got min "
                f"{n_tokens.min().item()!r}"
            )
        n = n_tokens.to(dtype=logp_sum.dtype, device=logp_sum.device)
        _check_pair(logp_sum, n, "logp_sum", "n_tokens")
    else:
        n = _check_number("n_tokens", n_tokens, 0.0, low_open=True)
    return _reduce(-logp_sum / n, reduction)


def rpo_loss(
    logratio_chosen: Tensor,
    logratio_rejected: Tensor,
    chosen_nll: Tensor | None,
    *,
    beta: float = 0.1,
    alpha: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """RPO: sigmoid DPO plus ``alpha`` times the chosen response's NLL (Liu et al. 2024).

    ``-logsigmoid(beta h) + alpha * chosen_nll`` per example. The SFT term on the chosen responses
    acts as an adversarial regulariser against reward over-optimisation (TRL ``rpo_alpha``).
    ``chosen_nll`` is per example, e.g. ``sequence_nll(..., reduction="none")``; it may be None
    when ``alpha == 0``, which is then exactly ``dpo_loss``.
    """
    _check_reduction(reduction)
    alpha = _check_number("alpha", alpha, 0.0)
    loss = dpo_loss(logratio_chosen, logratio_rejected, beta=beta, reduction="none")
    if chosen_nll is not None:
        _check_pair(loss, chosen_nll, "logratio difference", "chosen_nll")
    if alpha != 0.0:
        if chosen_nll is None:
            raise ValueError(f"chosen_nll is required when alpha > 0, got alpha={alpha!r}")
        loss = loss + alpha * chosen_nll
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------- IRL / AIHF


def ml_irl_loss(
    demo_scores: Tensor, policy_scores: Tensor, *, l2: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """Maximum-likelihood IRL demonstration term ``mean(policy_scores) - mean(demo_scores)``.

    Minimising it raises the learned reward on demonstrations and lowers it on the current
    policy's samples (the reward-side gradient of ML-IRL, as used in AIHF, Li et al. 2024).
    The two batches may differ in size. The term is linear in the scores, so on its own it is
    unbounded below; ``l2 > 0`` adds ``l2 * (mean(demo_scores**2) + mean(policy_scores**2))``,
    which keeps the optimum finite (scores of +-1/(2 l2)). ``reduction="sum"`` sums instead of
    averaging; ``"none"`` is not defined for this term.
    """
    _check_reduction(reduction)
    l2 = _check_number("l2", l2, 0.0)
    if reduction == "none":
        raise ValueError(
            "ml_irl_loss compares two batches of possibly different sizes; reduction must be "
            "'mean' or 'sum', got 'none'"
        )
    if demo_scores.numel() == 0 or policy_scores.numel() == 0:
        raise ValueError(
            f"demo_scores and policy_scores must be non-empty, got shapes "
            f"{tuple(demo_scores.shape)} and {tuple(policy_scores.shape)}"
        )
    loss = _reduce(policy_scores, reduction) - _reduce(demo_scores, reduction)
    if l2 > 0:
        loss = loss + l2 * (_reduce(demo_scores.square(), reduction) + _reduce(policy_scores.square(), reduction))
    return loss


def aihf_loss(
    pref_loss: Tensor | None,
    demo_loss: Tensor | None,
    *,
    pref_weight: float = 1.0,
    demo_weight: float = 1.0,
) -> Tensor:
    """AIHF joint objective ``pref_weight * pref_loss + demo_weight * demo_loss`` (Li et al. 2024).

    Both terms are already-reduced losses from this module (MuJoCo: ``bradley_terry_loss`` and
    ``ml_irl_loss``; LLM: ``dpo_loss`` and ``sequence_nll``). A term whose weight is 0 is skipped
    entirely, so it may be None (or NaN): ``demo_weight=0`` is exactly preference-only training and
    ``pref_weight=0`` exactly demonstration-only IRL, in value and gradient.
    """
    w_p, w_d = check_aihf_weights(pref_weight, demo_weight)
    terms: list[Tensor] = []
    for name, weight, term in (("pref_loss", w_p, pref_loss), ("demo_loss", w_d, demo_loss)):
        if weight == 0.0:
            continue  # skip, rather than multiply by 0, so a NaN or None term cannot leak in
        if term is None:
            raise ValueError(
                f"{name} is None but its weight is {weight!r}; only a 0-weight term may be None"
            )
        terms.append(weight * term)
    if len(terms) == 2:
        _check_pair(terms[0], terms[1], "pref_loss", "demo_loss")
        return terms[0] + terms[1]
    return terms[0]


def aihf_dpo_loss(
    logratio_chosen: Tensor | None,
    logratio_rejected: Tensor | None,
    logratio_demo: Tensor | None,
    logratio_ref_sample: Tensor | None,
    *,
    beta: float = 0.1,
    pref_weight: float = 1.0,
    demo_weight: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """AIHF-DPO: DPO on preferences plus DPO of demonstrations against reference samples.

    ``-w_P logsigmoid(beta h(chosen, rejected)) - w_D logsigmoid(beta h(demo, ref_sample))``
    with ``h(a, b) = logratio_a - logratio_b``
    (Li et al. 2024), where a demonstration is treated as preferred over a response sampled from
    the reference policy. With ``mean``/``sum`` each term is reduced over its own batch, so the
    preference and demonstration batches may differ in size; ``none`` needs matching shapes.
    A pair may be None when its weight is 0, and is then skipped entirely.
    """
    _check_reduction(reduction)
    beta = _check_number("beta", beta, 0.0, low_open=True)
    w_p, w_d = check_aihf_weights(pref_weight, demo_weight)
    pairs = (
        ("pref", w_p, logratio_chosen, logratio_rejected, "logratio_chosen", "logratio_rejected"),
        ("demo", w_d, logratio_demo, logratio_ref_sample, "logratio_demo", "logratio_ref_sample"),
    )
    terms: list[Tensor] = []
    for kind, weight, win, lose, name_win, name_lose in pairs:
        if weight == 0.0:
            continue
        if win is None or lose is None:
            raise ValueError(
                f"{name_win} and {name_lose} are required when {kind}_weight={weight!r} > 0"
            )
        _check_pair(win, lose, name_win, name_lose)
        per_example = -F.logsigmoid(beta * (win - lose))
        # Reduce each term on its own batch: the two batches need not be the same size.
        terms.append(weight * _reduce(per_example, reduction))
    if len(terms) == 2:
        _check_pair(terms[0], terms[1], "preference loss", "demonstration loss")
        return terms[0] + terms[1]
    return terms[0]


def modpo_loss(
    logratio_chosen: Tensor,
    logratio_rejected: Tensor,
    margin_reward_chosen: Tensor,
    margin_reward_rejected: Tensor,
    *,
    weights: Sequence[float] | Tensor,
    beta: float = 0.1,
    reduction: str = "mean",
) -> Tensor:
    """Multi-objective DPO (Zhou et al. 2023).

    ``L = -logsigmoid((1/w_k) * [beta h - w_rest . (r_rest(y_w) - r_rest(y_l))])`` with
    ``h = logratio_chosen - logratio_rejected``. ``weights = (w_k, *w_rest)`` lies on the simplex:
    ``w_k > 0`` weights the objective whose preference data is being fitted, ``w_rest`` the other
    objectives whose (frozen) reward models give ``margin_reward_*`` of shape
    ``(..., len(weights) - 1)``. The reward margin steers the policy towards the weighted
    combination of all objectives.
    """
    _check_reduction(reduction)
    beta = _check_number("beta", beta, 0.0, low_open=True)
    w = torch.as_tensor(weights, dtype=torch.float64).detach()
    if w.dim() != 1 or w.numel() < 1:
        raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights must be finite and >= 0, got {w.tolist()}")
    if abs(float(w.sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (tolerance 1e-6), got sum {float(w.sum())!r}")
    w_k = float(w[0])
    if w_k <= 0.0:
        raise ValueError(f"weights[0] (w_k, the trained objective) must be in (0, 1], got {w_k!r}")

    h = _dpo_margin(logratio_chosen, logratio_rejected)
    n_rest = w.numel() - 1
    for name, m in (("margin_reward_chosen", margin_reward_chosen),
                    ("margin_reward_rejected", margin_reward_rejected)):
        if m.dim() < 1 or m.shape[-1] != n_rest:
            raise ValueError(
                f"{name} must have shape (..., {n_rest}) to match len(weights) - 1, "
                f"got {tuple(m.shape)}"
            )
    _check_pair(margin_reward_chosen, margin_reward_rejected,
                "margin_reward_chosen", "margin_reward_rejected")
    reward_gap = margin_reward_chosen - margin_reward_rejected
    w_rest = w[1:].to(dtype=reward_gap.dtype, device=reward_gap.device)
    margin = (reward_gap * w_rest).sum(dim=-1)
    _check_pair(h, margin, "logratio difference", "margin reward difference (leading dims)")
    loss = -F.logsigmoid((beta * h - margin) / w_k)
    return _reduce(loss, reduction)
