"""Tests for prefrl.losses: hand-computed values, autograd gradients, reductions, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prefrl.core import losses as L

F64 = torch.float64  # every tensor is float64 so comparisons with math.* arithmetic are tight


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def t(*values: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def approx(x: torch.Tensor, expected: float, tol: float = 1e-12) -> None:
    assert x.item() == pytest.approx(expected, abs=tol, rel=tol)


def grads(loss: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs, allow_unused=False)


# --------------------------------------------------------------------------- Bradley-Terry


def test_bt_label_one_at_equal_scores_is_log2():
    approx(L.bradley_terry_loss(t(0.3), t(0.3), 1.0), math.log(2.0))


def test_bt_tie_has_zero_gradient_even_with_margin_and_noise():
    for kwargs in ({}, {"margin": 0.7}, {"noise": 0.1}, {"margin": 0.3, "noise": 0.2}):
        a, b = t(1.5, -2.0, grad=True), t(1.5, -2.0, grad=True)
        ga, gb = grads(L.bradley_terry_loss(a, b, 0.5, **kwargs), a, b)
        assert torch.allclose(ga, torch.zeros(2, dtype=F64), atol=1e-15)
        assert torch.allclose(gb, torch.zeros(2, dtype=F64), atol=1e-15)


@pytest.mark.parametrize(
    "a, b, label, margin, noise, expected",
    [
        # label 1, margin 0.5: -log sigmoid(1 - 0.5)
        (1.0, 0.0, 1.0, 0.5, 0.0, math.log(1.0 + math.exp(-0.5))),
        # label 0, margin 0.5: -log(1 - sigmoid(1 + 0.5)) = log(1 + e^1.5)
        (1.0, 0.0, 0.0, 0.5, 0.0, math.log(1.0 + math.exp(1.5))),
        # soft label 0.7 with 10% noise
        (
            2.5, 0.5, 0.7, 0.0, 0.1,
            -(0.7 * math.log(0.05 + 0.9 * sig(2.0)) + 0.3 * math.log(0.05 + 0.9 * sig(-2.0))),
        ),
        # margin and noise together, label 1 and label 0
        (0.0, 1.0, 1.0, 0.25, 0.2, -math.log(0.1 + 0.8 * sig(-1.25))),
        (0.0, 1.0, 0.0, 0.25, 0.2, -math.log(0.1 + 0.8 * sig(0.75))),
    ],
)
def test_bt_hand_computed(a, b, label, margin, noise, expected):
    loss = L.bradley_terry_loss(t(a), t(b), label, margin=margin, noise=noise)
    approx(loss, expected)
    # a tensor label gives the same number
    approx(L.bradley_terry_loss(t(a), t(b), t(label), margin=margin, noise=noise), expected)


def test_bt_label_one_gradient_closed_form():
    a, b = t(0.4, -1.0, 3.0, grad=True), t(-0.6, 2.0, 3.5, grad=True)
    ga, gb = grads(L.bradley_terry_loss(a, b, 1.0, reduction="sum"), a, b)
    expected = t(*[-(1 - sig(d)) for d in (1.0, -3.0, -0.5)])
    assert torch.allclose(ga, expected, atol=1e-14)
    assert torch.allclose(gb, -expected, atol=1e-14)


def test_bt_noise_bounds_loss():
    noise = 0.1
    a, b = t(-1e4, 1e4, -50.0), t(1e4, -1e4, 0.0)
    labels = t(1.0, 0.0, 1.0)
    loss = L.bradley_terry_loss(a, b, labels, noise=noise, reduction="none")
    assert torch.all(loss <= -math.log(noise / 2) + 1e-12)
    approx(loss[0], -math.log(noise / 2 + (1 - noise) * 0.0), tol=1e-9)


def test_label_noise_estimate_is_the_floor_the_loss_likes_best_at_the_best_scale():
    """The estimate is where the Bradley-Terry loss on the scores scaled by a common factor is lowest (checked on a
    grid of floors and scales): twice a teacher's flip rate whether the scores are confident or shrunk (as a reward
    trained on flipped answers without a floor shrinks them), 0 where no answer contradicts them, `max_noise` where the
    answers are coin flips; bad labels are refused by name."""
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(4000, generator=gen, dtype=F64) * 6.0  # a confident reward
    truth = (delta > 0).double()
    flipped = torch.rand(4000, generator=gen, dtype=F64) < 0.3
    labels = torch.where(flipped, 1.0 - truth, truth)
    zeros = torch.zeros_like(delta)
    got = L.label_noise_estimate(delta, zeros, labels)
    floors, scales = torch.linspace(0.0, 0.8, 161, dtype=F64), 2.0 ** (torch.arange(-48, 49, dtype=F64) / 8)
    loss = torch.tensor([[float(L.bradley_terry_loss(c * delta, zeros, labels, noise=float(f))) for c in scales]
                         for f in floors])
    assert got == pytest.approx(float(floors[loss.min(1).values.argmin()]), abs=0.006)
    assert got == pytest.approx(2 * float(flipped.double().mean()), abs=0.05)
    assert L.label_noise_estimate(delta / 20, zeros, labels) == pytest.approx(got, abs=0.02)  # shrunk: the same
    assert float(L.bradley_terry_loss(delta / 20, zeros, labels, noise=got)) > float(
        L.bradley_terry_loss(delta / 20, zeros, labels))  # where at its own scale no floor would help
    assert L.label_noise_estimate(delta, zeros, truth) == 0.0
    coin = (torch.rand(4000, generator=gen, dtype=F64) < 0.5).double()
    assert L.label_noise_estimate(delta, zeros, coin, max_noise=0.5) == 0.5
    with pytest.raises(ValueError, match="label must lie in \\[0, 1\\]"):
        L.label_noise_estimate(delta[:2], zeros[:2], t(1.0, float("nan")))
    with pytest.raises(ValueError, match="label shape \\(3,\\) must match the scores' \\(2,\\)"):
        L.label_noise_estimate(delta[:2], zeros[:2], t(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="at least one labelled pair"):
        L.label_noise_estimate(zeros[:0], zeros[:0], zeros[:0])


def test_label_noise_profile_and_interval_say_how_well_the_labels_determine_the_floor():
    """The profile is the labels' log-likelihood at each floor at its best scale (checked against the loss on the
    scale grid); its maximum is at the estimate; the 95% interval holds twice the flip rate and leaves out 0 with
    4000 pairs 30% flipped, holds 0 and not 0.3 for clean labels, and spans most of the range with 40 pairs."""
    gen = torch.Generator().manual_seed(1)
    delta = torch.randn(4000, generator=gen, dtype=F64) * 6.0
    truth = (delta > 0).double()
    flipped = torch.rand(4000, generator=gen, dtype=F64) < 0.3
    labels = torch.where(flipped, 1.0 - truth, truth)
    zeros = torch.zeros_like(delta)
    floors = torch.tensor([0.0, 0.3, 0.6], dtype=F64)
    profile = L.label_noise_profile(delta, zeros, labels, floors)
    brute = [max(-float(L.bradley_terry_loss(c * delta, zeros, labels, noise=float(f), reduction="sum"))
                 for c in L.LABEL_NOISE_SCALES) for f in floors]
    assert profile.tolist() == pytest.approx(brute, rel=1e-9)
    got = L.label_noise_estimate(delta, zeros, labels)
    fine = torch.linspace(0.0, 0.8, 81, dtype=F64)
    assert float(fine[L.label_noise_profile(delta, zeros, labels, fine).argmax()]) == pytest.approx(got, abs=0.011)
    low, high = L.label_noise_interval(delta, zeros, labels)
    assert 0.3 < low <= 2 * float(flipped.double().mean()) <= high < 0.8 and high - low < 0.15
    clean_low, clean_high = L.label_noise_interval(delta, zeros, truth)
    assert clean_low == 0.0 and clean_high < 0.3
    few_low, few_high = L.label_noise_interval(delta[:40] / 6, zeros[:40], labels[:40])
    assert few_high - few_low > 0.4
    assert L.label_noise_interval(delta, zeros, labels, max_noise=0.5, step=0.1)[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="noise \\[1.0\\]: expected one or more floors in \\[0, 1\\)"):
        L.label_noise_profile(delta, zeros, labels, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="step must be a finite number in \\(0, 1\\), got 0"):
        L.label_noise_interval(delta, zeros, labels, step=0)
    with pytest.raises(ValueError, match="label shape \\(3,\\) must match the scores' \\(2,\\)"):
        L.label_noise_interval(delta[:2], zeros[:2], t(1.0, 0.0, 1.0))


def test_bt_per_example_tensor_label_and_margin_and_reductions():
    a, b = t(1.0, 2.0, 0.0), t(0.0, 0.0, 0.0)
    labels = t(1.0, 0.0, 0.5)
    margin = t(0.0, 1.0, 0.0)
    per = L.bradley_terry_loss(a, b, labels, margin=margin, reduction="none")
    expected = [
        -math.log(sig(1.0)),
        -math.log(sig(-3.0)),
        -(0.5 * math.log(sig(0.0)) + 0.5 * math.log(sig(0.0))),
    ]
    assert per.shape == (3,)
    assert torch.allclose(per, t(*expected), atol=1e-12)
    approx(L.bradley_terry_loss(a, b, labels, margin=margin, reduction="sum"), sum(expected))
    approx(L.bradley_terry_loss(a, b, labels, margin=margin), sum(expected) / 3)


def test_bt_probability():
    approx(L.bradley_terry_probability(t(2.0), t(0.5)), sig(1.5))
    approx(L.bradley_terry_probability(t(2.0), t(0.5), noise=0.1), 0.05 + 0.9 * sig(1.5))
    p = L.bradley_terry_probability(t(3.0, -1.0), t(-1.0, 3.0), noise=0.2)
    approx(p.sum(), 1.0)  # P(a > b) + P(b > a) = 1


def test_reward_model_loss():
    rc, rr = t(1.0, 0.0, grad=True), t(0.5, 2.0, grad=True)
    loss = L.reward_model_loss(rc, rr, margin=0.25, center_coef=0.01)
    expected = 0.5 * (
        -math.log(sig(0.5 - 0.25)) + 0.01 * 1.5**2 + -math.log(sig(-2.0 - 0.25)) + 0.01 * 2.0**2
    )
    approx(loss, expected)
    # Without centring it is the label-1 Bradley-Terry loss with the same margin.
    bt = L.bradley_terry_loss(rc, rr, 1.0, margin=0.25)
    approx(L.reward_model_loss(rc, rr, margin=0.25), bt.item())
    per = L.reward_model_loss(rc, rr, margin=t(0.0, 1.0), reduction="none")
    assert torch.allclose(per, t(-math.log(sig(0.5)), -math.log(sig(-3.0))))


# --------------------------------------------------------------------------- DPO family


H_CHOSEN, H_REJECTED, BETA = 3.0, -2.0, 0.2  # h = 5, beta h = 1


@pytest.mark.parametrize(
    "loss_type, ls, expected",
    [
        ("sigmoid", 0.0, -math.log(sig(1.0))),
        ("sigmoid", 0.1, -0.9 * math.log(sig(1.0)) - 0.1 * math.log(sig(-1.0))),
        ("ipo", 0.0, (5.0 - 1.0 / (2 * BETA)) ** 2),
        ("hinge", 0.0, 0.0),
        ("robust", 0.1, (-0.9 * math.log(sig(1.0)) + 0.1 * math.log(sig(-1.0))) / 0.8),
    ],
)
def test_dpo_variants_hand_computed(loss_type, ls, expected):
    loss = L.dpo_loss(t(H_CHOSEN), t(H_REJECTED), beta=BETA, loss_type=loss_type,
                      label_smoothing=ls)
    approx(loss, expected)


def test_dpo_hinge_active_region_and_grad():
    c, r = t(1.0, grad=True), t(0.0, grad=True)
    loss = L.dpo_loss(c, r, beta=0.5, loss_type="hinge")
    approx(loss, 0.5)
    (gc,) = grads(loss, c)
    approx(gc, -0.5)


def test_dpo_sigmoid_gradient_closed_form():
    c, r = t(0.3, -1.0, grad=True), t(0.1, 0.5, grad=True)
    gc, gr = grads(L.dpo_loss(c, r, beta=0.5, reduction="sum"), c, r)
    expected = t(*[-0.5 * (1 - sig(0.5 * h)) for h in (0.2, -1.5)])
    assert torch.allclose(gc, expected, atol=1e-14)
    assert torch.allclose(gr, -expected, atol=1e-14)


def test_dpo_robust_with_zero_smoothing_equals_sigmoid():
    c = torch.randn(7, generator=torch.Generator().manual_seed(0), dtype=F64)
    r = torch.zeros(7, dtype=F64)
    for red in L.REDUCTIONS:
        a = L.dpo_loss(c, r, beta=0.3, loss_type="robust", reduction=red)
        b = L.dpo_loss(c, r, beta=0.3, loss_type="sigmoid", reduction=red)
        assert torch.equal(a, b)


def test_loss_combination_defaults_to_weight_one():
    assert L.check_loss_combination(["sigmoid", "sft"]) == [("sigmoid", 1.0), ("sft", 1.0)]
    assert L.check_loss_combination(["ipo", "sft"], [0.0, 2]) == [("ipo", 0.0), ("sft", 2.0)]


def test_sft_loss_weighs_every_token_the_same():
    logp, n = t(-6.0, -1.0), t(3.0, 1.0)
    approx(L.sft_loss(logp, n), 7.0 / 4.0)  # sequence_nll's per-sequence mean would give (2 + 1) / 2
    approx(L.sequence_nll(logp, n), 1.5)


def test_dpo_rewards_detached():
    c, r = t(1.0, 2.0, grad=True), t(-1.0, 0.0, grad=True)
    rc, rr = L.dpo_rewards(c, r, 0.1)
    assert not rc.requires_grad and not rr.requires_grad
    assert torch.allclose(rc, t(0.1, 0.2)) and torch.allclose(rr, t(-0.1, 0.0))


def test_sequence_nll():
    logp = t(-6.0, -3.0)
    assert torch.allclose(L.sequence_nll(logp, t(3.0, 2.0), reduction="none"), t(2.0, 1.5))
    approx(L.sequence_nll(logp, torch.tensor([3, 2])), 1.75)  # integer token counts
    approx(L.sequence_nll(logp, 3, reduction="sum"), 3.0)


def test_rpo_loss():
    c, r, nll = t(1.0, 0.0), t(0.0, 1.0), t(2.0, 4.0)
    loss = L.rpo_loss(c, r, nll, beta=1.0, alpha=0.5)
    expected = 0.5 * (-math.log(sig(1.0)) + 1.0 + -math.log(sig(-1.0)) + 2.0)
    approx(loss, expected)
    # alpha = 0 is exactly DPO and the NLL term may then be absent
    assert torch.equal(L.rpo_loss(c, r, None, beta=1.0, alpha=0.0), L.dpo_loss(c, r, beta=1.0))


def test_modpo_hand_computed_and_single_objective_is_dpo():
    c, r = t(2.0), t(1.0)
    mc, mr = t(1.0, 0.5), t(0.0, 1.5)  # gaps (1, -1)
    loss = L.modpo_loss(c, r, mc, mr, weights=[0.5, 0.3, 0.2], beta=0.4)
    # (1/0.5) * (0.4 * 1 - (0.3 * 1 + 0.2 * -1)) = 0.6
    approx(loss, -math.log(sig(0.6)))
    # weights = [1] has no other objectives: plain DPO
    empty = torch.zeros(1, 0, dtype=F64)
    a = L.modpo_loss(t(2.0), t(1.0), empty, empty, weights=torch.tensor([1.0]), beta=0.4)
    approx(a, L.dpo_loss(t(2.0), t(1.0), beta=0.4).item())


# --------------------------------------------------------------------------- IRL and AIHF


def test_ml_irl_value_and_gradient():
    demo, pol = t(1.0, 2.0, 3.0, grad=True), t(0.0, 4.0, grad=True)
    loss = L.ml_irl_loss(demo, pol)
    approx(loss, 2.0 - 2.0)
    gd, gp = grads(loss, demo, pol)
    assert torch.allclose(gd, t(-1 / 3, -1 / 3, -1 / 3)) and torch.allclose(gp, t(0.5, 0.5))
    approx(L.ml_irl_loss(demo, pol, reduction="sum"), 4.0 - 6.0)


def _bt_and_irl_inputs():
    g = torch.Generator().manual_seed(1)
    sa, sb, demo, pol = (
        torch.randn(n, generator=g, dtype=F64, requires_grad=True) for n in (5, 5, 4, 6)
    )
    return sa, sb, t(1.0, 0.0, 0.5, 1.0, 0.3), demo, pol


def test_aihf_demo_weight_zero_is_exactly_bt():
    sa, sb, lab, demo, pol = _bt_and_irl_inputs()
    bt = L.bradley_terry_loss(sa, sb, lab, noise=0.1)
    bt_grads = grads(bt, sa, sb)
    for demo_term in (None, L.ml_irl_loss(demo, pol) * float("nan")):
        pref = L.bradley_terry_loss(sa, sb, lab, noise=0.1)
        joint = L.aihf_loss(pref, demo_term, demo_weight=0.0)
        assert torch.equal(joint, bt)
        g = torch.autograd.grad(joint, (sa, sb, demo), allow_unused=True)
        assert torch.equal(g[0], bt_grads[0]) and torch.equal(g[1], bt_grads[1])
        assert g[2] is None  # a zero-weight (even NaN) term is skipped, not multiplied by 0


def test_aihf_pref_weight_zero_is_exactly_irl():
    sa, sb, lab, demo, pol = _bt_and_irl_inputs()
    irl = L.ml_irl_loss(demo, pol)
    joint = L.aihf_loss(None, L.ml_irl_loss(demo, pol), pref_weight=0.0)
    assert torch.equal(joint, irl)
    assert all(torch.equal(x, y) for x, y in zip(grads(joint, demo, pol), grads(irl, demo, pol)))


def test_aihf_weighted_sum():
    approx(L.aihf_loss(t(2.0)[0], t(3.0)[0], pref_weight=0.5, demo_weight=2.0), 7.0)


def test_aihf_dpo():
    c, r, d, s = t(1.0, 2.0), t(0.0, 0.0), t(3.0), t(1.0)
    loss = L.aihf_dpo_loss(c, r, d, s, beta=0.5, pref_weight=1.0, demo_weight=0.5)
    expected = 0.5 * (-math.log(sig(0.5)) - math.log(sig(1.0))) - 0.5 * math.log(sig(1.0))
    approx(loss, expected)
    # each weight set to 0 reduces exactly to sigmoid DPO on the other pair
    for red in ("mean", "sum"):
        pref_only = L.aihf_dpo_loss(c, r, None, None, beta=0.5, demo_weight=0.0, reduction=red)
        demo_only = L.aihf_dpo_loss(None, None, d, s, beta=0.5, pref_weight=0.0, reduction=red)
        assert torch.equal(pref_only, L.dpo_loss(c, r, beta=0.5, reduction=red))
        assert torch.equal(demo_only, L.dpo_loss(d, s, beta=0.5, reduction=red))
    per = L.aihf_dpo_loss(c, r, t(3.0, 0.0), t(1.0, 0.0), beta=0.5, reduction="none")
    assert per.shape == (2,)


# --------------------------------------------------------------------------- stability


# what each DPO variant needs beyond the two log-ratios (token counts, the reference margin, smoothing > 0)
DPO_EXTRAS = {
    "exo_pair": {"label_smoothing": 1e-3},
    "sigmoid_norm": {"chosen_tokens": torch.tensor([3.0, 1.0, 2.0]), "rejected_tokens": torch.tensor([2.0, 2.0, 5.0])},
    "aot": {"ref_margin": torch.tensor([1.0, -2.0, 0.5])},
}


def test_huge_scores_finite_loss_and_grad():
    big = 1e4
    cases = [
        lambda a, b: L.bradley_terry_loss(a, b, t(1.0, 0.0, 0.5)),
        lambda a, b: L.bradley_terry_loss(a, b, t(1.0, 0.0, 0.5), noise=0.1, margin=1.0),
        lambda a, b: L.reward_model_loss(a, b, center_coef=1e-3),
        lambda a, b: L.aihf_dpo_loss(a, b, b, a, beta=1.0),
        lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[0.5, 0.5], beta=1.0),
    ] + [lambda a, b, k=k: L.dpo_loss(a, b, beta=1.0, loss_type=k, **DPO_EXTRAS.get(k, {})) for k in L.DPO_LOSS_TYPES]
    for dtype in (torch.float32, torch.float64):
        for fn in cases:
            a = torch.tensor([big, -big, big], dtype=dtype, requires_grad=True)
            b = torch.tensor([-big, big, -big], dtype=dtype, requires_grad=True)
            loss = fn(a, b)
            ga, gb = grads(loss, a, b)
            assert torch.isfinite(loss) and torch.isfinite(ga).all() and torch.isfinite(gb).all()
    # the losing label at a huge gap is large but exact: -logsigmoid(-2e4) = 2e4
    approx(L.bradley_terry_loss(t(big), t(-big), 0.0), 2 * big, tol=1e-9)


# --------------------------------------------------------------------------- validation


def _pair():
    return t(0.0, 1.0), t(1.0, 0.0)


BAD_CALLS = {
    # reductions, one per reducing function
    "bt reduction": lambda a, b: L.bradley_terry_loss(a, b, 1.0, reduction="avg"),
    "rm reduction": lambda a, b: L.reward_model_loss(a, b, reduction="avg"),
    "dpo reduction": lambda a, b: L.dpo_loss(a, b, reduction="avg"),
    "nll reduction": lambda a, b: L.sequence_nll(a, 1, reduction="avg"),
    "rpo reduction": lambda a, b: L.rpo_loss(a, b, a, reduction="avg"),
    "irl reduction": lambda a, b: L.ml_irl_loss(a, b, reduction="avg"),
    "irl none": lambda a, b: L.ml_irl_loss(a, b, reduction="none"),
    "aihf_dpo reduction": lambda a, b: L.aihf_dpo_loss(a, b, a, b, reduction="avg"),
    "modpo reduction": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None],
                                                 weights=[0.5, 0.5], reduction="avg"),
    # Bradley-Terry hyperparameters and labels
    "label > 1": lambda a, b: L.bradley_terry_loss(a, b, 1.5),
    "label < 0": lambda a, b: L.bradley_terry_loss(a, b, t(0.5, -0.1)),
    "label nan float": lambda a, b: L.bradley_terry_loss(a, b, float("nan")),
    "label nan tensor": lambda a, b: L.bradley_terry_loss(a, b, t(float("nan"), 1.0)),
    "label shape": lambda a, b: L.bradley_terry_loss(a, b, t(1.0, 0.0, 1.0)),
    "noise = 1": lambda a, b: L.bradley_terry_loss(a, b, 1.0, noise=1.0),
    "noise < 0": lambda a, b: L.bradley_terry_probability(a, b, noise=-0.1),
    "margin < 0": lambda a, b: L.bradley_terry_loss(a, b, 1.0, margin=-1.0),
    "margin tensor < 0": lambda a, b: L.reward_model_loss(a, b, margin=t(0.0, -1.0)),
    "center_coef < 0": lambda a, b: L.reward_model_loss(a, b, center_coef=-0.1),
    # shapes: incompatible and silent outer products
    "bt shapes": lambda a, b: L.bradley_terry_loss(a, t(1.0, 2.0, 3.0), 1.0),
    "bt outer product": lambda a, b: L.bradley_terry_loss(a, b[:, None], 1.0),
    "prob shapes": lambda a, b: L.bradley_terry_probability(a, t(1.0, 2.0, 3.0)),
    "rm shapes": lambda a, b: L.reward_model_loss(a, t(1.0, 2.0, 3.0)),
    "dpo shapes": lambda a, b: L.dpo_loss(a, t(1.0, 2.0, 3.0)),
    "rpo nll shape": lambda a, b: L.rpo_loss(a, b, t(1.0, 2.0, 3.0)),
    "nll shape": lambda a, b: L.sequence_nll(a, t(1.0, 2.0, 3.0)),
    "aihf shapes": lambda a, b: L.aihf_loss(a, t(1.0, 2.0, 3.0)),
    "aihf_dpo shapes": lambda a, b: L.aihf_dpo_loss(a, t(1.0, 2.0, 3.0), a, b),
    "modpo last dim": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None],
                                                weights=[0.4, 0.3, 0.3]),
    "modpo batch": lambda a, b: L.modpo_loss(a, b, torch.zeros(3, 1, dtype=F64),
                                             torch.zeros(3, 1, dtype=F64), weights=[0.5, 0.5]),
    # DPO family hyperparameters
    "unknown loss_type": lambda a, b: L.dpo_loss(a, b, loss_type="kto"),
    "beta = 0": lambda a, b: L.dpo_loss(a, b, beta=0.0),
    "beta < 0": lambda a, b: L.dpo_rewards(a, b, -0.1),
    "beta nan": lambda a, b: L.aihf_dpo_loss(a, b, a, b, beta=float("nan")),
    "modpo beta": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[0.5, 0.5],
                                            beta=0.0),
    "ls sigmoid > 0.5": lambda a, b: L.dpo_loss(a, b, label_smoothing=0.6),
    "ls robust = 0.5": lambda a, b: L.dpo_loss(a, b, loss_type="robust", label_smoothing=0.5),
    "ls with ipo": lambda a, b: L.dpo_loss(a, b, loss_type="ipo", label_smoothing=0.1),
    "ls exo_pair = 0": lambda a, b: L.dpo_loss(a, b, loss_type="exo_pair"),
    "sigmoid_norm no tokens": lambda a, b: L.dpo_loss(a, b, loss_type="sigmoid_norm"),
    "ipo tokens = 0": lambda a, b: L.dpo_loss(a, b, loss_type="ipo", chosen_tokens=t(1.0, 0.0),
                                              rejected_tokens=t(1.0, 1.0)),
    "ipo tokens shape": lambda a, b: L.dpo_loss(a, b, loss_type="ipo", chosen_tokens=t(1.0, 2.0, 3.0),
                                                rejected_tokens=t(1.0, 1.0)),
    "aot no ref_margin": lambda a, b: L.dpo_loss(a, b, loss_type="aot"),
    "aot ref_margin shape": lambda a, b: L.dpo_loss(a, b, loss_type="aot", ref_margin=t(1.0, 2.0, 3.0)),
    "discopop tau = 0": lambda a, b: L.dpo_loss(a, b, loss_type="discopop", discopop_tau=0.0),
    "sft tokens nan": lambda a, b: L.sft_loss(a, t(1.0, float("nan"))),
    "combination unknown": lambda a, b: L.check_loss_combination(["sigmoid", "kto"]),
    "combination twice": lambda a, b: L.check_loss_combination(["sft", "sft"]),
    "combination count": lambda a, b: L.check_loss_combination(["sigmoid", "sft"], [1.0]),
    "combination zero": lambda a, b: L.check_loss_combination(["sigmoid", "sft"], [0.0, 0.0]),
    "combination negative": lambda a, b: L.check_loss_combination(["sigmoid"], [-1.0]),
    "combination empty": lambda a, b: L.check_loss_combination([]),
    "alpha < 0": lambda a, b: L.rpo_loss(a, b, a, alpha=-1.0),
    "rpo nll missing": lambda a, b: L.rpo_loss(a, b, None, alpha=1.0),
    "n_tokens = 0": lambda a, b: L.sequence_nll(a, 0),
    "n_tokens tensor": lambda a, b: L.sequence_nll(a, t(3.0, 0.0)),
    "irl empty": lambda a, b: L.ml_irl_loss(torch.zeros(0, dtype=F64), b),
    # AIHF weights
    "aihf negative weight": lambda a, b: L.aihf_loss(a, b, pref_weight=-1.0),
    "aihf both zero": lambda a, b: L.aihf_loss(a, b, pref_weight=0.0, demo_weight=0.0),
    "aihf inf weight": lambda a, b: L.aihf_loss(a, b, demo_weight=float("inf")),
    "aihf missing term": lambda a, b: L.aihf_loss(a, None),
    "aihf_dpo negative": lambda a, b: L.aihf_dpo_loss(a, b, a, b, demo_weight=-0.5),
    "aihf_dpo both zero": lambda a, b: L.aihf_dpo_loss(a, b, a, b, pref_weight=0, demo_weight=0),
    "aihf_dpo missing pair": lambda a, b: L.aihf_dpo_loss(a, b, None, None),
    # MODPO weights
    "modpo sum": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[0.5, 0.6]),
    "modpo negative": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[1.5, -0.5]),
    "modpo w_k zero": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[0.0, 1.0]),
    "modpo 2-D": lambda a, b: L.modpo_loss(a, b, a[:, None], b[:, None], weights=[[0.5, 0.5]]),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_value_errors(name):
    with pytest.raises(ValueError):
        BAD_CALLS[name](*_pair())


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda a, b: L.dpo_loss(a, b, reduction="avg"), ["'avg'", "mean", "sum", "none"]),
        (lambda a, b: L.dpo_loss(a, b, loss_type="kto"), ["'kto'", *L.DPO_LOSS_TYPES]),
        (lambda a, b: L.bradley_terry_loss(a, b, 1.0, noise=1.0), ["noise", "[0, 1)", "1.0"]),
        (lambda a, b: L.dpo_loss(a, b, beta=0.0), ["beta", "(0, inf)", "0.0"]),
        (lambda a, b: L.dpo_loss(a, b, loss_type="sigmoid_norm"), ["'sigmoid_norm'", "chosen_tokens"]),
        (lambda a, b: L.check_loss_combination(["sigmoid", "kto"]), ["['kto']", *L.SEQUENCE_LOSS_TYPES]),
        (lambda a, b: L.bradley_terry_loss(a, t(1.0, 2.0, 3.0), 1.0), ["(2,)", "(3,)"]),
        (lambda a, b: L.aihf_loss(a, b, pref_weight=0.0, demo_weight=0.0),
         ["pref_weight", "demo_weight"]),
    ],
)
def test_error_messages_name_the_problem(call, fragments):
    with pytest.raises(ValueError) as info:
        call(*_pair())
    for fragment in fragments:
        assert fragment in str(info.value)


def test_log_sigmoid_is_used_not_log_of_sigmoid():
    # float32 log(sigmoid(-200)) is -inf; the module must return the exact 200.
    x = torch.tensor([-200.0], dtype=torch.float32)
    assert torch.isinf(torch.log(torch.sigmoid(x))).all()
    approx(L.dpo_loss(x, torch.zeros(1, dtype=torch.float32), beta=1.0), 200.0, tol=1e-6)
    approx(L.bradley_terry_loss(x, torch.zeros(1, dtype=torch.float32), 1.0, noise=0.0), 200.0,
           tol=1e-6)
    assert torch.equal(F.logsigmoid(x), -L.dpo_loss(x, torch.zeros(1, dtype=torch.float32),
                                                     beta=1.0, reduction="none"))


def test_pseudo_label_loss_labels_only_the_confident_pairs_and_trains_only_the_scores():
    targets_a, targets_b = torch.tensor([3.0, 0.1, -4.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 0.0])
    score_a = torch.tensor([0.5, 0.5, 0.5, 0.5], requires_grad=True)
    score_b = torch.zeros(4, requires_grad=True)
    loss, confident = L.pseudo_label_loss(score_a, score_b, targets_a, targets_b, threshold=0.95, reduction="none")
    assert confident.tolist() == [1.0, 0.0, 1.0, 0.0]  # sigmoid(3) = 0.953, sigmoid(-4) = 0.018: a and b labelled
    expected = [-F.logsigmoid(torch.tensor(0.5)).item(), 0.0, -F.logsigmoid(torch.tensor(-0.5)).item(), 0.0]
    torch.testing.assert_close(loss.detach(), torch.tensor(expected))
    mean, _ = L.pseudo_label_loss(score_a, score_b, targets_a, targets_b, threshold=0.95)
    torch.testing.assert_close(mean.detach(), torch.tensor(sum(expected) / 4))  # averaged over all pairs
    mean.backward()
    assert score_a.grad[1] == score_a.grad[3] == 0 and score_a.grad[0] < 0 < score_a.grad[2]
    with pytest.raises(ValueError, match="threshold must be a finite number in \\[0.5, 1\\], got 0.2"):
        L.pseudo_label_loss(score_a, score_b, targets_a, targets_b, threshold=0.2)
