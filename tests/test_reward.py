"""The batched reward ensemble: training ranks segments like the true reward, anchors the absorbing state, saves safely."""

import json
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from prefrl.core.data import ComparisonDataset, Segments
from prefrl.reward.model import EnsembleMLP, RewardModel
from prefrl.reward.trainer import RewardTrainer, _PairTensors, evaluate_preferences

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float64)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)


def _segments(rng, n, h=10, absorbing=False, offset=1.5):
    """Random segments whose true reward is obs[0] + 0.5*act[1] (+ offset per real step when episodes can end;
    absorbing steps are worth 0)."""
    obs = rng.normal(size=(n, h, 3)).astype(np.float32)
    acts = rng.uniform(-1, 1, size=(n, h, 2)).astype(np.float32)
    mask = np.ones((n, h), np.float32)
    if absorbing:  # episode ends at a random step; what follows is the absorbing state
        ends = rng.integers(1, h + 1, size=n)
        mask = (np.arange(h)[None] < ends[:, None]).astype(np.float32)
    reward = (obs[..., 0] + 0.5 * acts[..., 1] + (offset if absorbing else 0.0)) * mask
    return Segments(obs=obs, acts=acts, next_obs=obs, mask=mask, true_rewards=reward.astype(np.float32))


def _oracle_dataset(rng, n, **kw):  # kw: absorbing, offset
    a, b = _segments(rng, n, **kw), _segments(rng, n, **kw)
    ra, rb = a.true_returns(), b.true_returns()
    ds = ComparisonDataset()
    ds.add(a, b, (ra > rb).astype(np.float32), "oracle", 0)
    return ds


def test_ensemble_is_one_batched_module_with_independent_members():
    net = EnsembleMLP(members=4, in_dim=5, hidden=(8, 8))
    assert all(p.shape[0] == 4 for p in net.parameters())
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.ModuleList)) for m in net.modules())
    out = net(torch.randn(7, 5))
    assert out.shape == (4, 7)
    assert not torch.allclose(out[0], out[1])  # members are initialized independently
    # member 2's output depends only on member 2's weights
    x = torch.randn(4, 7, 5)
    before = net(x).detach()
    with torch.no_grad():
        net.weights[0][2] += 1.0
    after = net(x).detach()
    assert torch.equal(before[[0, 1, 3]], after[[0, 1, 3]]) and not torch.equal(before[2], after[2])


def test_trained_ensemble_ranks_true_better_segments_higher():
    rng = np.random.default_rng(0)
    model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
    trainer = RewardTrainer(model, seed=0, max_updates=600)
    report = trainer.fit(_oracle_dataset(rng, 300))
    assert report.val_accuracy > 0.85
    test = _oracle_dataset(np.random.default_rng(1), 500)
    _, acc = evaluate_preferences(model, test.segments_a, test.segments_b, test.labels)
    assert acc > 0.88
    # per-step rewards correlate with the true reward, through the policy-facing numpy path
    segs = _segments(np.random.default_rng(2), 50)
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    learned = model.predict(flat(segs.obs), flat(segs.acts), flat(segs.next_obs))
    assert np.corrcoef(learned, segs.true_rewards.reshape(-1))[0, 1] > 0.9


