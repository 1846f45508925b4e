"""Every loss TRL's DPOTrainer offers equals prefrl's on the same model, batch and reference (TRL from the dev extra).

TRL computes its loss inside `DPOTrainer.compute_loss`; these tests build a DPOTrainer on a tiny GPT-2 (policy and
reference with different random weights, so every log-ratio is non-zero), take one collated batch from it, and
compare TRL's loss and logged statistics with what prefrl's LLM trainer computes from the same batch:
`sequence_logprobs` of policy and reference, then `preference_term` / `reward_stats`.
"""

import warnings

import pytest
import torch
import transformers
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from prefrl.core import losses
from prefrl.llm.sequences import Batch, sequence_logprobs
from prefrl.llm.tasks import build_tokenizer, get_task
from prefrl.llm.train import LLMTrainConfig, preference_term, reward_stats

BETA = 0.3
# label smoothing per loss type where TRL uses it (EXO needs > 0). TRL's `sigmoid` ignores label_smoothing (prefrl's
# applies it: conservative DPO), so sigmoid is compared at 0.
SMOOTHING = {"exo_pair": 0.01, "robust": 0.1, "aot": 0.1, "aot_unpaired": 0.2}
PAIRS = [("sort : 3 1 2 =", "1 2 3", "3 2"), ("sort : 5 =", "5", "5 5 5 1"),
         ("sort : 9 0 4 4 =", "0 4 4 9", "9 0"), ("sort : 1 =", "1 1", "2")]  # completions of unequal lengths


@pytest.fixture(scope="module")
def trl_batch(tmp_path_factory):
    """A DPOTrainer, one of its collated batches, and prefrl's view of that batch (chosen and rejected halves
    with the policy's and the reference's summed completion log-probs)."""
    tok = build_tokenizer(get_task("sorting"))
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    reference, policy = transformers.GPT2LMHeadModel(cfg), transformers.GPT2LMHeadModel(cfg)
    data = Dataset.from_list([{"prompt": p, "chosen": " " + c, "rejected": " " + r} for p, c, r in PAIRS])
    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), beta=BETA, per_device_train_batch_size=len(PAIRS),
                     report_to=[], use_cpu=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    both = Batch(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    n = len(PAIRS)
    assert len(both) == 2 * n  # TRL stacks [chosen; rejected]
    with torch.no_grad():
        logp, ref = sequence_logprobs(policy, both), sequence_logprobs(reference, both)
    halves = (both.select(torch.arange(n)), both.select(torch.arange(n, 2 * n)), logp[:n], logp[n:], ref[:n], ref[n:])
    assert (halves[0].completion_tokens != halves[1].completion_tokens).any()  # length normalization matters
    return trainer, batch, halves


def trl_loss(trainer, batch, types, weights, label_smoothing=0.0):
    trainer.loss_types, trainer.loss_weights, trainer.label_smoothing = list(types), list(weights), label_smoothing
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(trainer.compute_loss(trainer.model, batch))


def prefrl_loss(halves, **config):
    return float(preference_term(LLMTrainConfig(model=".", out=".", beta=BETA, **config), *halves))


@pytest.mark.parametrize("loss_type", losses.SEQUENCE_LOSS_TYPES)
def test_each_loss_type_equals_trl(trl_batch, loss_type):
    trainer, batch, halves = trl_batch
    ls = SMOOTHING.get(loss_type, 0.0)
    want = trl_loss(trainer, batch, [loss_type], [1.0], ls)
    assert prefrl_loss(halves, loss=loss_type, label_smoothing=ls) == pytest.approx(want, abs=1e-6, rel=1e-6)


def test_ipo_is_length_normalized_as_trl_by_default_and_summed_on_request(trl_batch):
    trainer, batch, halves = trl_batch
    want = trl_loss(trainer, batch, ["ipo"], [1.0])
    assert LLMTrainConfig.ipo_length_norm is True
    summed = prefrl_loss(halves, loss="ipo", ipo_length_norm=False)
    _, _, logp_c, logp_r, ref_c, ref_r = halves
    h = (logp_c - ref_c) - (logp_r - ref_r)
    assert summed == pytest.approx(float(((h - 1 / (2 * BETA)) ** 2).mean()), abs=1e-6)  # Azar et al.'s sums
    assert abs(summed - want) > 1e-2


def test_weighted_combination_equals_trl(trl_batch):
    trainer, batch, halves = trl_batch
    want = trl_loss(trainer, batch, ["sigmoid", "sft", "apo_zero"], [1.0, 0.5, 0.25])
    got = prefrl_loss(halves, loss="sigmoid,sft,apo_zero", loss_weights="1,0.5,0.25")
    assert got == pytest.approx(want, abs=1e-6, rel=1e-6)


def test_logged_statistics_equal_trl(trl_batch):
    trainer, batch, halves = trl_batch
    trainer._metrics["train"].clear()
    trl_loss(trainer, batch, ["sigmoid"], [1.0])
    stats = reward_stats(BETA, *halves[2:])
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected"):
        assert stats[key] == pytest.approx(trainer._metrics["train"][key][-1], abs=1e-5, rel=1e-6), key


def test_speed_benchmark_times_both_trainers(tmp_path):
    """benchmarks/llm_speed.py on a tiny model: a step time per trainer from the same pairs, warm-up left out."""
    import json

    from benchmarks import llm_speed

    out = tmp_path / "speed.json"
    assert llm_speed.main(["--arch", "tiny", "--batch", "2", "--steps", "3", "--repeats", "1", "--threads", "1",
                           "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {k: len(v) for k, v in result["step_ms"].items()} == {"prefrl": 2, "trl_precomputed": 2, "trl_default": 2}
    assert all(ms > 0 for v in result["step_ms"].values() for ms in v)
    assert result["prefrl_over_trl_precomputed"] == pytest.approx(
        result["ms_per_step"]["prefrl"] / result["ms_per_step"]["trl_precomputed"])
    assert result["tokens_per_sequence_max"] > 20  # prompt + completion, as TRL tokenized them
