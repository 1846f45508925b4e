"""Command-line options generated from config dataclasses: one source of truth for every option.

Each field of a config dataclass becomes `--field-name`; the string literal under a field (as in
CleanRL's `Args`) is its `--help` text, and the field's default is the option's default. Integers
accept scientific notation (`--steps 1e6`), booleans get `--flag / --no-flag`, lists take several
values, and dicts take `key=value` pairs whose values are read as JSON where they parse (numbers,
booleans, lists) and as strings otherwise.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import math
import textwrap
import types
import typing
from typing import Any, Union


def parse_int(text: str) -> int:
    """An integer from '300000', '300_000', '3e5' or '1e6'; refuses values with a fraction."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def parse_value(text: str) -> Any:
    """A JSON value where the text parses as one (1e-3, true, [64, 64]), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


def parse_pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    """`key=value` strings to a dict (values through parse_value), naming a malformed item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: expected key=value, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass (empty if the source is unavailable)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                         required: tuple[str, ...] = ()) -> None:
    """One option per field of the dataclass `cls` (but `exclude`); `required` fields must be given."""
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = _unwrap_optional(hints[f.name])
        origin = typing.get_origin(tp)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        # argparse fills help texts in with %: a literal one is %%
        kwargs: dict[str, Any] = {"dest": f.name, "help": docs.get(f.name, "").replace("%", "%%")}
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is list:
            (item,) = typing.get_args(tp)
            kwargs.update(nargs="+", type=parse_int if item is int else item, metavar=item.__name__.upper())
        elif origin is dict:
            kwargs.update(nargs="*", metavar="KEY=VALUE", type=str, default=None)
            kwargs["help"] += " (key=value pairs)"
        else:
            kwargs["type"] = parse_int if tp is int else tp
            if tp is str:
                kwargs["metavar"] = f.name.upper().replace("_", "-") if f.name not in ("env", "out") else f.name.upper()
        parser.add_argument(flag, **kwargs)


def read_config_file(path: str, cls: type) -> dict[str, Any]:
    """Field values of `cls` from a YAML or JSON file (keys as field names, `-` or `_`); refuses unknown keys."""
    import yaml  # JSON is YAML too

    try:
        raw = yaml.safe_load(open(path, encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path}: expected a mapping of option names to values, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    values = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"config file {path}: unknown option(s) {unknown}; expected some of {sorted(known)}")
    return values


def config_from_args(cls: type, args: argparse.Namespace, file_values: dict[str, Any] | None = None,
                     **overrides: Any) -> Any:
    """The dataclass `cls` from parsed options (a config file's values are the parser's defaults, see
    `prefrl.runs.cli`), dict fields merged key by key over the file's, then `overrides`."""
    hints = typing.get_type_hints(cls)
    file_values = file_values or {}
    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if typing.get_origin(_unwrap_optional(hints[f.name])) is dict:
            value = {**(file_values.get(f.name) or {}), **parse_pairs(value, "--" + f.name.replace("_", "-"))}
        values[f.name] = value
    return cls(**{**values, **overrides})
