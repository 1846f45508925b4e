"""Two objectives on the LLM path: mixed objectives of a task, MODPO's margin, and rewarded soups of models."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")  # the [llm] extra, installed by `make test`

from prefrl.llm.soup import evaluate_objectives  # noqa: E402
from prefrl.llm.tasks import build_tokenizer, get_task, make_task  # noqa: E402
from prefrl.llm.train import LLMTrainConfig, load_model, train_llm  # noqa: E402
from prefrl.runs.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A tiny sentiment reference, its pairs labelled by sentiment and by calm, and a DPO model per objective."""
    root = tmp_path_factory.mktemp("multi")
    for name in ("sentiment", "calm"):
        make_task("sentiment", root / name, prefs=16, demos=1, seed=0, pretrain_steps=30, objective=name)
    ref = root / "sentiment" / "reference"
    for name in ("sentiment", "calm"):
        train_llm(LLMTrainConfig(model=str(ref), out=str(root / f"dpo_{name}"), prefs=str(root / name / "prefs.jsonl"),
                                 epochs=2, batch_size=8, lr=1e-3, kl_samples=0), progress=False)
    return root, ref


def test_task_objectives_mix_by_weight():
    task = get_task("sentiment")
    text = "good great bad the movie film"  # 2 positive, 1 negative
    assert task.objective("sentiment")("", text) == pytest.approx(1 / 6)
    assert task.objective("calm")("", text) == pytest.approx(-3 / 6)
    assert task.objective("0.25*sentiment+0.75*calm")("", text) == pytest.approx(0.25 / 6 - 0.75 * 3 / 6)
    with pytest.raises(ValueError, match=r"task sentiment has no objective 'speed': expected one of \['calm', "):
        task.objective("speed")


def test_modpo_with_all_weight_on_its_own_objective_is_dpo(two, tmp_path):
    """weights (1, 0): the margin counts for nothing and MODPO's loss is DPO's, step for step; (0.5, 0.5) moves
    the losses, since the margin model's implicit reward of the pairs is not zero."""
    root, ref = two
    common = dict(model=str(ref), prefs=str(root / "sentiment" / "prefs.jsonl"), epochs=2, batch_size=8, lr=1e-3,
                  kl_samples=0)
    losses = {}
    for name, extra in (("dpo", {}), ("modpo_1", {"method": "modpo", "weights": "1,0"}),
                        ("modpo_half", {"method": "modpo", "weights": "0.5,0.5"})):
        margin = {"margin_model": str(root / "dpo_calm")} if extra else {}
        train_llm(LLMTrainConfig(out=str(tmp_path / name), **common, **extra, **margin), progress=False)
        losses[name] = json.loads((tmp_path / name / "train_log.json").read_text())["losses"]
    assert losses["modpo_1"] == pytest.approx(losses["dpo"], abs=1e-6)
    assert max(abs(a - b) for a, b in zip(losses["modpo_half"], losses["dpo"])) > 1e-3


def test_modpo_bad_input(two, tmp_path):
    root, ref = two
    base = dict(model=str(ref), out=str(tmp_path / "o"), prefs=str(root / "sentiment" / "prefs.jsonl"))
    for extra, message in (({"method": "modpo", "weights": "0.5,0.5"}, "needs --margin-model DIR"),
                           ({"method": "modpo", "weights": "0,1", "margin_model": str(root / "dpo_calm")},
                            "expected w_k,w_m, two numbers >= 0 summing to 1 with w_k > 0"),
                           ({"method": "modpo", "weights": "0.5", "margin_model": str(root / "dpo_calm")},
                            "expected w_k,w_m"),
                           ({"weights": "0.5,0.5"}, "belong to method modpo, not dpo")):
        with pytest.raises(ValueError, match=message):
            LLMTrainConfig(**base, **extra).validate()
    other = tmp_path / "sorting_model"  # a model of another vocabulary cannot give the margin
    tok = build_tokenizer(get_task("sorting"))
    transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=16, n_layer=1,
                                                         n_head=1)).save_pretrained(other)
    tok.save_pretrained(other)
    with pytest.raises(ValueError, match="has another vocabulary"):
        train_llm(LLMTrainConfig(**base, method="modpo", weights="0.5,0.5", margin_model=str(other)), progress=False)


def test_soup_of_two_models_mixes_their_weights(two, tmp_path, capsys):
    root, ref = two
    a, b = root / "dpo_sentiment", root / "dpo_calm"
    assert main(["llm", "soup", "--models", str(a), str(b), "--task", "sentiment", "--lambdas", "3", "--samples",
                 "16", "--out", str(tmp_path / "soup")]) == 0
    soup = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert [p["lambda"] for p in soup["points"]] == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert soup["objectives"] == ["sentiment", "calm"] and soup["reference"] == str(ref)
    assert soup["start"]["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference against itself
    assert (tmp_path / "soup" / "front.png").stat().st_size > 10_000
    task = get_task("sentiment")
    reference, tok = load_model(ref)
    for lam, path in (([1.0, 0.0], a), ([0.0, 1.0], b)):  # each end is that model itself
        model, _ = load_model(path)
        own = evaluate_objectives(model, reference, tok, task, ["sentiment", "calm"], n=16, seed=123)
        point = next(p for p in soup["points"] if p["lambda"] == lam)
        assert point["objectives"] == pytest.approx(own["objectives"]) and point["kl"] == pytest.approx(own["kl"])
    half, _ = load_model(a)  # the middle is the average of the weights
    wa, wb = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    half.load_state_dict({k: (wa[k] + wb[k]) / 2 for k in wa})
    mid = evaluate_objectives(half.eval(), reference, tok, task, ["sentiment", "calm"], n=16, seed=123)
    assert soup["points"][1]["objectives"] == pytest.approx(mid["objectives"])
    # a model tuned from another reference is refused
    make_task("sentiment", tmp_path / "other", prefs=8, demos=1, seed=1, pretrain_steps=5)
    train_llm(LLMTrainConfig(model=str(tmp_path / "other" / "reference"), out=str(tmp_path / "dpo_other"),
                             prefs=str(tmp_path / "other" / "prefs.jsonl"), epochs=1, kl_samples=0), progress=False)
    capsys.readouterr()
    assert main(["llm", "soup", "--models", str(a), str(tmp_path / "dpo_other"), "--task", "sentiment",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "tuned from different references" in capsys.readouterr().err
    assert torch.equal(wa[next(iter(wa))], load_model(a)[0].state_dict()[next(iter(wa))])  # nothing overwritten