@pytest.mark.parametrize("absorbing", [False, True])
def test_predict_matches_torch_forward_and_is_normalized(absorbing):
    """After a fit, each member is scaled to unit std on the fitted (real) steps and shifted: to mean 0,
    or, when episodes end in the data, so the absorbing state is worth exactly 0; predict averages them, and
    predict_members gives them one by one."""
    rng = np.random.default_rng(3)
    model = RewardModel(OBS, ACT, ensemble_size=2, seed=1)
    ds = _oracle_dataset(rng, 60, absorbing=absorbing)
    RewardTrainer(model, seed=0, max_updates=50).fit(ds)
    segs = [ds.segments_a, ds.segments_b]
    if absorbing:
        assert all((s.mask == 0).any() for s in segs)  # the data does hold absorbing steps
    obs = np.concatenate([s.obs[s.mask > 0] for s in segs])
    acts = np.concatenate([s.acts[s.mask > 0] for s in segs])
    nxt = np.concatenate([s.next_obs[s.mask > 0] for s in segs])
    with torch.no_grad():
        raw = model.member_rewards(torch.as_tensor(model.features(obs, acts, nxt)))
        members = ((raw - model.out_shift[:, None]) / model.out_scale[:, None]).numpy()  # (K, steps)
        absorbing_reward = ((model.absorbing - model.out_shift) / model.out_scale).numpy()
    np.testing.assert_allclose(members.std(axis=1, ddof=1), 1.0, rtol=1e-3)  # unit scale per member
    assert raw.std(dim=1).min() > 1e-3  # (the members do vary: the scale above is not a given)
    if absorbing:
        np.testing.assert_allclose(absorbing_reward, 0.0, atol=1e-5)  # ending an episode is worth 0
    else:
        np.testing.assert_allclose(members.mean(axis=1), 0.0, atol=1e-3)
    # the policy-facing numpy path: the mean of the normalized members, on the fitted steps and elsewhere; and the
    # members one by one (RUNE's bonus takes their std)
    fitted = model.predict(obs, acts, nxt)
    np.testing.assert_allclose(fitted, members.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.predict_members(obs, acts, nxt), members, rtol=1e-4, atol=1e-4)
    assert 0.7 < fitted.std() <= 1.0 + 1e-3  # a mean of unit-std members that largely agree
    obs, acts = rng.normal(size=(100, 3)).astype(np.float32), rng.uniform(-1, 1, (100, 2)).astype(np.float32)
    fast = model.predict(obs, acts, obs)
    with torch.no_grad():
        raw = model.member_rewards(torch.as_tensor(model.features(obs, acts, obs)))
        slow = ((raw - model.out_shift[:, None]) / model.out_scale[:, None]).mean(0).numpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offset", [1.5, -1.5])
def test_absorbing_state_anchor_gives_the_learned_reward_the_right_sign(offset):
    """+1.5 per real step: living beats ending, so the policy-facing reward must be mostly positive;
    -1.5: ending early is better, so it must be mostly negative. Plain normalization can't tell."""
    rng = np.random.default_rng(4)
    model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
    RewardTrainer(model, seed=0, max_updates=800).fit(_oracle_dataset(rng, 400, absorbing=True, offset=offset))
    obs = rng.normal(size=(2000, 3)).astype(np.float32)
    acts = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    true = obs[:, 0] + 0.5 * acts[:, 1] + offset
    learned = model.predict(obs, acts, obs)
    assert np.mean(np.sign(learned) == np.sign(offset)) > 0.8
    assert np.mean(np.sign(learned[np.abs(true) > 1.0]) == np.sign(true[np.abs(true) > 1.0])) > 0.8
    assert np.corrcoef(true, learned)[0, 1] > 0.9


def test_squared_action_input_learns_a_control_cost_from_few_labels():
    """act_sq feeds the action squared: its columns are a^2, and with it a reward that is all control cost
    (-|a|^2, the shape of MuJoCo's) is learned from 40 labels far better than from the action alone."""
    rng = np.random.default_rng(8)
    data = ComparisonDataset()
    a, b = _segments(rng, 40), _segments(rng, 40)
    for seg in (a, b):
        seg.true_rewards[:] = -np.square(seg.acts).sum(-1)
    data.add(a, b, (a.true_returns() > b.true_returns()).astype(np.float32), "oracle", 0)
    test = _segments(rng, 500)
    true = -np.square(test.acts).sum(-1).ravel()
    corr = {}
    for inputs in (("obs", "act"), ("obs", "act", "act_sq")):
        model = RewardModel(OBS, ACT, ensemble_size=3, inputs=inputs, seed=0)
        RewardTrainer(model, seed=0, max_updates=300).fit(data)
        x = model.segment_features(test)
        if "act_sq" in inputs:
            np.testing.assert_array_equal(x[..., 5:7], np.square(test.acts))
        flat = [v.reshape(-1, v.shape[-1]) for v in (test.obs, test.acts, test.next_obs)]
        corr[inputs[-1]] = np.corrcoef(true, model.predict(*flat))[0, 1]
    assert corr["act_sq"] > 0.8 and corr["act_sq"] > corr["act"] + 0.3, corr  # seen: 0.87 against 0.26


