"""Preference fine-tuning of a causal LM: SFT, DPO (every loss type of TRL's DPOTrainer), RPO, AIHF, AIHF-DPO, MODPO.

Every loss comes from `prefrl.losses`, the same functions the MuJoCo reward trainer uses:
- `sft`: `sequence_nll` of the demonstrations (or of the chosen completions when there are none);
- `dpo`: `dpo_loss` of the policy/reference log-ratios of chosen and rejected completions, or a weighted sum of
  loss types (`loss="sigmoid,sft"`, `loss_weights="1,0.5"`, TRL's `loss_type` list and `loss_weights`);
- `rpo`: `rpo_loss` (DPO + alpha * NLL of the chosen completion);
- `aihf`: `aihf_loss` of the DPO term and the demonstrations' `sequence_nll` (weights W_P, W_D);
- `aihf-dpo`: `aihf_dpo_loss`, DPO on the preferences plus DPO of each demonstration against a
  completion y' for the same prompt. By default (`ref_samples="policy"`, AIHF's self-play) y' is a
  new sample of the current policy every time the demonstration enters a batch; `fresh` samples it
  from the reference model instead (AIHF's offline variant), and `once` draws one reference sample
  per demonstration before training and reuses it (the behaviour before the self-play default).
- `modpo`: `modpo_loss` (Zhou et al. 2023), DPO on this objective's preferences with the implicit reward of a
  `margin_model` tuned on another objective as a margin, weighted by `weights` = w_k,w_m: one point of the front
  of the two objectives per weighting.
Reference log-probabilities of the datasets are computed once, before training (those of new y'
when they are drawn).

Why self-play (a default chosen after measuring the three, `benchmarks/results/llm_ref_samples.md`):
training length is `epochs` passes over the largest dataset, so with 16 demonstrations and 256
preference pairs each demonstration enters a batch 160 times (16x more than at 16 pairs). The DPO
demonstration term can always be lowered further by pushing the log-ratio of its y' down, and y'
drawn from the reference can be pushed down wholesale by moving probability to text the reference
never writes. With `once`, on sorting at 256 pairs, the margin of the same 16 (demonstration, y')
pairs reaches ~8 nats, the KL to the reference 7.5 and the true reward falls below the reference
model's; `fresh` y' halve that KL but still lose reward against `policy`. A y' sampled from the
policy itself moves with the policy, so pushing it down means moving towards the demonstrations:
its margin stays within 0-5 nats, and it has the highest true reward of the three at 256 pairs on
both tasks, at the lowest KL of the three.
`train_log.json` records the loss and, per step, what TRL users read (`terms`: rewards/chosen, rewards/rejected,
rewards/margins, rewards/accuracies, logps/chosen, logps/rejected, with the implicit reward beta * log-ratio) and
the mean log-ratio margins of the terms; `kl` holds, before training and after every epoch, an estimate of the
KL to the reference: the mean over completions the policy samples for `kl_samples` training prompts of
log pi(y|x) - log pi_ref(y|x). The same values go to TensorBoard (`tb/`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefrl.core import losses
from prefrl.core.data import write_json
from prefrl.llm.sequences import Batch, context_length, encode, reference_logprobs, sequence_logprobs

METHODS = ("sft", "dpo", "rpo", "aihf", "aihf-dpo", "modpo")
REF_SAMPLES = ("policy", "fresh", "once")


def read_records(path: str | Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """JSONL records (or a Hugging Face dataset saved with save_to_disk) holding string `fields`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"records file {path} does not exist")
    if path.is_dir():
        try:
            from datasets import load_from_disk
        except ImportError as exc:
            raise ImportError(f"{path} is a directory: reading a Hugging Face dataset needs `pip install datasets`") from exc
        rows = list(load_from_disk(str(path)))
    else:
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not a JSON record ({exc})") from exc
    if not rows:
        raise ValueError(f"{path} holds no records")
    for n, row in enumerate(rows, 1):
        missing = [f for f in fields if not isinstance(row, dict) or not isinstance(row.get(f), str)]
        if missing:
            raise ValueError(f"{path}: record {n} lacks the string field(s) {missing} (expected {list(fields)})")
    return [{f: row[f] for f in fields} for row in rows]


