"""Synthetic text tasks whose true reward is computed in code, with tiny GPT-2 models built and pretrained locally.

- `sentiment`: "review :" followed by 6 words; true reward = (positive - negative lexicon words) / 6.
- `sorting`: "sort : d d d d d =" followed by 5 digits; true reward = -(inversions + wrong tokens) / 5,
  where wrong tokens counts digits of the completion missing from (or extra to) the prompt's multiset.

`build_reference` trains a 2-layer GPT-2 with a word-level tokenizer on sloppy completions (random
words; digits roughly in order), so the reference model is fluent in the format but far from the
best reward: preference training has room to improve it. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

POSITIVE = ["good", "great", "fine", "happy", "love", "nice", "best", "fun"]
NEGATIVE = ["bad", "awful", "poor", "sad", "hate", "worst", "dull", "ugly"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "actor", "was", "is", "and", "very", "story", "it"]
DIGITS = [str(d) for d in range(10)]
SPECIAL = ["<pad>", "<eos>", "<unk>"]


@dataclass(frozen=True)
class Task:
    """A prompt distribution, a true reward and the sloppy completions the reference model learns."""

    name: str
    vocab: list[str]
    prompt: Callable[[np.random.Generator], str]
    sloppy_completion: Callable[[str, np.random.Generator], str]
    reward: Callable[[str, str], float]
    completion_tokens: int


def _sentiment_reward(prompt: str, completion: str) -> float:
    words = completion.split()
    return (sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)) / 6.0


def _sorting_prompt(rng: np.random.Generator) -> str:
    return "sort : " + " ".join(str(d) for d in rng.integers(0, 10, 5)) + " ="


def _sorting_reward(prompt: str, completion: str) -> float:
    want = [int(d) for d in prompt.split(":")[1].replace("=", "").split()]
    got = [int(w) if w.isdigit() else -1 for w in completion.split()]
    inversions = sum(got[i] > got[j] for i in range(len(got)) for j in range(i + 1, len(got)))
    missing = sum((_count(want) - _count(got)).values()) + abs(len(got) - len(want))
    return -(inversions + missing) / 5.0


def _count(xs):
    from collections import Counter

    return Counter(xs)


def _sloppy_sort(prompt: str, rng: np.random.Generator) -> str:
    digits = [int(d) for d in prompt.split(":")[1].replace("=", "").split()]
    out = sorted(digits)
    for _ in range(rng.integers(0, 4)):  # a few swaps and slips
        i, j = rng.integers(0, 5, 2)
        out[i], out[j] = out[j], out[i]
    if rng.random() < 0.3:
        out[rng.integers(0, 5)] = int(rng.integers(0, 10))
    return " ".join(map(str, out))


TASKS: dict[str, Task] = {
    "sentiment": Task(
        "sentiment", POSITIVE + NEGATIVE + NEUTRAL + ["review", ":"],
        lambda rng: "review :",
        lambda prompt, rng: " ".join(rng.choice(POSITIVE + NEGATIVE + NEUTRAL + NEUTRAL, 6)),
        _sentiment_reward, 6),
    "sorting": Task("sorting", DIGITS + ["sort", ":", "="], _sorting_prompt, _sloppy_sort, _sorting_reward, 5),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def build_tokenizer(task: Task):
    """A word-level fast tokenizer over the task's vocabulary (pad, eos and unk included)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + task.vocab)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def build_reference(task: Task, out: str | Path, *, steps: int = 600, seed: int = 0, batch_size: int = 64,
                    progress: bool = False):
    """Pretrain a tiny GPT-2 on the task's sloppy completions and save it (save_pretrained) with its tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from prefrl.llm.sequences import encode

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tokenizer = build_tokenizer(task)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, unit="step", desc=f"pretraining the {task.name} reference")
    model.train()
    for _ in bar:
        prompts = [task.prompt(rng) for _ in range(batch_size)]
        batch = encode(tokenizer, prompts, [task.sloppy_completion(p, rng) for p in prompts], config.n_positions)
        # plain language modelling on the whole text (prompt included), padding masked out
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model, tokenizer


def ideal_completion(task: Task, prompt: str, rng: np.random.Generator) -> str:
    """A demonstration: a completion with the task's best true reward."""
    if task.name == "sentiment":
        return " ".join(rng.choice(POSITIVE, task.completion_tokens))
    digits = sorted(int(d) for d in prompt.split(":")[1].replace("=", "").split())
    return " ".join(map(str, digits))


def make_task(name: str, out: str | Path, *, prefs: int = 256, demos: int = 64, seed: int = 0,
              temperature: float = 0.2, pretrain_steps: int = 600, progress: bool = False) -> dict:
    """Reference model (out/reference), preference pairs (out/prefs.jsonl: two reference samples per prompt,
    labelled by a Bradley-Terry draw on the true reward at `temperature`) and demonstrations (out/demos.jsonl)."""
    import json

    from prefrl.llm.train import sample_completions

    task = get_task(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_reference(task, out / "reference", steps=pretrain_steps, seed=seed, progress=progress)
    rng = np.random.default_rng(seed + 1)
    prompts = [task.prompt(rng) for _ in range(prefs)]
    a = sample_completions(model, tokenizer, prompts, seed=seed, max_new_tokens=task.completion_tokens + 2)
    b = sample_completions(model, tokenizer, prompts, seed=seed + 1, max_new_tokens=task.completion_tokens + 2)
    lines = []
    for p, x, y in zip(prompts, a, b):
        ra, rb = task.reward(p, x), task.reward(p, y)
        a_wins = rng.random() < 1.0 / (1.0 + math.exp(-(ra - rb) / temperature))
        chosen, rejected = (x, y) if a_wins else (y, x)
        lines.append(json.dumps({"prompt": p, "chosen": chosen, "rejected": rejected}))
    (out / "prefs.jsonl").write_text("\n".join(lines) + "\n")
    demo_prompts = [task.prompt(rng) for _ in range(demos)]
    (out / "demos.jsonl").write_text("\n".join(
        json.dumps({"prompt": p, "completion": ideal_completion(task, p, rng)}) for p in demo_prompts) + "\n")
    return {"task": name, "reference": str(out / "reference"), "prefs": prefs, "demos": demos}


def evaluate(model, reference, tokenizer, task: Task, *, n: int = 256, seed: int = 123) -> dict:
    """Mean true reward of sampled completions on fresh prompts, and the KL to the reference model
    (the mean over samples of log pi(y|x) - log pi_ref(y|x))."""
    from prefrl.llm.sequences import context_length, encode, reference_logprobs
    from prefrl.llm.train import sample_completions

    rng = np.random.default_rng(seed)
    prompts = [task.prompt(rng) for _ in range(n)]
    completions = sample_completions(model, tokenizer, prompts, seed=seed, max_new_tokens=task.completion_tokens + 2)
    rewards = np.array([task.reward(p, c) for p, c in zip(prompts, completions)])
    batch = encode(tokenizer, prompts, completions, context_length(model))
    kl = (reference_logprobs(model, batch) - reference_logprobs(reference, batch)).mean()
    return {"true_reward_mean": float(rewards.mean()), "true_reward_std": float(rewards.std()), "kl": float(kl),
            "samples": n}
