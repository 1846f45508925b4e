"""Fitting a reward ensemble: Bradley-Terry on labelled pairs, and the AIHF joint objective with demonstrations.

Every loss is a call into prefrl.core.losses; this module owns the data handling around it
(held-out split, bootstrap weights, early stopping, L2 tuning, output normalization after a fit).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from prefrl.core import losses
from prefrl.core.data import ComparisonDataset, Segments
from prefrl.core.demos import Demonstrations
from prefrl.core.training import EarlyStopping
from prefrl.core.validation import check_choice, check_positive_int, check_share
from prefrl.reward.model import RewardModel


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
    distrusted: int = 0  # training pairs left out of this fit as likely mislabelled (robust="rime")
    flipped: int = 0  # training pairs trained on with their answer reversed for this fit (robust="rime")
    pseudo_labelled: float = math.nan  # share of the unlabelled pairs given a pseudo-label in the last epoch (SURF)
    label_noise: float = 0.0  # the label-noise floor of the next fit (estimate_label_noise: from this fit's held-out pairs)
    label_noise_low: float = math.nan  # estimate_label_noise: the floor's 95% likelihood interval on the held-out pairs
    label_noise_high: float = math.nan


HOLDOUT = 1 / math.e
"""Share of the labelled pairs held out for early stopping and the L2 tuning (Christiano et al. 2017)."""
DEMO_ZEROS = ("absorbing", "policy", "raw")
PREF_FITS = ("shared", "converge")
RENORMALIZE = ("every", "first", "preserve")
"""When a fit standardizes the reward's inputs: at every fit, at the first only, or at every fit with the first layer
taking the change in (the reward stays the same function of its raw inputs)."""
ROBUST = ("none", "rime")


@dataclass(frozen=True)
class Surf:
    """SURF (Park et al. 2022): semi-supervised reward learning with temporal cropping.

    In every batch of a Bradley-Terry fit, `ratio` unlabelled pairs per labelled one (segment pairs drawn from
    the run's own experience) are labelled by each member's own prediction where it is at least `threshold`
    sure, and fitted with weight `weight` (`losses.pseudo_label_loss`); both the labelled and the unlabelled
    pairs are cropped in time: a pair's two segments keep the same random length in [H - crop, H], each from its
    own random start. A fit draws `pool` unlabelled pairs per labelled one. The defaults are the authors' code's
    (threshold_u 0.95, lambda_u 1, mu 1, inv_label_ratio 10); their crops are H +- 5 steps from segments stored
    5 steps longer on each side, while prefrl keeps only the labelled steps, so its crops lie inside them
    (a shift of up to `crop` steps). Held-out pairs are never cropped: early stopping and reports are unchanged.
    """

    threshold: float = 0.95
    weight: float = 1.0
    ratio: int = 1
    pool: int = 10
    crop: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or \
                not 0.5 <= self.threshold <= 1.0:
            raise ValueError(f"surf threshold {self.threshold!r}: expected a probability in [0.5, 1]")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or \
                not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"surf weight {self.weight!r}: expected a finite number >= 0")
        for name in ("ratio", "pool"):
            check_positive_int(f"surf {name}", getattr(self, name))
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 0:
            raise ValueError(f"surf crop {self.crop!r}: expected an integer >= 0 (steps)")

    def windows(self, n: int, horizon: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """0/1 masks (n, horizon) of the steps each pair's two segments keep."""
        length = rng.integers(max(horizon - self.crop, 1), horizon + 1, size=n)
        steps = np.arange(horizon)
        masks = []
        for _ in range(2):
            start = rng.integers(0, horizon - length + 1)
            masks.append(torch.as_tensor((steps >= start[:, None]) & (steps < (start + length)[:, None]),
                                         dtype=torch.float32))
        return masks[0], masks[1]


def check_rime_grace(grace: object, robust: str) -> None:
    """RIME's grace period (RimeFilter.grace_fits): a number of fits >= 0, and only with robust="rime"."""
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise ValueError(f"rime_grace={grace!r}: expected a number of fits >= 0")
    if grace and robust != "rime":
        raise ValueError(f"rime_grace={grace}: a grace period belongs to RIME's screen, expected robust rime")


@dataclass
class RimeFilter:
    """RIME's denoising discriminator (Cheng et al., ICML 2024), run before every epoch on the labels.

    A training pair's loss is the cross-entropy of its label under the ensemble's mean predicted preference.
    Pairs whose loss is below tau_lower = -ln(x) + alpha*x + min(beta_t*var, 3) are trusted, where x and var are
    running estimates (x at rate 0.1) of the largest loss and of the loss variance among pairs trusted so far,
    and beta_t decays linearly from `beta_start` to `beta_end` over `decay_epochs` epochs (more tolerance while
    the model is young). Pairs whose loss exceeds -ln(flip_tau) (the model gives the label less than flip_tau)
    are trained on with the answer reversed; the rest sit the epoch out. Labels are never changed in the
    dataset: every decision is remade at the next epoch. Ties (0.5) are always trusted. The defaults are the
    authors' locomotion settings (their code's `config/RIME.py`, k = 60, tau = 0.001).

    `grace_fits` > 0 trusts a label in the first `grace_fits` fits after it arrives, and keeps it out of the
    statistics meanwhile: the screen judges a label only once the reward has trained on it. In an online loop the
    newest labels are about the policy's newest behaviour, which a reward that has not seen them often ranks wrong.
    """

    alpha: float = 1.0
    beta_start: float = 2.0
    beta_end: float = 0.1
    decay_epochs: int = 60
    flip_tau: float = 1e-3
    grace_fits: int = 0
    epochs: int = 0
    max_loss: float = 0.0  # x: before any statistics every pair is trusted (tau_lower = -ln(1e-8))
    mean: float = 0.0
    var: float = 0.0
    count: int = 0

    def threshold(self) -> float:
        beta = max(self.beta_end, self.beta_start - (self.beta_start - self.beta_end) * self.epochs / self.decay_epochs)
        x = self.max_loss
        return -math.log(x + 1e-8) + self.alpha * x + min(beta * self.var, 3.0)

    def select(self, pair_loss: np.ndarray, y: np.ndarray,
               fresh: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(trusted, flipped) boolean masks over the pairs given their losses and labels (and which are still in
        their grace fits: trusted, and left out of the statistics); updates the statistics."""
        tie = y == 0.5
        fresh = np.zeros(len(y), bool) if fresh is None else fresh
        judged = (pair_loss < self.threshold()) | tie
        trusted = judged | fresh
        flipped = (pair_loss > -math.log(self.flip_tau)) & ~tie & ~trusted
        kept = pair_loss[judged & ~fresh]
        if len(kept):  # RIME's running statistics of the trusted losses: pooled variance, the mean and max at rate 0.1
            total, delta = self.count + len(kept), float(kept.mean()) - self.mean
            self.var = (self.var * self.count + float(kept.var()) * len(kept)
                        + delta**2 * self.count * len(kept) / total) / total
            self.mean += 0.1 * delta
            self.max_loss += 0.1 * (float(kept.max()) - self.max_loss)
            self.count = total
        self.epochs += 1
        return trusted, flipped


RIME_STATISTICS = ("epochs", "max_loss", "mean", "var", "count")  # what RimeFilter learns as it screens


class RewardTrainer:
    """Fits a RewardModel to a ComparisonDataset with the Bradley-Terry loss from prefrl.losses.

    Each member trains on its own bootstrap weights of the pairs; 1/e of the pairs are held out for early
    stopping, and the L2 weight is tuned so held-out loss stays within 1.1-1.5x the training loss
    (Christiano et al. 2017). Training warm-starts from the current weights on every call and
    spends at most `max_updates` gradient steps, so refits stay cheap as labels accumulate.
    `holdout_fraction=0` trains on every pair, as PEBBLE and B-Pref do: with few labels the third held out
    is a third of what the reward could learn from. Epochs then stop once each member ranks `fit_accuracy` of
    its own bootstrap pairs right (B-Pref's 97%), and the L2 weight stays where it is (as with under 10 pairs).

    Given demonstrations and `demo_weight > 0`, `fit` trains the AIHF objective instead
    (`losses.aihf_loss` of the Bradley-Terry term and `losses.ml_irl_loss` of demonstration
    segments against segments of the current policy). As in ML-IRL, the reward moves slowly
    against a policy that keeps up with it: `demo_updates` full-batch steps per refit (default 1)
    at `demo_lr` with weight decay `demo_weight_decay`, and the input normalization is fixed at the
    first joint fit (re-standardizing inputs on every refit would move the reward more than a step does).
    `pref_fit="converge"` (the default) runs on two timescales: after the joint steps, the preference term alone
    is fitted as preference-only training fits it (epochs until held-out loss stops improving, the L2 weight tuned
    to the held-out/training ratio), while the demonstration term keeps ML-IRL's slow pace. With
    `pref_fit="shared"` both terms only share the joint steps, as in the authors' code (`W_P` plays their
    `alpha`), so in short runs the preference term is fitted far less than in preference-only training
    (benchmarks/aihf.md, "The joint objective" and "two timescales").
    Where the reward handed to the policy has its zero (`demo_zero`): at the learned absorbing reward, as in
    preference-only training (ending an episode is worth exactly what the model learned), or at the mean
    reward of the states the policy visits (its recent segments and the labelled ones), so ending an
    episode is worth an average step of the policy: neither a penalty nor a prize; or at the network's raw
    output 0 (`raw`), as ML-IRL's SAC sees its reward (the IRL loss does not move that level).
    The IRL term alone pushes down every state only the policy visits, the absorbing state among them, so
    its learned value says more about its learning rate than about falling (benchmarks/aihf.md).
    `demo_weight = 0` (or no demonstrations) is preference-only training, `pref_weight = 0`
    demonstration-only IRL: the other term is skipped.

    Against noisy teachers, `robust="rime"` screens the training pairs at every epoch with `RimeFilter`
    (distrusted pairs sit out, confidently contradicted ones are trained on reversed); `label_noise` is the
    loss core's other remedy, a floor on the predicted preference (B-Pref's mistake rate). A teacher's mistake rate is
    rarely known: with `estimate_label_noise`, every fit sets the next fit's floor to the one under which its held-out
    labels are likeliest (`losses.label_noise_estimate`, at most `max_label_noise`), starting from `label_noise`; the
    held-out pairs were not fitted, so the floor counts the answers the reward cannot explain. With few labels,
    `surf` (a `Surf`) adds pseudo-labelled pairs of unlabelled segments and temporal crops to the same epochs.

    `renormalize_inputs` (RENORMALIZE): standardize the reward's inputs from the fit's data at `every` fit (the
    warm-started weights then see shifted inputs, so the reward moves before any step), at the `first` only, keeping
    that standardization for good, or at every fit with the first layer taking the change in (`preserve`: the reward
    starts each fit as the same function of its raw inputs). None: `every` for preference-only training (the labelled
    pairs), `first` for the joint objective (above).
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
        estimate_label_noise: bool = False,
        max_label_noise: float = 0.8,
        holdout_fraction: float = HOLDOUT,
        fit_accuracy: float = 0.97,
        seed: int = 0,
        demos: Demonstrations | None = None,
        demo_weight: float = 1.0,
        pref_weight: float = 1.0,
        demo_lr: float = 1e-4,
        demo_updates: int = 1,
        demo_batch: int | None = None,
        demo_weight_decay: float = 1e-3,
        demo_l2: float = 0.0,
        renormalize_inputs: str | None = None,
        demo_pool: int = 512,
        absorbing_lr: float = 1e-2,
        demo_zero: str = "absorbing",
        pref_fit: str = "converge",
        robust: str = "none",
        rime_grace: int = 0,
        surf: Surf | None = None,
    ):
        self.model = model
        self.batch_size, self.max_updates, self.patience = batch_size, max_updates, patience
        check_share("holdout_fraction", holdout_fraction)
        if not 0 < fit_accuracy <= 1:
            raise ValueError(f"fit_accuracy {fit_accuracy!r}: expected a share in (0, 1]")
        check_share("label_noise", label_noise)
        check_share("max_label_noise", max_label_noise)
        self.weight_decay, self.label_noise, self.holdout_fraction = weight_decay, label_noise, holdout_fraction
        self.estimate_label_noise, self.max_label_noise = bool(estimate_label_noise), max_label_noise
        self.fit_accuracy = fit_accuracy
        self.seed, self.rng = seed, np.random.default_rng(seed)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.pref_weight, self.demo_weight = losses.check_aihf_weights(pref_weight, demo_weight)
        for name, value in (("demo_updates", demo_updates), ("demo_pool", demo_pool)):
            check_positive_int(name, value)
        if demo_batch is not None:
            check_positive_int("demo_batch", demo_batch)
        self.demo_l2, self.demo_updates, self.demo_pool, self.demo_batch = demo_l2, demo_updates, demo_pool, demo_batch
        self.demos = demos.buffer() if demos is not None and self.demo_weight > 0 else None
        if self.demos is not None:
            # The absorbing reward is one scalar per member: at the network's learning rate it would
            # barely move, while the IRL term pushes the policy's real steps down, leaving falling
            # (absorbing) ranked above staying up. It gets a faster rate.
            rest = [p for n, p in model.named_parameters() if n != "absorbing"]
            self.demo_optimizer = torch.optim.Adam(
                [{"params": rest}, {"params": [model.absorbing], "lr": absorbing_lr}], lr=demo_lr,
                weight_decay=demo_weight_decay)
        if renormalize_inputs is not None:
            check_choice("renormalize_inputs", renormalize_inputs, RENORMALIZE)
        self.renormalize_inputs = renormalize_inputs or ("every" if self.demos is None else "first")
        check_choice("demo_zero", demo_zero, DEMO_ZEROS)
        self.demo_zero = demo_zero
        check_choice("pref_fit", pref_fit, PREF_FITS)
        self.pref_fit = pref_fit
        check_choice("robust", robust, ROBUST)
        check_rime_grace(rime_grace, robust)
        self.rime = RimeFilter(grace_fits=rime_grace) if robust == "rime" else None
        self.fit_sizes: list[int] = []  # labelled pairs at each fit so far: which labels RIME's grace still covers
        self.surf = surf
        self.inputs_fixed = False  # set by the first fit (or by a resumed run whose model had one)
        if demos is not None:
            demos.check_env(model.observation_space, model.action_space)

    @property
    def uses_demos(self) -> bool:
        """Whether `fit` trains the joint objective (it needs the current policy's segments)."""
        return self.demos is not None

    def resume_state(self) -> dict:
        """What a resumed run needs to go on where this trainer stands (plain JSON values): the tuned L2 weight, the
        label-noise floor (estimated, with estimate_label_noise), the number of labels at each fit so far (RIME's
        grace period counts them), and RIME's running statistics."""
        rime = None if self.rime is None else {k: getattr(self.rime, k) for k in RIME_STATISTICS}
        return {"weight_decay": self.weight_decay, "label_noise": self.label_noise, "fit_sizes": list(self.fit_sizes),
                "rime": rime}

    def restore(self, state: dict) -> None:
        """Go on from `resume_state()`'s values (keys it lacks keep this trainer's own, e.g. a state saved before
        they existed); the settings (RIME's constants, its grace) stay this trainer's."""
        try:
            if state.get("weight_decay") is not None:
                self.weight_decay = float(state["weight_decay"])
            if self.estimate_label_noise and state.get("label_noise") is not None:
                noise = float(state["label_noise"])
                check_share("label_noise", noise)
                self.label_noise = noise
            self.fit_sizes = [int(n) for n in state.get("fit_sizes", self.fit_sizes)]
            if self.rime is not None and state.get("rime"):
                stats = {k: type(getattr(self.rime, k))(state["rime"][k]) for k in RIME_STATISTICS}
                self.rime = dataclasses.replace(self.rime, **stats)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"reward trainer state {state!r}: expected the values of RewardTrainer.resume_state() "
                             f"({type(exc).__name__}: {exc})") from exc

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

    def _losses(self, pairs: _PairTensors, ids: torch.Tensor,
                crops: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-member BT losses (K, B) of the pairs at ids (B,), on the steps `crops` keep (default: all)."""
        crop_a, crop_b = crops if crops is not None else (None, None)
        ra = self.model.segment_returns(pairs.features_a[ids], pairs.mask_a[ids], crop_a)
        rb = self.model.segment_returns(pairs.features_b[ids], pairs.mask_b[ids], crop_b)
        return losses.bradley_terry_loss(ra, rb, pairs.y[ids], noise=self.label_noise, reduction="none")

    def _weighted_losses(self, pairs: _PairTensors, ids: torch.Tensor, weights: torch.Tensor,
                         crops: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Sum over members of each member's bootstrap-weighted mean BT loss on the pairs at ids
        (members are independent: the sum trains each on its own weighted mean)."""
        w = weights[:, ids]
        return ((self._losses(pairs, ids, crops) * w).sum(1) / w.sum(1).clamp(min=1.0)).sum()

    def _pseudo_label_loss(self, unlabelled: _PairTensors, n: int) -> tuple[torch.Tensor, float]:
        """SURF's term on `ratio * n` unlabelled pairs drawn at random, summed over members (each its own mean),
        and the share of them that were confident enough to be labelled."""
        surf, model = self.surf, self.model
        ids = torch.as_tensor(self.rng.integers(0, len(unlabelled.y), surf.ratio * n))
        # one forward pass per side: the whole segment's return labels the pair, the cropped one is trained
        steps_a = model.step_rewards(unlabelled.features_a[ids], unlabelled.mask_a[ids])
        steps_b = model.step_rewards(unlabelled.features_b[ids], unlabelled.mask_b[ids])
        crop_a, crop_b = surf.windows(len(ids), unlabelled.horizon, self.rng)
        loss, confident = losses.pseudo_label_loss((steps_a * crop_a).sum(-1), (steps_b * crop_b).sum(-1),
                                                   steps_a.detach().sum(-1), steps_b.detach().sum(-1),
                                                   threshold=surf.threshold, reduction="none")
        return loss.mean(1).sum(), float(confident.mean())

    def fit(self, dataset: ComparisonDataset, policy_segments: Segments | None = None,
            unlabelled: tuple[Segments, Segments] | None = None) -> FitReport:
        """Train on all labelled pairs (and, with demonstrations, the demonstration term); returns a report.

        Preference-only: until held-out loss stops improving. Joint: `demo_updates` steps, with
        `policy_segments` (the current policy's behaviour) as the IRL term's negatives. With `surf`, the
        `unlabelled` segment pairs (the run's own experience) join the Bradley-Terry epochs with pseudo-labels.
        """
        unlabelled_pairs = None
        if self.surf is not None and unlabelled is not None and len(unlabelled[0]):
            unlabelled_pairs = _PairTensors.from_segments(self.model, *unlabelled, np.zeros(len(unlabelled[0])))
        if self.demos is None:
            report = self._fit_preferences(dataset, unlabelled_pairs)
        else:
            report = self._fit_joint(dataset, policy_segments, unlabelled_pairs)
        self.fit_sizes.append(len(dataset))
        return report

    def _fit_preferences(self, dataset: ComparisonDataset, unlabelled: _PairTensors | None = None) -> FitReport:
        t0 = time.perf_counter()
        model, n = self.model, len(dataset)
        if n == 0:
            raise ValueError("cannot fit a reward model on an empty comparison dataset")
        pairs = _PairTensors.from_dataset(model, dataset)
        self._standardize_inputs(pairs.real_features)

        val, train = self.split(n)
        n_val = len(val)
        weights = torch.as_tensor(self.bootstrap_counts(n), dtype=torch.float32)  # (K, n)
        val = torch.as_tensor(val)
        for g in self.optimizer.param_groups:
            g["weight_decay"] = self.weight_decay

        epoch, pair_updates, distrusted, flipped, pseudo = self._bradley_terry_epochs(pairs, train, val, weights,
                                                                                     unlabelled)
        model.eval()
        val_loss, val_acc = pairs.evaluate(model, val, self.label_noise) if n_val else (math.nan, math.nan)
        train_loss, _ = pairs.evaluate(model, torch.as_tensor(train), self.label_noise)
        self._tune_weight_decay(val_loss if n_val else math.nan, train_loss)
        low, high = self._estimate_label_noise(pairs, val)
        model.set_output_normalization(pairs.real_features, "absorbing" if pairs.has_absorbing else "mean")
        return FitReport(epoch, train_loss, val_loss, val_acc, n, self.weight_decay, time.perf_counter() - t0, pair_updates,
                         distrusted=distrusted, flipped=flipped, pseudo_labelled=pseudo, label_noise=self.label_noise,
                         label_noise_low=low, label_noise_high=high)

    def _screen(self, pairs: _PairTensors, train: np.ndarray) -> tuple[_PairTensors, np.ndarray, int, int]:
        """With robust="rime": the pairs with this fit's labels (the reversed ones reversed), the training pairs to
        fit on (trusted and reversed), and how many were left out and reversed. Otherwise all of them as given.
        Held-out pairs are never screened: early stopping, the L2 tuning and the reports use the labels as given."""
        if self.rime is None or len(train) == 0:
            return pairs, train, 0, 0
        ids = torch.as_tensor(train)
        self.model.eval()
        with torch.no_grad():
            ra = self.model.segment_returns(pairs.features_a[ids], pairs.mask_a[ids])
            rb = self.model.segment_returns(pairs.features_b[ids], pairs.mask_b[ids])
            p = torch.sigmoid(ra - rb).mean(0).clamp(1e-8, 1 - 1e-8)  # the ensemble's P(a preferred)
            y = pairs.y[ids]
            loss = -(y * p.log() + (1 - y) * (1 - p).log())
        trusted, flipped = self.rime.select(loss.numpy(), y.numpy(), fresh=self._in_grace(train))
        fit_y = pairs.y.clone()
        fit_y[ids[torch.as_tensor(flipped)]] = 1 - y[torch.as_tensor(flipped)]
        keep = trusted | flipped
        return dataclasses.replace(pairs, y=fit_y), train[keep], int((~keep).sum()), int(flipped.sum())

    def _in_grace(self, train: np.ndarray) -> np.ndarray | None:
        """Which training pairs (indices) arrived within RIME's last `grace_fits` fits, this one included; None
        without a grace period. Labels are appended, so those are the indices from the size at that earlier fit."""
        grace = self.rime.grace_fits
        if not grace:
            return None
        return train >= (self.fit_sizes[-grace] if len(self.fit_sizes) >= grace else 0)

    def _standardize_inputs(self, real_features: np.ndarray) -> None:
        """Standardize the reward's inputs by this fit's real (not absorbing) steps: at the first fit, and after it
        as `renormalize_inputs` says."""
        if not self.inputs_fixed or self.renormalize_inputs != "first":
            keep = self.inputs_fixed and self.renormalize_inputs == "preserve"
            self.model.set_input_normalization(real_features, keep_function=keep)
            self.inputs_fixed = True

    def _estimate_label_noise(self, pairs: _PairTensors, val: torch.Tensor) -> tuple[float, float]:
        """With estimate_label_noise: the next fit's floor, the likeliest one for the held-out pairs `val` under the
        reward as this fit left it (no change without held-out pairs); returns the floor's 95% likelihood interval
        (NaN where nothing was estimated)."""
        if not (self.estimate_label_noise and len(val)):
            return math.nan, math.nan
        ra, rb = pairs.mean_returns(self.model, val)
        self.label_noise = losses.label_noise_estimate(ra, rb, pairs.y[val], max_noise=self.max_label_noise)
        return losses.label_noise_interval(ra, rb, pairs.y[val], max_noise=self.max_label_noise)

    def _tune_weight_decay(self, val_loss: float, train_loss: float) -> None:
        """Keep held-out loss within 1.1-1.5x the training loss (no change without held-out pairs)."""
        if math.isnan(val_loss) or not train_loss > 0:
            return
        ratio = val_loss / train_loss
        if ratio > 1.5:
            self.weight_decay = min(self.weight_decay * 2, 1.0)
        elif ratio < 1.1:
            self.weight_decay = max(self.weight_decay / 2, 1e-7)

    def _bradley_terry_epochs(self, pairs: _PairTensors, train: np.ndarray, val: torch.Tensor, weights: torch.Tensor,
                              unlabelled: _PairTensors | None = None) -> tuple[int, int, int, int, float]:
        """Epochs of the bootstrap-weighted BT loss until held-out loss stops improving (or `max_updates`);
        the best state is kept; without held-out pairs, until each member ranks `fit_accuracy` of its training pairs
        right. With robust="rime" every epoch first screens the training pairs, as RIME does;
        with `surf` the training pairs are cropped in time and SURF's term on the `unlabelled` pairs is added.
        Returns (epochs, pair updates, pairs left out and pairs reversed in the last epoch, the share of
        unlabelled pairs pseudo-labelled in the last epoch)."""
        model, surf = self.model, self.surf
        stopper = EarlyStopping(model, self.patience)
        epoch = updates = pair_updates = distrusted = flipped = 0
        pseudo = math.nan
        while updates < self.max_updates:
            epoch += 1
            fit_pairs, fit_train, distrusted, flipped = self._screen(pairs, train)
            if len(fit_train) == 0:  # every pair distrusted: nothing to learn from this epoch
                break
            model.train()
            order = self.rng.permutation(fit_train)
            shares = []
            for s in range(0, len(fit_train), self.batch_size):
                ids = torch.as_tensor(order[s : s + self.batch_size])
                crops = surf.windows(len(ids), pairs.horizon, self.rng) if surf is not None else None
                loss = self._weighted_losses(fit_pairs, ids, weights, crops)
                if surf is not None and unlabelled is not None:
                    pseudo_loss, share = self._pseudo_label_loss(unlabelled, len(ids))
                    loss = loss + surf.weight * pseudo_loss
                    shares.append(share)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # members are independent: the sum trains each on its own weighted mean
                self.optimizer.step()
                updates += 1
                pair_updates += ids.numel() * model.ensemble_size
            pseudo = float(np.mean(shares)) if shares else pseudo
            if len(val) == 0:
                ids = torch.as_tensor(fit_train)
                if fit_pairs.member_accuracy(model, ids, weights[:, ids]) >= self.fit_accuracy:
                    break
                continue
            with torch.no_grad():
                val_loss = float(self._losses(pairs, val).mean())
            if stopper.update(val_loss, epoch):
                break
        stopper.restore()
        return epoch, pair_updates, distrusted, flipped, pseudo

    def _fit_joint(self, dataset: ComparisonDataset, policy_segments: Segments | None,
                   unlabelled: _PairTensors | None = None) -> FitReport:
        t0 = time.perf_counter()
        model, k = self.model, self.model.ensemble_size
        if policy_segments is None or len(policy_segments) == 0:
            raise ValueError("the demonstration term needs segments of the current policy's behaviour (policy_segments)")
        demo = self.demos.sample_segments(self.demo_pool, policy_segments.horizon, self.rng)
        demo_x, policy_x = model.segment_features(demo), model.segment_features(policy_segments)
        demo_mask, policy_mask = torch.as_tensor(demo.mask), torch.as_tensor(policy_segments.mask)
        real = [demo_x[demo.mask > 0], policy_x[policy_segments.mask > 0]]
        use_pairs = self.pref_weight > 0 and len(dataset) > 0
        n = len(dataset) if use_pairs else 0
        val, train = self.split(n)
        if use_pairs:
            pairs = _PairTensors.from_dataset(model, dataset)
            real.append(pairs.real_features)
            weights = torch.as_tensor(self.bootstrap_counts(n), dtype=torch.float32)
        self._standardize_inputs(np.concatenate(real))
        demo_x, policy_x = torch.as_tensor(demo_x), torch.as_tensor(policy_x)
        for g in self.optimizer.param_groups:
            g["weight_decay"] = self.weight_decay
        pair_updates = distrusted = flipped = 0
        pseudo = math.nan
        model.train()
        for _ in range(self.demo_updates):
            pref_loss = None
            if use_pairs and len(train):
                size = len(train) if self.demo_batch is None else min(self.demo_batch, len(train))  # full batch too
                ids = torch.as_tensor(self.rng.choice(train, size=size, replace=False))
                pref_loss = self._weighted_losses(pairs, ids, weights)
                pair_updates += ids.numel() * k
            if self.demo_batch is None:  # full batch, as ML-IRL
                demo_ids, policy_ids = torch.arange(len(demo_x)), torch.arange(len(policy_x))
            else:
                demo_ids = torch.as_tensor(self.rng.integers(0, len(demo_x), self.demo_batch))
                policy_ids = torch.as_tensor(self.rng.integers(0, len(policy_x), self.demo_batch))
            demo_returns = model.segment_returns(demo_x[demo_ids], demo_mask[demo_ids])  # (K, B)
            policy_returns = model.segment_returns(policy_x[policy_ids], policy_mask[policy_ids])
            demo_loss = k * losses.ml_irl_loss(demo_returns, policy_returns, l2=self.demo_l2)  # each member its own mean
            loss = losses.aihf_loss(pref_loss, demo_loss, pref_weight=self.pref_weight if pref_loss is not None else 0.0,
                                    demo_weight=self.demo_weight)
            self.demo_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.demo_optimizer.step()
        epochs = self.demo_updates
        if use_pairs and len(train) and self.pref_fit == "converge":
            bt_epochs, bt_updates, distrusted, flipped, pseudo = self._bradley_terry_epochs(
                pairs, train, torch.as_tensor(val), weights, unlabelled)
            epochs, pair_updates = epochs + bt_epochs, pair_updates + bt_updates
        model.eval()
        with torch.no_grad():
            gap = float(model.segment_returns(demo_x, demo_mask).mean() - model.segment_returns(policy_x, policy_mask).mean())
        val_loss = val_acc = train_loss = low = high = math.nan
        if use_pairs:
            if len(val):
                val_loss, val_acc = pairs.evaluate(model, torch.as_tensor(val), self.label_noise)
            train_loss, _ = pairs.evaluate(model, torch.as_tensor(train), self.label_noise)
            if self.pref_fit == "converge":
                self._tune_weight_decay(val_loss, train_loss)
            low, high = self._estimate_label_noise(pairs, torch.as_tensor(val))
        policy_side = real[1:]  # what the policy visits: its own data and the labelled segments
        terminations = bool((policy_segments.mask == 0).any()) or (use_pairs and pairs.has_absorbing)
        if self.demo_zero == "absorbing":
            zero = "absorbing" if terminations else "mean"
        else:
            zero = "mean" if self.demo_zero == "policy" else "raw"
        model.set_output_normalization(np.concatenate(policy_side), zero)
        return FitReport(epochs, train_loss, val_loss, val_acc, n, self.weight_decay,
                         time.perf_counter() - t0, pair_updates, gap, distrusted, flipped, pseudo, self.label_noise,
                         low, high)


@dataclass
class _PairTensors:
    """A dataset's features, masks and labels as tensors, built once per fit."""

    features_a: torch.Tensor
    mask_a: torch.Tensor
    features_b: torch.Tensor
    mask_b: torch.Tensor
    y: torch.Tensor
    real_features: np.ndarray
    has_absorbing: bool

    @property
    def horizon(self) -> int:
        return self.features_a.shape[1]

    @classmethod
    def from_dataset(cls, model: RewardModel, dataset: ComparisonDataset) -> _PairTensors:
        return cls.from_segments(model, dataset.segments_a, dataset.segments_b, dataset.labels)

    @classmethod
    def from_segments(cls, model: RewardModel, sa: Segments, sb: Segments, labels: np.ndarray) -> _PairTensors:
        features_a, features_b = model.segment_features(sa), model.segment_features(sb)
        return cls(
            torch.as_tensor(features_a), torch.as_tensor(sa.mask), torch.as_tensor(features_b), torch.as_tensor(sb.mask),
            torch.as_tensor(np.asarray(labels, dtype=np.float32)),
            np.concatenate([features_a[sa.mask > 0], features_b[sb.mask > 0]]),
            bool((sa.mask == 0).any() or (sb.mask == 0).any()),
        )

    @torch.no_grad()
    def mean_returns(self, model: RewardModel, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ensemble's mean returns of both sides of the pairs at idx."""
        ra = model.segment_returns(self.features_a[idx], self.mask_a[idx]).mean(0)
        rb = model.segment_returns(self.features_b[idx], self.mask_b[idx]).mean(0)
        return ra, rb

    def evaluate(self, model: RewardModel, idx: torch.Tensor, noise: float) -> tuple[float, float]:
        return _loss_and_accuracy(*self.mean_returns(model, idx), self.y[idx], noise)

    @torch.no_grad()
    def member_accuracy(self, model: RewardModel, idx: torch.Tensor, weights: torch.Tensor) -> float:
        """The members' mean share of the decided pairs at idx (B,) that each ranks as labelled, each pair counted
        as often as the member's bootstrap `weights` (K, B) count it: what each member trains on (B-Pref's stopping
        test; the ensemble's mean would pass it while single members still get pairs wrong)."""
        ra = model.segment_returns(self.features_a[idx], self.mask_a[idx])
        rb = model.segment_returns(self.features_b[idx], self.mask_b[idx])
        right, decided = _ranked_right(ra, rb, self.y[idx])
        w = weights * decided
        return float(((right * w).sum(1) / w.sum(1).clamp(min=1)).mean())


def _ranked_right(ra: torch.Tensor, rb: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which pairs the returns rank as labelled (1.0/0.0), and which labels decide a winner (not ties)."""
    return ((ra > rb) == (y > 0.5)).float(), y != 0.5


def _loss_and_accuracy(ra: torch.Tensor, rb: torch.Tensor, y: torch.Tensor, noise: float) -> tuple[float, float]:
    loss = float(losses.bradley_terry_loss(ra, rb, y, noise=noise))
    right, decided = _ranked_right(ra, rb, y)
    acc = float(right[decided].mean()) if decided.any() else math.nan
    return loss, acc


def mean_segment_returns(model: RewardModel, seg_a: Segments, seg_b: Segments) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensemble's mean learned return of each segment of both sides of a batch of pairs."""
    return (torch.as_tensor(model.segment_member_returns(seg_a)).mean(0),
            torch.as_tensor(model.segment_member_returns(seg_b)).mean(0))


@torch.no_grad()
def evaluate_preferences(
    model: RewardModel, seg_a: Segments, seg_b: Segments, labels: np.ndarray, noise: float = 0.0
) -> tuple[float, float]:
    """Bradley-Terry loss and accuracy of the ensemble's mean segment return against labels."""
    return _loss_and_accuracy(*mean_segment_returns(model, seg_a, seg_b),
                              torch.as_tensor(np.asarray(labels, dtype=np.float32)), noise)