@dataclass
class LLMTrainConfig:
    """One fine-tuning run of a causal LM from preferences (and demonstrations); saved with the model."""

    model: str
    """Reference model: a save_pretrained directory (nothing is downloaded)."""
    out: str
    """Output directory."""
    method: str = "dpo"
    """sft, dpo, rpo, aihf, aihf-dpo or modpo."""
    prefs: str | None = None
    """Preference records: JSONL (or a saved HF dataset) with prompt, chosen, rejected."""
    demos: str | None = None
    """Demonstrations: JSONL (or a saved HF dataset) with prompt, completion."""
    loss: str = "sigmoid"
    """DPO loss type(s) of the preference term, named as TRL's `loss_type`: sigmoid, ipo, hinge, robust, exo_pair,
    nca_pair, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm or sft; several,
    comma-separated, are summed with `loss_weights`."""
    loss_weights: str | None = None
    """Comma-separated weights of the loss types (default: 1 each)."""
    label_smoothing: float = 0.0
    """Label smoothing of sigmoid, robust, exo_pair (needs > 0), aot and aot_unpaired."""
    ipo_length_norm: bool = True
    """IPO on per-token log-ratios (divided by each completion's length, as TRL); off: on summed log-ratios."""
    discopop_tau: float = 0.05
    """DiscoPOP's temperature."""
    beta: float = 0.1
    """Strength of the KL regularization (DPO's beta)."""
    alpha: float = 1.0
    """RPO: weight of the NLL of chosen completions."""
    pref_weight: float = 1.0
    """AIHF weight W_P of the preference term."""
    demo_weight: float = 1.0
    """AIHF weight W_D of the demonstration term."""
    ref_samples: str = "policy"
    """AIHF-DPO: the completion y' each demonstration is preferred over: policy (a new sample of the current
    policy every time the demonstration enters a batch: self-play), fresh (a new sample of the reference model)
    or once (one reference sample per demonstration, drawn before training and reused). With few demonstrations
    and many preference pairs, reference samples (once, and to a lesser extent fresh) are over-optimised and the
    policy drifts far from the reference; self-play's y' follow the policy."""
    margin_model: str | None = None
    """MODPO: a model fine-tuned from the same reference on another objective; its implicit reward
    beta_m * log(pi_m / pi_ref) (beta_m from its train_log.json, else --beta) is the margin."""
    weights: str | None = None
    """MODPO: w_k,w_m, the weights of this run's preferences' objective and of the margin model's (sum 1, w_k > 0)."""
    lr: float = 1e-4
    """Adam learning rate."""
    epochs: int = 10
    """Passes over the largest of the datasets."""
    batch_size: int = 16
    """Records per step."""
    seed: int = 0
    """Seed of shuffling and sampling."""
    kl_samples: int = 16
    """Training prompts whose sampled completions estimate the KL to the reference, before training and after
    every epoch (0: no estimate)."""
    lora_r: int = 0
    """Rank of LoRA adapters (peft) trained instead of every weight; 0: full fine-tuning. The reference is the
    base model (adapters off); the output directory holds the merged model and `adapter/`."""
    lora_alpha: float | None = None
    """LoRA scale numerator (the update is scaled by alpha / r); default 2 * lora_r."""
    lora_targets: str = "all-linear"
    """Modules given adapters: comma-separated names (e.g. q_proj,v_proj) or all-linear."""

    def loss_terms(self) -> list[tuple[str, float]]:
        """The (loss type, weight) pairs of the preference term, validated."""
        types = [t.strip() for t in self.loss.split(",")]
        weights = None
        if self.loss_weights is not None:
            try:
                weights = [float(w) for w in self.loss_weights.split(",")]
            except ValueError:
                raise ValueError(f"loss_weights must be comma-separated numbers, got {self.loss_weights!r}") from None
        return losses.check_loss_combination(types, weights)

    def modpo_weights(self) -> tuple[float, float]:
        """(w_k, w_m) of --weights, checked as MODPO needs them."""
        try:
            w = tuple(float(x) for x in str(self.weights).split(","))
        except ValueError:
            w = ()
        if len(w) != 2 or not all(math.isfinite(x) and x >= 0 for x in w) or w[0] <= 0 or abs(sum(w) - 1) > 1e-6:
            raise ValueError(f"--weights {self.weights!r}: expected w_k,w_m, two numbers >= 0 summing to 1 with "
                             f"w_k > 0 (e.g. 0.7,0.3)")
        return w

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.ref_samples not in REF_SAMPLES:
            raise ValueError(f"unknown ref_samples {self.ref_samples!r}: expected one of {', '.join(REF_SAMPLES)}")
        terms = self.loss_terms()
        if (self.loss != "sigmoid" or self.label_smoothing) and self.method not in ("dpo", "aihf"):
            raise ValueError(f"--loss and --label-smoothing apply to methods dpo and aihf; method {self.method} has "
                             f"its own loss, got --loss {self.loss} --label-smoothing {self.label_smoothing}")
        for name, _ in terms:  # each loss type's own checks (smoothing range, tau), before any model is loaded
            if name != "sft":
                x = torch.zeros(1)
                losses.dpo_loss(x, x, beta=self.beta, loss_type=name, label_smoothing=self.label_smoothing,
                                chosen_tokens=torch.ones(1), rejected_tokens=torch.ones(1), ref_margin=x,
                                discopop_tau=self.discopop_tau)
        if self.method in ("aihf", "aihf-dpo"):
            losses.check_aihf_weights(self.pref_weight, self.demo_weight)
        if self.method == "modpo":
            self.modpo_weights()
            if not self.margin_model or not Path(self.margin_model).is_dir():
                raise ValueError(f"method modpo needs --margin-model DIR (a model fine-tuned on the other objective), "
                                 f"got {self.margin_model!r}")
        elif self.margin_model or self.weights:
            raise ValueError(f"--margin-model and --weights belong to method modpo, not {self.method}")
        needs_prefs = self.method in ("dpo", "rpo", "aihf", "aihf-dpo", "modpo")
        if needs_prefs and not self.prefs:
            raise ValueError(f"method {self.method} needs --prefs FILE")
        if self.method in ("aihf", "aihf-dpo") and not self.demos:
            raise ValueError(f"method {self.method} needs --demos FILE")
        if self.method == "sft" and not (self.demos or self.prefs):
            raise ValueError("method sft needs --demos FILE (or --prefs FILE, whose chosen completions it imitates)")
        for name in ("beta", "lr", "alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value == value and value >= 0 and (value > 0 or name == "alpha")):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive integers, got {self.epochs} and {self.batch_size}")
        if self.kl_samples < 0:
            raise ValueError(f"kl_samples must be >= 0, got {self.kl_samples}")
        if not isinstance(self.lora_r, int) or self.lora_r < 0:
            raise ValueError(f"lora_r must be an integer >= 0 (0: full fine-tuning), got {self.lora_r!r}")
        if not Path(self.model).is_dir():
            raise FileNotFoundError(f"model path {self.model} does not exist (expected a save_pretrained directory)")


