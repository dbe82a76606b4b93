"""From presets, YAML files and command-line tokens to a validated RunConfig, and back to YAML.

Resolution order (later wins): dataclass defaults < ``--preset`` < ``--config file.yaml`` < CLI
``--key value`` overrides (resolve_config). Keys are addressed as ``section.field``
(``--optim.lr 1e-3``) or, when the field name is unique across sections, as the bare field
(``--lr 1e-3``); dashes and underscores are interchangeable (``--batch-size`` == ``--batch_size``).
Every value is converted to its field's type, or ConfigError names the key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from lcnet_fast.config.presets import PRESETS
from lcnet_fast.config.sections import RunConfig, section_types
from lcnet_fast.errors import ConfigError

__all__ = [
    "apply_overrides",
    "canonical_key",
    "config_from_dict",
    "config_to_dict",
    "load_yaml",
    "merge_config",
    "parse_override_tokens",
    "resolve_config",
    "save_config",
]


# ----------------------------------------------------------------------------- dict <-> dataclass


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def _field_types(section_cls: type) -> dict[str, Any]:
    return get_type_hints(section_cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError naming the key."""
    origin = get_origin(annotation)
    if origin is list:
        (item_type,) = get_args(annotation)
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {key} must be a list, got {value!r}")
        return [_coerce(v, item_type, key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config {key} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config {key} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key} must be an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"config {key} must be an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config {key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key} must be a number, got {value!r}") from None
    if annotation is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config {key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"config {key}: unsupported field type {annotation!r}")


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def _all_keys() -> list[str]:
    return [f"{s}.{f}" for s, cls in section_types().items() for f in _field_types(cls)]


def canonical_key(key: str) -> str:
    """'lr' / 'optim.lr' / 'batch-size' -> 'section.field', or ConfigError."""
    key = key.replace("-", "_")
    full = _all_keys()
    if key in full:
        return key
    matches = [k for k in full if k.split(".", 1)[1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"config key {key!r} is ambiguous; use one of {', '.join(matches)}")
    raise _unknown(key, full + sorted({k.split(".", 1)[1] for k in full}))


def _flatten(overrides: dict, prefix: str = "") -> dict[str, Any]:
    """Nested {'optim': {'lr': 1}} or dotted {'optim.lr': 1} -> {'optim.lr': 1}."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name.replace("-", "_") in section_types():
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply_overrides(cfg: RunConfig, overrides: dict) -> RunConfig:
    """Return a copy of cfg with the (nested or dotted) overrides applied, type-checked."""
    cfg = copy.deepcopy(cfg)
    for key, value in _flatten(overrides).items():
        full = canonical_key(key)
        section, name = full.split(".", 1)
        target = getattr(cfg, section)
        setattr(target, name, _coerce(value, _field_types(type(target))[name], full))
    return cfg


def config_from_dict(data: dict) -> RunConfig:
    """A RunConfig from a (possibly partial) nested dict; unknown keys are errors."""
    return apply_overrides(RunConfig(), data)


# ----------------------------------------------------------------------------- files and CLI


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def save_config(cfg: RunConfig, path: str) -> None:
    """Write the resolved config as YAML, atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config_to_dict(cfg), handle, sort_keys=False)
    os.replace(tmp, path)


def _parse_scalar(text: str) -> Any:
    """CLI text -> YAML scalar ('1e-3' -> 0.001, 'true' -> True); the field type decides after."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_override_tokens(tokens: list[str]) -> dict[str, Any]:
    """['--optim.lr', '1e-3', '--ema', '--k=v'] -> {'optim.lr': 1e-3, 'ema': True, 'k': 'v'}.

    A flag with no value (followed by another --flag or the end) means true, so boolean options
    work as switches (``--skip-bad-images``).
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"expected --key value, got {token!r}")
        key = token[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            out[key] = _parse_scalar(text)
            i += 1
        elif i + 1 < len(tokens) and not (
            tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2
        ):
            out[key] = _parse_scalar(tokens[i + 1])
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def resolve_config(
    preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> RunConfig:
    """defaults < preset < YAML file < overrides. A YAML file may name a preset (`preset: NAME`)."""
    return merge_config(preset, config_file, overrides).validate()


def merge_config(
    preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> RunConfig:
    """The layering of `resolve_config` without the final validation (for callers that change
    values afterwards, e.g. the ablation's rows, and validate then)."""
    file_data = load_yaml(config_file) if config_file else {}
    file_preset = file_data.pop("preset", None)
    chosen = preset or file_preset
    cfg = RunConfig()
    if chosen:
        if chosen not in PRESETS:
            raise ConfigError(
                f"unknown preset {chosen!r}; choose one of {', '.join(sorted(PRESETS))}"
            )
        cfg = apply_overrides(cfg, PRESETS[chosen])
    cfg = apply_overrides(cfg, file_data)
    return apply_overrides(cfg, overrides or {})