def test_save_load_round_trip_and_space_checks(tmp_path):
    model = RewardModel(OBS, ACT, ensemble_size=2, hidden=(16,), inputs=("next_obs", "act_sq", "obs", "act"), seed=0)
    assert model.inputs == ("obs", "act", "act_sq", "next_obs") and model.in_dim == 3 + 2 + 2 + 3  # in one order
    RewardTrainer(model, seed=0, max_updates=20).fit(_oracle_dataset(np.random.default_rng(5), 30))
    path = tmp_path / "r.pt"
    model.save(path)
    back = RewardModel.load(path, OBS, ACT)
    x = np.random.default_rng(6).normal(size=(9, 3)).astype(np.float32)
    a = np.random.default_rng(7).uniform(-1, 1, (9, 2)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x, a, x), model.predict(x, a, x))
    assert back.inputs == ("obs", "act", "act_sq", "next_obs")
    with pytest.raises(ValueError, match=r"trained on observation space .*\(3,\).*env gives .*\(17,\)"):
        RewardModel.load(path, spaces.Box(-1, 1, (17,)), ACT)
    with pytest.raises(ValueError, match="action space"):
        RewardModel.load(path, OBS, spaces.Box(-1, 1, (6,)))
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        RewardModel.load(corrupt, OBS, ACT)
    with pytest.raises(FileNotFoundError):
        RewardModel.load(tmp_path / "missing.pt", OBS, ACT)


def test_bootstrap_weights_and_held_out_split_are_fixed_per_pair():
    model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
    trainer = RewardTrainer(model, seed=5)
    counts = trainer.bootstrap_counts(400)
    assert counts.shape == (3, 400)
    assert not np.array_equal(counts[0], counts[1]) and not np.array_equal(counts[1], counts[2])
    assert 0.3 < (counts == 0).mean() < 0.45  # ~1/e of the pairs left out of each member
    # appending labels never moves an earlier pair between held-out and training, or changes its weights
    val_a, train_a = trainer.split(60)
    val_b, train_b = trainer.split(90)
    assert set(val_a) <= set(val_b) and set(train_a) <= set(train_b)
    assert 0.2 < len(val_b) / 90 < 0.55
    np.testing.assert_array_equal(trainer.bootstrap_counts(90)[:, :60], trainer.bootstrap_counts(60))


def test_members_trained_on_different_weights_disagree_off_the_data():
    rng = np.random.default_rng(7)
    model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
    RewardTrainer(model, seed=0, max_updates=200).fit(_oracle_dataset(rng, 80))
    far = torch.as_tensor(rng.normal(scale=5.0, size=(200, model.in_dim)).astype(np.float32))
    with torch.no_grad():
        r = model.member_rewards(far)
    assert float(r.std(0).mean()) > 0.05


def test_bad_inputs_are_refused():
    for inputs in (("obs", "velocity"), ("obs", "obs"), (), "obs"):
        with pytest.raises(ValueError, match=r"reward inputs .* is invalid: expected distinct input kinds of obs, act"):
            RewardModel(OBS, ACT, inputs=inputs)
    assert RewardModel(OBS, ACT, inputs=("act", "obs")).inputs == ("obs", "act")  # one order, whatever was given
    with pytest.raises(TypeError, match="not supported"):
        RewardModel(spaces.Text(5), ACT)
    with pytest.raises(ValueError, match="empty"):
        RewardTrainer(RewardModel(OBS, ACT)).fit(ComparisonDataset())
    with pytest.raises(ValueError, match=r"holdout_fraction 1.0: expected a share in \[0, 1\)"):
        RewardTrainer(RewardModel(OBS, ACT), holdout_fraction=1.0)
    with pytest.raises(ValueError, match=r"fit_accuracy 0: expected a share in \(0, 1\]"):
        RewardTrainer(RewardModel(OBS, ACT), fit_accuracy=0)