def load_model(path: str | Path):
    """A causal LM and its tokenizer from a local save_pretrained directory (never downloaded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file load/save bars would drown prefrl's own progress bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a causal LM from {path}: {exc}") from exc
    return model, tokenizer


def load_margin_model(config: LLMTrainConfig, tokenizer) -> tuple[Any, float]:
    """MODPO's margin model and the beta of its implicit reward (its own training's, else the run's)."""
    margin, margin_tok = load_model(config.margin_model)
    if len(margin_tok) != len(tokenizer) or margin_tok.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"margin model {config.margin_model} has another vocabulary than {config.model}: expected a "
                         f"model fine-tuned from the same reference")
    beta = config.beta
    log = Path(config.margin_model) / "train_log.json"
    if log.is_file():
        beta = float(json.loads(log.read_text()).get("config", {}).get("beta", beta))
    margin.eval()
    return margin, beta


def _sample_length(batch: Batch, ctx: int | None) -> int:
    """Tokens to sample for a prompt of `batch`: up to 2 more than its longest completion (end of sequence
    included), within the context; the end-of-sequence token is appended to a sample cut at that length."""
    longest = int(batch.completion_tokens.max())
    room = None if ctx is None else ctx - int((batch.completion_mask.cumsum(1) == 0).sum(1).max()) - 1
    return longest + 2 if room is None else max(1, min(longest + 2, room))


