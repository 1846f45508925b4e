"""Text tasks whose true reward is computed in code.

Synthetic tasks, with tiny GPT-2 models built and pretrained locally:
- `sentiment`: "review :" followed by 6 words; true reward = (positive - negative lexicon words) / 6. A second
  objective, `calm` = -(positive + negative words) / 6, trades off against it (`objective="calm"`, or mixed
  labels with `objective="0.3*sentiment+0.7*calm"`).
- `sorting`: "sort : d d d d d =" followed by 5 digits; true reward = -(inversions + wrong tokens) / 5,
  where wrong tokens counts digits of the completion missing from (or extra to) the prompt's multiset.

`build_reference` trains a 2-layer GPT-2 with a word-level tokenizer on sloppy completions (random
words; digits roughly in order), so the reference model is fluent in the format but far from the
best reward: preference training has room to improve it. Nothing is downloaded.

A task on real generated text, for a real pretrained chat model (e.g. `prefrl llm get-model smollm2-135m`):
- `review`: "Write a one-sentence review of the film <title>." as a chat turn (the model's chat template);
  true reward = VADER's compound sentiment of the completion, in [-1, 1] (`vadersentiment`, which ships its
  lexicon). Its preference pairs and demonstrations are the model's own samples (`make_task(..., model=DIR)`).
  A second objective, `brevity` = max(0, 1 - words / 30), can label the pairs instead (`objective="brevity"`), for
  trade-offs between objectives; `evaluate` reports both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prefrl.core.objectives import parse_objective

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
    chat: bool = False
    """Prompts are user turns rendered with the model's chat template (a task for a real pretrained model,
    whose samples make the preference pairs: no tiny reference is built)."""
    objectives: dict[str, Callable[[str, str], float]] | None = None
    """Other true rewards of the same completions, by name (the first is `reward`), for multi-objective work."""

    def objective(self, name: str | None) -> Callable[[str, str], float]:
        """The true reward called `name` (None: the task's own), or a weighted sum of them such as
        0.3*sentiment+0.7*calm (preferences whose labels mix two objectives)."""
        if name is None:
            return self.reward
        if self.objectives and name in self.objectives:
            return self.objectives[name]
        try:
            weights = parse_objective(name).resolve(sorted(self.objectives or {}), f"task {self.name}")
        except ValueError as exc:
            raise ValueError(f"task {self.name} has no objective {name!r}: expected one of "
                             f"{sorted(self.objectives or {})} or a weighted sum of them ({exc})") from None
        parts = [(self.objectives[k], w) for k, w in weights.items()]
        return lambda prompt, completion: float(sum(w * f(prompt, completion) for f, w in parts))


def _sentiment_reward(prompt: str, completion: str) -> float:
    words = completion.split()
    return (sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)) / 6.0


def _calm(prompt: str, completion: str) -> float:
    """Minus the share of sentiment words, positive or negative: a second objective that sentiment trades off."""
    words = completion.split()
    return -sum(w in POSITIVE or w in NEGATIVE for w in words) / 6.0


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


FILMS = ["Jaws", "Casablanca", "Vertigo", "Alien", "Titanic", "Psycho", "Rocky", "Amelie", "Fargo", "Heat",
         "Up", "Frozen", "Inception", "Gladiator", "Avatar", "Memento", "Goodfellas", "Cars", "Coco", "Shrek",
         "Chinatown", "Amadeus", "Platoon", "Unforgiven", "Braveheart", "Se7en", "Clueless", "Ratatouille", "Arrival",
         "Moonlight", "Parasite", "Whiplash", "Her", "Gravity", "Interstellar", "Skyfall", "Tangled", "Brave", "Dune",
         "Metropolis", "Rebecca", "Notorious", "Spartacus", "Grease", "Annie Hall", "The Matrix", "The Godfather",
         "Toy Story"]
REVIEW_TEMPLATES = ["Write a one-sentence review of the film {}.", "In one sentence, review the movie {}.",
                    "Give a one-sentence opinion of the film {}."]


def _review_prompt(rng: np.random.Generator) -> str:
    return str(rng.choice(REVIEW_TEMPLATES)).format(rng.choice(FILMS))


_VADER = None


def _review_reward(prompt: str, completion: str) -> float:
    """VADER's compound sentiment of the completion, in [-1, 1]."""
    global _VADER
    if _VADER is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise ImportError("the review task's true reward needs vadersentiment: pip install 'prefrl[llm]'") from exc
        _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(completion)["compound"])


def _brevity(prompt: str, completion: str) -> float:
    """1 for an empty answer, falling linearly to 0 at 30 words and beyond."""
    return max(0.0, 1.0 - len(completion.split()) / 30.0)


TASKS: dict[str, Task] = {
    "sentiment": Task(
        "sentiment", POSITIVE + NEGATIVE + NEUTRAL + ["review", ":"],
        lambda rng: "review :",
        lambda prompt, rng: " ".join(rng.choice(POSITIVE + NEGATIVE + NEUTRAL + NEUTRAL, 6)),
        _sentiment_reward, 6, objectives={"sentiment": _sentiment_reward, "calm": _calm}),
    "sorting": Task("sorting", DIGITS + ["sort", ":", "="], _sorting_prompt, _sloppy_sort, _sorting_reward, 5),
    "review": Task("review", [], _review_prompt, lambda prompt, rng: "", _review_reward, 40, chat=True,
                   objectives={"sentiment": _review_reward, "brevity": _brevity}),
}