def test_without_held_out_pairs_every_label_trains_until_each_member_ranks_its_own_pairs_right():
    ds = _oracle_dataset(np.random.default_rng(3), 60)
    contradicted = ds.subset(np.arange(60))  # and six pairs asked twice, answered both ways: no member ranks all right
    contradicted.add(ds.segments_a[:6], ds.segments_b[:6], 1 - ds.labels[:6], "oracle", 0)

    def fit(data, accuracy):
        model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
        trainer = RewardTrainer(model, seed=0, holdout_fraction=0.0, fit_accuracy=accuracy, max_updates=300)
        report = trainer.fit(data)
        pairs = _PairTensors.from_dataset(model, data)
        weights = torch.as_tensor(trainer.bootstrap_counts(len(data)), dtype=torch.float32)
        return report, pairs.member_accuracy(model, torch.arange(len(data)), weights)

    report, accuracy = fit(ds, 0.97)
    assert report.pairs == 60 and math.isnan(report.val_loss)  # every pair trained on, none held out
    assert accuracy >= 0.97 and report.epochs < 300  # stopped once the members rank 97% of their pairs right
    report, accuracy = fit(contradicted, 1.0)
    assert report.epochs == 300 // 2 and accuracy < 1.0  # out of reach: every update is spent (2 batches an epoch)


@pytest.mark.parametrize("renormalize", [None, "first", "preserve"])
def test_input_standardization_is_redone_at_every_preference_fit_or_kept_from_the_first(renormalize):
    """By default a preference fit re-standardizes the reward's inputs from its labelled pairs (so does `preserve`);
    with `first` the first fit's standardization stays while later labels come from elsewhere."""
    rng = np.random.default_rng(4)
    first = _oracle_dataset(rng, 40)
    model = RewardModel(OBS, ACT, ensemble_size=2, seed=0)
    trainer = RewardTrainer(model, seed=0, max_updates=20, renormalize_inputs=renormalize)
    assert trainer.renormalize_inputs == (renormalize or "every")
    trainer.fit(first)
    mean, std = model.in_mean.clone(), model.in_std.clone()
    later = _oracle_dataset(rng, 40)
    for segs in (later.segments_a, later.segments_b):  # the policy has moved: its states lie elsewhere
        segs.obs += 5.0
        segs.next_obs += 5.0
    grown = first.subset(np.arange(40))
    grown.add(later.segments_a, later.segments_b, later.labels, "oracle", 0)
    trainer.fit(grown)
    kept = torch.equal(model.in_mean, mean) and torch.equal(model.in_std, std)
    assert kept is (renormalize == "first")
    if renormalize != "first":
        assert float(model.in_mean[0]) == pytest.approx(2.5, abs=0.5)  # half of the pairs' states moved by 5
    with pytest.raises(ValueError, match="renormalize_inputs 'never': expected one of every, first, preserve"):
        RewardTrainer(model, renormalize_inputs="never")