class _Data:
    """Encoded preference and demonstration batches with their cached reference log-probs."""

    def __init__(self, config: LLMTrainConfig, policy, reference, tokenizer):
        ctx = context_length(policy)
        self.chosen = self.rejected = self.demo = self.ref_sample = None
        self.demo_prompts: list[str] = []
        uses_prefs = config.method != "sft" or not config.demos  # sft imitates demos, else the chosen completions
        self.prompts: list[str] = []  # the training prompts, preference prompts first (KL estimates sample on them)
        if config.prefs and uses_prefs:
            prefs = read_records(config.prefs, ("prompt", "chosen", "rejected"))
            prompts = self.prompts = [r["prompt"] for r in prefs]
            self.chosen = encode(tokenizer, prompts, [r["chosen"] for r in prefs], ctx)
            self.rejected = encode(tokenizer, prompts, [r["rejected"] for r in prefs], ctx)
            self.sample_tokens = _sample_length(self.chosen, ctx)
        if config.demos:
            demos = read_records(config.demos, ("prompt", "completion"))
            prompts = self.demo_prompts = [r["prompt"] for r in demos]
            self.prompts = self.prompts + prompts
            self.demo = encode(tokenizer, prompts, [r["completion"] for r in demos], ctx)
            self.sample_tokens = _sample_length(self.demo, ctx)
            if config.method == "aihf-dpo" and config.ref_samples == "once":
                samples = sample_completions(reference, tokenizer, prompts, seed=config.seed,
                                             max_new_tokens=self.sample_tokens)
                self.ref_sample = encode(tokenizer, prompts, samples, ctx)
        self.ref = {name: reference_logprobs(reference, b) for name in ("chosen", "rejected", "demo", "ref_sample")
                    if (b := getattr(self, name)) is not None}
        self.margin = {}
        if config.method == "modpo":  # the margin model's implicit reward of each completion, computed once
            margin, beta = load_margin_model(config, tokenizer)
            self.margin = {name: (beta * (reference_logprobs(margin, getattr(self, name)) - self.ref[name]))[:, None]
                           for name in ("chosen", "rejected")}

    def draw_ref_samples(self, sampler, reference, tokenizer, idx: torch.Tensor, seed: int) -> None:
        """Fresh y' for the demonstrations `idx` from `sampler` (the reference or the policy), with their
        reference log-probs; they become `ref_sample` rows 0..len(idx)-1. The global RNG is left as it was."""
        prompts = [self.demo_prompts[i] for i in idx.tolist()]
        with torch.random.fork_rng(devices=[]):
            samples = sample_completions(sampler, tokenizer, prompts, seed=seed, max_new_tokens=self.sample_tokens)
        self.ref_sample = encode(tokenizer, prompts, samples, context_length(reference))
        self.ref["ref_sample"] = reference_logprobs(reference, self.ref_sample)