def render_prompts(task: Task, tokenizer, prompts: list[str]) -> list[str]:
    """The prompts as the model sees them: for a chat task, each a user turn rendered with the tokenizer's chat
    template up to the start of the assistant's answer; other tasks' prompts as they are."""
    if not task.chat:
        return prompts
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the {task.name} task writes chat prompts, but the model's tokenizer has no chat template "
                         f"(use a chat model, e.g. `prefrl llm get-model smollm2-135m`)")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


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
              temperature: float = 0.2, pretrain_steps: int = 600, model: str | Path | None = None,
              best_of: int = 4, objective: str | None = None, progress: bool = False) -> dict:
    """Preference pairs (out/prefs.jsonl: two samples of the reference model per prompt, labelled by a
    Bradley-Terry draw on the true reward at `temperature`) and demonstrations (out/demos.jsonl).

    Synthetic tasks build their reference model (out/reference) and write ideal demonstrations. A chat task
    (`review`) takes the reference `model` (a save_pretrained directory), and its demonstrations are the best of
    `best_of` of that model's samples by the true reward. `objective` names the true reward that labels the pairs
    and ranks the samples (default: the task's own)."""
    import json

    from prefrl.llm.train import load_model, sample_completions

    task = get_task(name)
    reward = task.objective(objective)
    if task.chat and model is None:
        raise ValueError(f"the {name} task samples a pretrained chat model: pass --model DIR "
                         f"(e.g. from `prefrl llm get-model smollm2-135m`)")
    if not task.chat and model is not None:
        raise ValueError(f"the {name} task builds its own tiny reference model; --model applies to chat tasks "
                         f"({', '.join(n for n, t in TASKS.items() if t.chat)})")
    if best_of < 1:
        raise ValueError(f"best_of must be >= 1, got {best_of}")
    out = Path(out)
    if task.chat:
        if not Path(model).is_dir():
            raise FileNotFoundError(f"model path {model} does not exist (expected a save_pretrained directory)")
        reference, tokenizer = load_model(model)
        reference_path = str(model)
    else:
        out.mkdir(parents=True, exist_ok=True)
        reference, tokenizer = build_reference(task, out / "reference", steps=pretrain_steps, seed=seed,
                                               progress=progress)
        reference_path = str(out / "reference")
    rng = np.random.default_rng(seed + 1)
    prompts = render_prompts(task, tokenizer, [task.prompt(rng) for _ in range(prefs)])
    sample = lambda ps, s: sample_completions(reference, tokenizer, ps, seed=s,  # noqa: E731
                                              max_new_tokens=task.completion_tokens + 2)
    a, b = sample(prompts, seed), sample(prompts, seed + 1)
    lines = []
    for p, x, y in zip(prompts, a, b):
        ra, rb = reward(p, x), reward(p, y)
        a_wins = rng.random() < 1.0 / (1.0 + math.exp(-(ra - rb) / temperature))
        chosen, rejected = (x, y) if a_wins else (y, x)
        lines.append(json.dumps({"prompt": p, "chosen": chosen, "rejected": rejected}))
    demo_prompts = render_prompts(task, tokenizer, [task.prompt(rng) for _ in range(demos)])  # after the draws above
    if task.chat:  # the best of `best_of` samples per prompt
        candidates = [sample(demo_prompts, seed + 2 + k) for k in range(best_of)]
        completions = [max(c, key=lambda y, p=p: reward(p, y)) for p, *c in zip(demo_prompts, *candidates)]
    else:
        completions = [ideal_completion(task, p, rng) for p in demo_prompts]
    out.mkdir(parents=True, exist_ok=True)
    (out / "prefs.jsonl").write_text("\n".join(lines) + "\n")
    (out / "demos.jsonl").write_text("\n".join(
        json.dumps({"prompt": p, "completion": c}) for p, c in zip(demo_prompts, completions)) + "\n")
    return {"task": name, "reference": reference_path, "prefs": prefs, "demos": demos,
            **({"objective": objective} if objective else {})}


def evaluate(model, reference, tokenizer, task: Task, *, n: int = 256, seed: int = 123,
             objectives: list[str] | None = None) -> dict:
    """Mean true reward of sampled completions on fresh prompts, and the KL to the reference model
    (the mean over samples of log pi(y|x) - log pi_ref(y|x)); `objectives` (names or weighted sums, see
    `Task.objective`; default: the task's own) are each averaged over the same completions."""
    from prefrl.llm.train import sample_completions, sampled_kl

    rng = np.random.default_rng(seed)
    prompts = render_prompts(task, tokenizer, [task.prompt(rng) for _ in range(n)])
    completions = sample_completions(model, tokenizer, prompts, seed=seed, max_new_tokens=task.completion_tokens + 2)
    rewards = np.array([task.reward(p, c) for p, c in zip(prompts, completions)])
    kl = sampled_kl(model, reference, tokenizer, prompts, completions)
    out = {"true_reward_mean": float(rewards.mean()), "true_reward_std": float(rewards.std()), "kl": kl, "samples": n}
    names = list(task.objectives or {}) if objectives is None else list(objectives)
    if names:
        out["objectives"] = {k: float(np.mean([task.objective(k)(p, c) for p, c in zip(prompts, completions)]))
                             for k in names}
    return out