def test_restandardizing_with_keep_function_leaves_every_members_reward_as_it_was():
    rng = np.random.default_rng(5)
    model = RewardModel(OBS, ACT, ensemble_size=3, seed=0)
    model.set_input_normalization(rng.normal(size=(200, model.in_dim)))
    x = torch.as_tensor(rng.normal(scale=3.0, size=(50, model.in_dim)), dtype=torch.float32)
    with torch.no_grad():
        before = model.member_rewards(x)
        model.set_input_normalization(rng.normal(2.0, 4.0, size=(200, model.in_dim)), keep_function=True)
        kept = model.member_rewards(x)
        model.set_input_normalization(rng.normal(-1.0, 0.5, size=(200, model.in_dim)))
        moved = model.member_rewards(x)
    assert float(model.in_mean.mean()) == pytest.approx(-1.0, abs=0.2)  # the standardization itself did change
    torch.testing.assert_close(kept, before, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(moved, before, atol=0.1)  # without it the same weights compute another reward


def test_restandardizing_with_keep_function_keeps_a_feature_once_constant_at_its_seen_value():
    rng = np.random.default_rng(6)
    model = RewardModel(OBS, ACT, ensemble_size=2, seed=0)
    first = rng.normal(size=(200, model.in_dim))
    first[:, 0] = 3.0  # seen at one value only: its std is the floor
    model.set_input_normalization(first)
    seen = torch.as_tensor(first[:50], dtype=torch.float32)
    w0 = model.net.weights[0].detach().clone()
    with torch.no_grad():
        before = model.member_rewards(seen)
        model.set_input_normalization(rng.normal(1.0, 2.0, size=(200, model.in_dim)), keep_function=True)
        kept = model.member_rewards(seen)
    torch.testing.assert_close(kept, before, rtol=1e-4, atol=1e-4)  # where the reward was fitted, it is unchanged
    # the once-constant feature's weights are not scaled by its new std over the floor (~2e6)
    assert float(model.net.weights[0].detach()[:, 0].abs().max()) < 10 * float(w0.abs().max())


def test_predict_follows_weights_loaded_into_an_existing_model():
    rng = np.random.default_rng(8)
    a = RewardModel(OBS, ACT, ensemble_size=2, seed=0)
    b = RewardModel(OBS, ACT, ensemble_size=2, seed=1)
    x, u = rng.normal(size=(5, 3)).astype(np.float32), np.zeros((5, 2), np.float32)
    before = b.predict(x, u, x)  # builds b's numpy cache
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.predict(x, u, x), a.predict(x, u, x))
    assert not np.array_equal(before, a.predict(x, u, x))


@pytest.mark.parametrize("shared_inputs", [True, False])
def test_member_by_member_ensemble_matches_batched_matmuls(shared_inputs):
    """The CPU path (hand-written backward) gives the batched-matmul form's outputs and gradients."""
    from prefrl.reward.model import _batched_forward

    torch.manual_seed(0)
    net = EnsembleMLP(3, 7, hidden=(16, 8)).double()
    x = torch.randn(40, 7, dtype=torch.float64) if shared_inputs else torch.randn(3, 40, 7, dtype=torch.float64)
    x.requires_grad_(True)
    params = [t for pair in zip(net.weights, net.biases) for t in pair]
    weights = torch.randn(3, 40, dtype=torch.float64)
    got = net(x)
    grads = torch.autograd.grad((got * weights).sum(), [x, *params])
    want = _batched_forward(x, params, net.negative_slope)
    want_grads = torch.autograd.grad((want * weights).sum(), [x, *params])
    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w)
    with torch.no_grad():
        torch.testing.assert_close(net(x), want.detach())