def sample_completions(model, tokenizer, prompts: list[str], *, seed: int = 0, max_new_tokens: int = 12,
                       greedy: bool = False) -> list[str]:
    """Sample one completion per prompt (decoded, up to the end-of-sequence token)."""
    torch.manual_seed(seed)
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(prompts), 64):
            chunk = prompts[s : s + 64]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=not greedy,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            out += [tokenizer.decode(g[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for g in gen]
    return [o if o else tokenizer.eos_token for o in out]


def preference_term(config: LLMTrainConfig, chosen: Batch, rejected: Batch, logp_chosen: torch.Tensor,
                    logp_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor
                    ) -> torch.Tensor:
    """The preference loss `sum_i w_i * loss_i` over the configured loss types (`config.loss_terms()`), from the
    policy's and the reference's summed completion log-probs."""
    c, r = logp_chosen - ref_chosen, logp_rejected - ref_rejected
    n_c, n_r = chosen.completion_tokens, rejected.completion_tokens
    total = torch.zeros((), dtype=c.dtype)
    for name, weight in config.loss_terms():
        if name == "sft":
            term = losses.sft_loss(logp_chosen, n_c)
        else:
            norm = name == "sigmoid_norm" or (name == "ipo" and config.ipo_length_norm)
            term = losses.dpo_loss(c, r, beta=config.beta, loss_type=name, label_smoothing=config.label_smoothing,
                                   chosen_tokens=n_c if norm else None, rejected_tokens=n_r if norm else None,
                                   ref_margin=ref_chosen - ref_rejected, discopop_tau=config.discopop_tau)
        total = total + weight * term
    return total


def reward_stats(beta: float, logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                 ref_rejected: torch.Tensor) -> dict[str, float]:
    """What TRL's DPOTrainer logs of a preference batch (implicit rewards beta * log-ratio), and the mean
    log-ratio margin."""
    c, r = logp_chosen - ref_chosen, logp_rejected - ref_rejected
    reward_c, reward_r = losses.dpo_rewards(c, r, beta)
    return {"rewards/chosen": float(reward_c.mean()), "rewards/rejected": float(reward_r.mean()),
             "rewards/margins": float((reward_c - reward_r).mean()),
             "rewards/accuracies": float((reward_c > reward_r).float().mean()),
             "logps/chosen": float(logp_chosen.detach().mean()), "logps/rejected": float(logp_rejected.detach().mean()),
             "pref_margin": float((c - r).detach().mean())}


def _loss(config: LLMTrainConfig, policy, data: _Data, idx: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The loss of one batch and, for the log, TRL's reward statistics and the mean log-ratio margins of its
    terms (detached)."""
    def batch(name: str) -> Batch:
        return getattr(data, name).select(idx[name])

    def logratio(name: str) -> torch.Tensor:
        return sequence_logprobs(policy, batch(name)) - data.ref[name][idx[name]]

    def nll(name: str) -> torch.Tensor:
        return losses.sequence_nll(sequence_logprobs(policy, batch(name)), batch(name).completion_tokens)

    def mean(x: torch.Tensor) -> float:
        return float(x.detach().mean())

    m = config.method
    if m == "sft":
        return nll("demo" if data.demo is not None else "chosen"), {}
    chosen, rejected = batch("chosen"), batch("rejected")
    logp_c, logp_r = sequence_logprobs(policy, chosen), sequence_logprobs(policy, rejected)
    ref_c, ref_r = data.ref["chosen"][idx["chosen"]], data.ref["rejected"][idx["rejected"]]
    stats = reward_stats(config.beta, logp_c, logp_r, ref_c, ref_r)
    if m == "aihf-dpo":
        demo, ref_sample = logratio("demo"), logratio("ref_sample")
        stats.update(demo_logratio=mean(demo), ref_sample_logratio=mean(ref_sample), demo_margin=mean(demo - ref_sample))
        return losses.aihf_dpo_loss(logp_c - ref_c, logp_r - ref_r, demo, ref_sample, beta=config.beta,
                                    pref_weight=config.pref_weight, demo_weight=config.demo_weight), stats
    if m == "modpo":
        return losses.modpo_loss(logp_c - ref_c, logp_r - ref_r, data.margin["chosen"][idx["chosen"]],
                                 data.margin["rejected"][idx["rejected"]], weights=config.modpo_weights(),
                                 beta=config.beta), stats
    if m == "rpo":
        chosen_nll = losses.sequence_nll(logp_c, chosen.completion_tokens)
        return losses.rpo_loss(logp_c - ref_c, logp_r - ref_r, chosen_nll, beta=config.beta, alpha=config.alpha), stats
    pref = preference_term(config, chosen, rejected, logp_c, logp_r, ref_c, ref_r)
    if m == "dpo":
        return pref, stats
    demo_nll = nll("demo")
    stats["demo_nll"] = mean(demo_nll)
    return losses.aihf_loss(pref, demo_nll, pref_weight=config.pref_weight, demo_weight=config.demo_weight), stats


def sampled_kl(policy, reference, tokenizer, prompts: list[str], completions: list[str]) -> float:
    """Mean over (prompt, completion) of log pi(y|x) - log pi_ref(y|x): the KL to the reference when the
    completions are the policy's own samples."""
    batch = encode(tokenizer, prompts, completions, context_length(policy))
    return float((reference_logprobs(policy, batch) - reference_logprobs(reference, batch)).mean())


def _save(policy, tokenizer, out: Path, *, final: bool) -> None:
    """The policy as save_pretrained writes it. With LoRA: the adapters to out/adapter, and at the end the model
    with the adapters merged into its weights to `out` (what `prefrl llm eval` and plain transformers load)."""
    if hasattr(policy, "merge_and_unload"):  # a peft model
        policy.save_pretrained(out / "adapter")
        if final:
            policy.merge_and_unload().save_pretrained(out)
    else:
        policy.save_pretrained(out)
    tokenizer.save_pretrained(out)


def train_llm(config: LLMTrainConfig, progress: bool = True,
              monitor: Callable[[Any], dict[str, float]] | None = None) -> dict[str, Any]:
    """Fine-tune `config.model`; writes the model (save_pretrained) and train_log.json to `config.out`.

    `monitor(policy)`, if given, is called before training and after every epoch (the policy in eval
    mode, the random state restored afterwards); its dicts go to train_log.json's `monitor`."""
    config.validate()
    torch.manual_seed(config.seed)
    policy, tokenizer = load_model(config.model)
    reference, _ = load_model(config.model)  # with LoRA: the base model, i.e. the policy with its adapters off
    if config.lora_r:
        from prefrl.llm.models import apply_lora

        policy = apply_lora(policy, config.lora_r, alpha=config.lora_alpha, targets=config.lora_targets)
    data = _Data(config, policy, reference, tokenizer)
    sizes = {name: len(getattr(data, name)) for name in ("chosen", "rejected", "demo", "ref_sample")
             if getattr(data, name) is not None}  # ref_sample: only with ref_samples="once"
    fresh = config.method == "aihf-dpo" and config.ref_samples != "once"
    n = max(sizes.values())
    rng = np.random.default_rng(config.seed)
    trained = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=config.lr, weight_decay=0.0)
    per_epoch = max(1, -(-n // config.batch_size))
    steps = config.epochs * per_epoch
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    log: list[float] = []
    terms: dict[str, list[float]] = {}
    monitored: list[dict[str, Any]] = []
    kls: list[dict[str, float]] = []
    kl_prompts = data.prompts[: config.kl_samples]

    def watch(step: int) -> None:
        """The KL estimate and the monitor's values at `step` (policy in eval mode, random state restored)."""
        if not kl_prompts and monitor is None:
            return
        with torch.random.fork_rng(devices=[]):
            policy.eval()
            if kl_prompts:
                samples = sample_completions(policy, tokenizer, kl_prompts, seed=config.seed,
                                             max_new_tokens=data.sample_tokens)
                kls.append({"step": step, "kl": sampled_kl(policy, reference, tokenizer, kl_prompts, samples)})
                writer.add_scalar("kl", kls[-1]["kl"], step)
            if monitor is not None:
                monitored.append({"step": step, **monitor(policy)})
            policy.train()
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, unit="step", desc=config.method, dynamic_ncols=True)
    policy.train()
    watch(0)
    step_ms: list[float] = []  # the training step alone: batch, forward, backward, optimizer
    save_every = max(per_epoch, steps // 5)  # at most ~5 checkpoints
    for step in bar:
        t0 = time.perf_counter()
        idx = {}
        for name, size in sizes.items():
            idx[name] = torch.as_tensor(rng.choice(size, size=min(config.batch_size, size), replace=False))
        if "chosen" in idx:
            idx["rejected"] = idx["chosen"]  # a pair's two sides move together
        if fresh:  # a new y' for each demonstration of the batch
            data.draw_ref_samples(policy if config.ref_samples == "policy" else reference, reference, tokenizer,
                                  idx["demo"], seed=config.seed * 1_000_003 + step)
            policy.train()  # sampling left the policy in eval mode
            idx["ref_sample"] = torch.arange(len(idx["demo"]))
        elif "demo" in idx and data.ref_sample is not None:
            idx["ref_sample"] = idx["demo"]  # each demonstration against its own reference sample
        loss, stats = _loss(config, policy, data, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append(float(loss.detach()))
        step_ms.append(1000 * (time.perf_counter() - t0))
        for key, value in stats.items():
            terms.setdefault(key, []).append(value)
            writer.add_scalar(key, value, step)
        writer.add_scalar(f"llm/{config.method}_loss", log[-1], step)
        if (step + 1) % per_epoch == 0:
            watch(step + 1)
        if (step + 1) % save_every == 0 and step + 1 < steps:  # checkpoint, as save_pretrained writes it
            _save(policy, tokenizer, out, final=False)
    writer.close()
    policy.eval()
    _save(policy, tokenizer, out, final=True)
    result = {"steps": steps, "final_loss": float(np.mean(log[-10:])), "ms_per_step": float(np.mean(step_ms)),
              "trained_parameters": sum(p.numel() for p in trained), "reference": str(config.model)}
    write_json(out / "train_log.json", {"config": config.__dict__, "losses": log, "terms": terms, "kl": kls,
                                        "monitor": monitored, "step_ms": step_ms, **result})
    return result
