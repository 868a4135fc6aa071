"""Reading, validating and overriding the configuration (YAML file + environment)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from metrosight.config.model import Settings
from metrosight.core.source import SourceSpec, SourceSyntaxError

ENV_PREFIX = "METROSIGHT__"


class ConfigError(Exception):
    """The configuration could not be read or is invalid; the message names the file and the failing key."""


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested overrides from ``METROSIGHT__SECTION__KEY=value`` variables (values parsed as YAML scalars)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if keys:
            _set_path(tree, keys, yaml.safe_load(raw) if raw != "" else None)
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _strings(value: object, out: set[str]) -> None:
    """Every string in ``value``: itself, or the keys and values of its mappings and lists, recursively."""
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, out)


def _address_redactor(items: list[Any]) -> Callable[[str], str]:
    """A function that takes out of a message every camera address found in the failing inputs, wherever in the
    file it was written (a misspelt key, a list of bare addresses, an address used as a key or an id): a
    readable one as its shown form (credentials removed), one that cannot be read not at all."""
    strings: set[str] = set()
    for item in items:
        _strings(item.get("input"), strings)
        _strings(list(item["loc"]), strings)
    specs: list[SourceSpec] = []
    hidden: set[str] = set()
    for text in strings:
        try:
            spec = SourceSpec.parse(text)
        except SourceSyntaxError:
            if text.strip():
                hidden |= {text, repr(text)[1:-1]}
            continue
        if spec.is_network:
            specs.append(spec)

    def redact(line: str) -> str:
        for text in sorted(hidden, key=len, reverse=True):
            line = line.replace(text, "(address not shown)")
        for spec in sorted(specs, key=lambda s: len(s.target), reverse=True):
            line = spec.redact(line)
        return line

    return redact


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One line per failing key: ``source: key.path: message (got value)``. A camera address, wherever it stands
    in the file, is shown without its credentials."""
    lines = []
    items = err.errors()
    redact = _address_redactor(items)
    for item in items:
        key = ".".join(str(p) for p in item["loc"]) or "(root)"
        got = item.get("input")
        # a camera address may carry credentials; a secret (auth.oidc.client_secret) is never echoed
        secret = any(str(p) == "source" or "secret" in str(p) for p in item["loc"])
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) and not secret else ""
        lines.append(redact(f"{source}: {key}: {item['msg']}{shown}"))
    return "\n".join(lines)


def _hide_addresses(text: str) -> str:
    """``text`` with every quoted piece that could be (part of) a camera address replaced: PyYAML quotes tags,
    aliases and keys from the file (``could not determine a constructor for the tag '!rtsp://admin:pw@…'``)."""
    return re.sub(
        r"'([^']*)'",
        lambda m: (
            "(address not shown)" if len(m.group(1)) > 2 and any(c in m.group(1) for c in ":@/?=%") else m.group(0)
        ),
        text,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with a YAML text and where (line, column), without the snippet of the text PyYAML quotes
    and without any address it quotes in the problem itself."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{_hide_addresses(exc.problem or exc.context or 'syntax error')}{where}"
    return type(exc).__name__


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it would silently keep the last: a
    camera with two ``source:`` lines would run the second)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML says so below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (YAML; optional) and the environment.

    Raises:
        ConfigError: the file is missing, is not YAML, is not a mapping, or a key is unknown or invalid.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc}") from None
        try:
            loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:  # said without the quoted snippet, which may hold a camera's password
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    data = _merge(data, env_overrides(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