def test_rime_screens_out_the_flipped_answers_and_keeps_the_stored_labels():
    """30% of the answers flipped: after a first fit on everything, RIME's screen singles out mostly the flipped
    pairs (left out, or trained on reversed), and the reward ranks clean test pairs better than plain Bradley-Terry."""
    rng = np.random.default_rng(0)
    ds = _oracle_dataset(rng, 400)
    wrong = rng.random(len(ds)) < 0.3
    ds.labels[wrong] = 1.0 - ds.labels[wrong]
    given = ds.labels.copy()
    test = _oracle_dataset(np.random.default_rng(1), 500)
    accuracy, reports = {}, {}
    for robust in ("none", "rime"):
        model = RewardModel(OBS, ACT, ensemble_size=3, inputs=("obs", "act"), seed=0)  # this reward has no |a|^2 term
        trainer = RewardTrainer(model, seed=0, robust=robust)
        reports[robust] = [trainer.fit(ds) for _ in range(3)]
        accuracy[robust] = evaluate_preferences(model, test.segments_a, test.segments_b, test.labels)[1]
    np.testing.assert_array_equal(ds.labels, given)  # screening never touches what the teacher said
    later = reports["rime"][-1]
    assert later.distrusted + later.flipped > 0.15 * (len(ds) - len(trainer.split(len(ds))[0]))  # of ~30% wrong
    assert all(r.distrusted == r.flipped == 0 for r in reports["none"])
    assert accuracy["rime"] > accuracy["none"] + 0.02, accuracy
    with pytest.raises(ValueError, match="unknown robust 'rim': expected one of none, rime"):
        RewardTrainer(model, robust="rim")


def test_a_fitted_label_noise_floor_finds_the_teachers_mistakes_and_survives_a_resume(tmp_path):
    """With estimate_label_noise every fit sets the next one's floor from its held-out pairs: near twice the flip rate
    for a teacher that flips 30% of its answers, near 0 for the oracle; the floor is reported, saved with the loop's
    state and restored (a trainer that does not estimate keeps its own)."""
    from prefrl.sb3.callback import LoopState

    rng = np.random.default_rng(0)
    clean = _oracle_dataset(rng, 700)
    noisy = clean.subset(np.arange(len(clean)))
    wrong = rng.random(len(noisy)) < 0.3
    noisy.labels[wrong] = 1.0 - noisy.labels[wrong]
    floors, intervals = {}, {}
    for name, ds in (("oracle", clean), ("mistake0.3", noisy)):
        trainer = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, inputs=("obs", "act"), seed=0), seed=0,
                                estimate_label_noise=True)
        reports = [trainer.fit(ds) for _ in range(3)]
        assert [r.label_noise for r in reports][-1] == trainer.label_noise
        assert all(r.label_noise_low - 0.01 <= r.label_noise <= r.label_noise_high + 0.01 for r in reports)
        floors[name] = trainer.label_noise
        intervals[name] = (reports[-1].label_noise_low, reports[-1].label_noise_high)
    assert floors["oracle"] < 0.1 and 0.4 < floors["mistake0.3"] <= 0.8, floors
    # clean labels pin the floor near 0; 258 held-out pairs of the flipping teacher leave it open far above 0
    assert intervals["oracle"][1] < 0.1 and intervals["mistake0.3"][1] > 0.4, intervals
    fixed = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, inputs=("obs", "act"), seed=0), seed=0,
                          label_noise=0.2)
    report = fixed.fit(noisy)
    assert report.label_noise == 0.2 and fixed.label_noise == 0.2  # set by hand: never estimated
    assert math.isnan(report.label_noise_low) and math.isnan(report.label_noise_high)

    LoopState(labels_asked=len(noisy), trainer=trainer.resume_state()).save(tmp_path)
    fresh = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, seed=0), seed=0, estimate_label_noise=True)
    fresh.restore(LoopState.load(tmp_path).trainer)
    assert fresh.label_noise == trainer.label_noise
    fixed.restore(LoopState.load(tmp_path).trainer)
    assert fixed.label_noise == 0.2
    with pytest.raises(ValueError, match="label_noise 1.5: expected a share in \\[0, 1\\)"):
        fresh.restore({"label_noise": 1.5})
    with pytest.raises(ValueError, match="max_label_noise 1: expected a share in \\[0, 1\\)"):
        RewardTrainer(RewardModel(OBS, ACT, seed=0), estimate_label_noise=True, max_label_noise=1)


