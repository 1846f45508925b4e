"""One DPO training step of prefrl against TRL's DPOTrainer: same model, batch and sequence length, one process.

    python benchmarks/llm_speed.py                         # SmolLM2-135M's architecture (random weights), ~10 min
    python benchmarks/llm_speed.py --model models/smollm2  # a saved causal LM (its own tokenizer)
    python benchmarks/llm_speed.py --arch tiny --steps 3 --repeats 1 --out /tmp/speed.json   # smoke test

Both sides train the same model from the same save_pretrained directory on the same preference pairs (`--batch`
pairs per step, sigmoid DPO, AdamW at a constant learning rate, `--threads` CPU threads) for `--steps` steps; a
step is the batch's forward and backward passes of the policy and the optimizer step, timed inside each trainer
(prefrl: `train_log.json`'s `step_ms`; TRL: a callback from `on_step_begin` to `on_step_end`). The first step of
each run is left out (warm-up); the figure is the median of the others, over `--repeats` runs that alternate
between the trainers so that drift on the machine hits both alike.

prefrl computes the reference model's log-probs once, before training, and keeps every activation for the
backward pass, in the model's float32. `trl_precomputed` is TRL set up to do the same work
(`precompute_ref_log_probs=True`, `gradient_checkpointing=False`, `bf16=False`): the like-for-like comparison.
`trl_default` is TRL's defaults but one: the reference forward pass inside every step and gradient checkpointing
on (less memory, a second forward pass in the backward), in float32. TRL's default bf16 autocast is left out:
on CPUs without bf16 matrix units its matmuls take a slow path (on these 2 cores a step of the 135M model did not
finish in 10 minutes). The claim checked: prefrl's step time <= TRL's like-for-like. Writes `results/llm_speed.json` (ms per step of each, the ratios, the model's size, the
tokens per sequence, the machine).

With `--arch smollm2-135m` (the default) the model is SmolLM2-135M's Llama architecture (30 layers, 576 wide,
49152-token vocabulary) with random weights and the sorting task's word-level tokenizer, so the benchmark needs
no download and costs the same arithmetic as the real model. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = ("smollm2-135m", "tiny")


def build_model(arch: str, out: Path) -> Path:
    """A causal LM of architecture `arch` with random weights and the sorting task's tokenizer, saved to `out`."""
    import transformers

    from prefrl.llm.tasks import build_tokenizer, get_task

    tok = build_tokenizer(get_task("sorting"))
    ids = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": tok.eos_token_id}
    torch.manual_seed(0)
    if arch == "smollm2-135m":  # HuggingFaceTB/SmolLM2-135M's config.json
        cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                                       rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, **ids)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=2, **ids)
        model = transformers.GPT2LMHeadModel(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_pairs(path: Path, n: int, prompt_words: int, completion_words: int) -> None:
    """`n` preference pairs on sorting prompts: prompt_words digits to sort, completions of about
    completion_words digits (the chosen sorted, the rejected shuffled and shorter)."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        digits = rng.integers(0, 10, completion_words)
        prompt = "sort : " + " ".join(str(d) for d in rng.integers(0, 10, prompt_words)) + " ="
        rows.append({"prompt": prompt, "chosen": " ".join(str(d) for d in sorted(digits)),
                     "rejected": " ".join(str(d) for d in digits[: max(1, completion_words - 3)])})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def prefrl_step_ms(model: Path, prefs: Path, out: Path, args: argparse.Namespace) -> tuple[list[float], dict]:
    from prefrl.llm.train import LLMTrainConfig, train_llm

    train_llm(LLMTrainConfig(model=str(model), out=str(out), method="dpo", prefs=str(prefs), beta=0.1, lr=args.lr,
                             epochs=1, batch_size=args.batch, kl_samples=0), progress=False)  # batch x steps pairs
    log = json.loads((out / "train_log.json").read_text())
    return log["step_ms"], {}


def trl_step_ms(model: Path, prefs: Path, out: Path, args: argparse.Namespace, precompute: bool
                ) -> tuple[list[float], dict]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from prefrl.llm.train import load_model

    class Timer(TrainerCallback):
        def __init__(self):
            self.ms: list[float] = []

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.ms.append(1000 * (time.perf_counter() - self.t0))

    policy, tok = load_model(model)
    reference = None if precompute else load_model(model)[0]
    rows = [json.loads(line) for line in prefs.read_text().splitlines()]
    data = Dataset.from_list([{**r, "chosen": " " + r["chosen"], "rejected": " " + r["rejected"]} for r in rows])
    config = DPOConfig(output_dir=str(out), beta=0.1, learning_rate=args.lr, lr_scheduler_type="constant",
                       warmup_steps=0, weight_decay=0.0, optim="adamw_torch", per_device_train_batch_size=args.batch,
                       max_steps=args.steps, precompute_ref_log_probs=precompute, save_strategy="no", report_to=[],
                       bf16=False, **({"gradient_checkpointing": False} if precompute else {}),  # else TRL's (on)
                       logging_steps=10**6, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
                       max_length=None)
    timer = Timer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=policy, ref_model=reference, args=config, train_dataset=data,
                             processing_class=tok, callbacks=[timer])
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.train()
    lengths = batch["attention_mask"].sum(1).float()
    return timer.ms, {"tokens_per_sequence_mean": float(lengths.mean()), "tokens_per_sequence_max": int(lengths.max())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=ARCHS, default="smollm2-135m", help="random-weight model (without --model)")
    p.add_argument("--model", metavar="DIR", help="a saved causal LM instead of --arch")
    p.add_argument("--batch", type=int, default=8, help="preference pairs per step")
    p.add_argument("--prompt-words", type=int, default=24)
    p.add_argument("--completion-words", type=int, default=36)
    p.add_argument("--steps", type=int, default=4, help="steps per run (the first is warm-up)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each trainer, alternating")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "llm_speed.json"))
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps must be >= 2 (the first step is warm-up), got {args.steps}")
    torch.set_num_threads(args.threads)
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            model = Path(args.model)
            if not model.is_dir():
                p.error(f"--model {model} is not a directory (expected a save_pretrained causal LM)")
        else:
            model = build_model(args.arch, tmp / "model")
        prefs = tmp / "prefs.jsonl"
        write_pairs(prefs, args.batch * args.steps, args.prompt_words, args.completion_words)
        runs = {"prefrl": [], "trl_precomputed": [], "trl_default": []}
        shape: dict = {}
        for r in range(args.repeats):
            for name in runs:
                out = tmp / f"{name}{r}"
                if name == "prefrl":
                    ms, _ = prefrl_step_ms(model, prefs, out, args)
                else:
                    ms, shape = trl_step_ms(model, prefs, out, args, precompute=name == "trl_precomputed")
                runs[name] += ms[1:]  # the first step of each run is warm-up
                print(f"[{time.time() - t_start:.0f} s] {name} run {r}: ms/step {[round(m) for m in ms]}",
                      file=sys.stderr, flush=True)
        from prefrl.llm.train import load_model

        params = sum(x.numel() for x in load_model(model)[0].parameters())
    median = {name: statistics.median(ms) for name, ms in runs.items()}
    result = {
        "model": args.model or f"{args.arch} (random weights)", "parameters": params, "batch_pairs": args.batch,
        **shape, "steps_per_run": args.steps, "repeats": args.repeats, "threads": args.threads,
        "ms_per_step": median, "step_ms": runs,
        "prefrl_over_trl_precomputed": median["prefrl"] / median["trl_precomputed"],
        "prefrl_over_trl_default": median["prefrl"] / median["trl_default"],
        "claim_prefrl_step_le_trl": median["prefrl"] <= median["trl_precomputed"],
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "cuda": torch.cuda.is_available()},
        "command": "python benchmarks/llm_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "wall_s": time.time() - t_start,
    }
    write_json(Path(args.out), result)
    print(json.dumps({k: result[k] for k in ("ms_per_step", "prefrl_over_trl_precomputed", "prefrl_over_trl_default")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