def test_rime_threshold_trusts_all_at_first_and_flips_only_confident_contradictions():
    from prefrl.reward.trainer import RimeFilter

    rime = RimeFilter()
    loss = np.array([0.1, 0.3, 0.5, 2.5, 9.0, 0.2])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.5])
    trusted, flipped = rime.select(loss, y)
    assert trusted.all() and not flipped.any()  # no statistics yet: tau_lower = -ln(1e-8)
    for _ in range(30):  # the running max settles near the trusted losses' largest
        trusted, flipped = rime.select(loss, y)
    assert trusted.tolist() == [True, True, True, True, False, True]
    assert flipped.tolist() == [False, False, False, False, True, False]  # loss 9 > -ln(1e-3)
    assert not rime.select(np.array([5.0]), np.array([1.0]))[0].any()  # above tau_lower, below the flip line: out
    assert rime.select(np.array([9.0]), np.array([0.5]))[0].all()  # ties are always trusted
    # a label in its grace fits is trusted, and its loss stays out of the statistics
    grace = RimeFilter()
    for _ in range(30):
        grace.select(loss, y)
    before = (grace.max_loss, grace.var)
    trusted, flipped = grace.select(np.array([9.0, 9.0]), np.array([1.0, 1.0]), fresh=np.array([True, False]))
    assert trusted.tolist() == [True, False] and flipped.tolist() == [False, True]
    assert grace.max_loss == before[0]  # only the judged-and-trusted losses count, and here there are none


def test_surf_crops_each_pair_to_one_length_inside_its_segments():
    from prefrl.reward.trainer import Surf

    wa, wb = Surf(crop=10).windows(500, 50, np.random.default_rng(0))
    assert wa.shape == wb.shape == (500, 50)
    lengths = wa.sum(1)
    torch.testing.assert_close(lengths, wb.sum(1))  # both segments of a pair keep the same number of steps
    assert lengths.min() == 40 and lengths.max() == 50
    for w in (wa, wb):  # one contiguous run of kept steps, starting anywhere it fits
        assert ((w[:, 1:] - w[:, :-1]).abs().sum(1) <= 2).all()
    assert len({int(w.argmax()) for w in wa}) == 11 and not torch.equal(wa, wb)
    assert Surf(crop=0).windows(5, 50, np.random.default_rng(0))[0].min() == 1  # no crop: every step
    assert Surf(crop=80).windows(50, 50, np.random.default_rng(0))[0].sum(1).min() >= 1  # never empty
    for kwargs, message in (({"threshold": 0.4}, "surf threshold 0.4"), ({"weight": -1.0}, "surf weight -1.0"),
                            ({"ratio": 0}, "surf ratio must be a positive integer"), ({"crop": -2}, "surf crop -2")):
        with pytest.raises(ValueError, match=message):
            Surf(**kwargs)


def test_a_cropped_segment_return_counts_only_the_kept_steps():
    model = RewardModel(OBS, ACT, ensemble_size=2, seed=0)
    segs = _segments(np.random.default_rng(0), 4, absorbing=True)
    x, mask = torch.as_tensor(model.segment_features(segs)), torch.as_tensor(segs.mask)
    with torch.no_grad():
        model.absorbing.fill_(0.7)
        full = model.segment_returns(x, mask)
        torch.testing.assert_close(model.segment_returns(x, mask, torch.ones_like(mask)), full)
        window = torch.zeros_like(mask)
        window[:, 2:5] = 1
        steps = model.member_rewards(x) * mask + (1 - mask) * 0.7
        torch.testing.assert_close(model.segment_returns(x, mask, window), steps[..., 2:5].sum(-1))


def test_surf_pseudo_labels_unlabelled_pairs_in_every_epoch_of_a_fit(monkeypatch):
    from prefrl.core import losses
    from prefrl.reward.trainer import Surf

    rng = np.random.default_rng(3)
    ds, unlabelled = _oracle_dataset(rng, 40), (_segments(rng, 400), _segments(rng, 400))
    calls = []
    original = losses.pseudo_label_loss
    monkeypatch.setattr(losses, "pseudo_label_loss", lambda *a, **k: calls.append(a[0].requires_grad) or original(*a, **k))
    reports = {}
    for name, surf, extra in (("plain", None, unlabelled), ("surf", Surf(), unlabelled), ("crop only", Surf(), None)):
        calls.clear()
        trainer = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, seed=0), seed=0, surf=surf)
        reports[name] = [trainer.fit(ds, unlabelled=extra) for _ in range(2)]
        assert bool(calls) is (name == "surf") and all(calls)  # the term trains the scores of the unlabelled pairs
    later = reports["surf"][-1]
    assert 0 < later.pseudo_labelled <= 1  # once the reward has learned, some unlabelled pairs are clear enough
    assert math.isnan(reports["plain"][-1].pseudo_labelled) and math.isnan(reports["crop only"][-1].pseudo_labelled)
    assert later.pairs == 40  # unlabelled pairs never count as labels


def test_rime_grace_judges_a_label_only_after_the_reward_has_trained_on_it():
    """With grace_fits=1 the first fit screens nothing, and a later fit screens only the labels of earlier fits."""
    from prefrl.reward.trainer import RimeFilter

    rng = np.random.default_rng(0)
    ds = _oracle_dataset(rng, 300)
    wrong = rng.random(len(ds)) < 0.3
    ds.labels[wrong] = 1.0 - ds.labels[wrong]
    model = RewardModel(OBS, ACT, ensemble_size=3, inputs=("obs", "act"), seed=0)
    trainer = RewardTrainer(model, seed=0, robust="rime")
    trainer.rime = RimeFilter(grace_fits=1)
    first = trainer.fit(ds.subset(np.arange(150)))
    assert first.distrusted == first.flipped == 0  # every label is new: none is judged yet
    screened = []
    trainer.rime.select = lambda loss, y, fresh=None, select=trainer.rime.select: screened.append(fresh) or \
        select(loss, y, fresh)
    second = trainer.fit(ds)
    train = trainer.split(len(ds))[1]
    np.testing.assert_array_equal(screened[0], train >= 150)  # the second fit's new labels are the fresh ones
    assert second.distrusted + second.flipped > 0



def test_a_resumed_trainer_goes_on_with_rimes_statistics_and_grace(tmp_path):
    """What RIME learned while screening, the labels each fit had (its grace period) and the tuned L2 weight survive
    a save to the run's pref_state.json and a load into a fresh trainer; a state saved before they existed still
    loads, and a mangled one is refused by name."""
    from prefrl.sb3.callback import LoopState

    rng = np.random.default_rng(0)
    ds = _oracle_dataset(rng, 200)
    ds.labels[rng.random(len(ds)) < 0.3] = 0.0
    trainer = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, seed=0), seed=0, robust="rime", rime_grace=1)
    trainer.fit(ds.subset(np.arange(120)))
    trainer.fit(ds)
    trainer.weight_decay = 0.125
    LoopState(labels_asked=len(ds), trainer=trainer.resume_state()).save(tmp_path)

    fresh = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, seed=0), seed=0, robust="rime", rime_grace=1)
    fresh.restore(LoopState.load(tmp_path).trainer)
    assert fresh.rime == trainer.rime and fresh.rime.epochs > 0 and fresh.rime.count > 0
    assert fresh.fit_sizes == [120, 200] and fresh.weight_decay == 0.125
    train = trainer.split(len(ds))[1]
    np.testing.assert_array_equal(fresh._in_grace(train), train >= 200)  # the grace of the last fit, not the first

    (tmp_path / "pref_state.json").write_text(json.dumps({"labels_asked": 5, "weight_decay": 0.5}))
    older = RewardTrainer(RewardModel(OBS, ACT, ensemble_size=3, seed=0), seed=0)
    older.restore(LoopState.load(tmp_path).trainer)
    assert older.weight_decay == 0.5 and older.fit_sizes == []
    with pytest.raises(ValueError, match="reward trainer state .*'count': 'many'.*expected the values of"):
        fresh.restore({"rime": {**trainer.resume_state()["rime"], "count": "many"}})
