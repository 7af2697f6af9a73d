"""Typed, read-only configuration: built-in defaults < environment < YAML file < command line.

Every stage declares its settings as a frozen dataclass registered with ``@section("name")``.
A YAML file holds the top-level paths and one mapping per section::

    data_root: /datasets/BAH            # the release folder (Videos/, split/, ...)
    out: /scratch/bah-out               # every output of the pipeline goes under here
    faces: {size: 128, detector: hog}

Paths come from flags, the file or the environment (``BAH_DATA_ROOT``, ``BAH_OUT``); never
from host names. The resolved configuration is written next to the outputs it produced.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import yaml

from bah.core.files import read_yaml, write_yaml
from bah.core.registry import Registry

SECTIONS: Registry = Registry("config section")

ENV_DATA_ROOT = "BAH_DATA_ROOT"
ENV_OUT = "BAH_OUT"


class ConfigError(ValueError):
    """A configuration value or file that cannot be used; the message names it."""


def section(name: str):
    """Register a frozen dataclass as the settings of one stage (``cfg[name]``)."""

    def deco(cls):
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"config section {name!r} must be a dataclass")
        SECTIONS.register(name, cls)
        return cls

    return deco


@dataclass(frozen=True)
class Config:
    data_root: Optional[Path]
    out: Path
    sections: Mapping[str, Any] = field(default_factory=dict)
    source: Optional[Path] = None

    def __getitem__(self, name: str) -> Any:
        try:
            return self.sections[name]
        except KeyError:
            raise KeyError(f"config section {name!r} was not loaded; loaded: {sorted(self.sections)}") from None

    def require_data_root(self) -> Path:
        if self.data_root is None:
            raise ConfigError(
                f"no dataset folder: pass --data-root DIR, set data_root in the config file "
                f"or the environment variable {ENV_DATA_ROOT}"
            )
        if not self.data_root.is_dir():
            raise ConfigError(f"dataset folder does not exist: {self.data_root}")
        return self.data_root

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "data_root": str(self.data_root) if self.data_root else None,
            "out": str(self.out),
        }
        for name, sec in self.sections.items():
            d[name] = _plain(dataclasses.asdict(sec))
        return d

    def save(self, path: os.PathLike) -> None:
        write_yaml(path, self.to_dict())


def load_config(
    path: Optional[os.PathLike] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    sections: Iterable[str] = (),
    env: Optional[Mapping[str, str]] = None,
) -> Config:
    """Build the read-only configuration.

    ``overrides`` maps dotted keys (``"out"``, ``"faces.size"``) to values; ``None`` values
    are ignored so argparse defaults of ``None`` mean "not given".
    """
    env = os.environ if env is None else env
    raw: Dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path, ConfigError, what="config file")
    merged: Dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        parts = key.split(".")
        node = merged
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
        node[parts[-1]] = value

    where = f" in {path}" if path else ""
    data_root = merged.pop("data_root", None) or env.get(ENV_DATA_ROOT) or None
    out = merged.pop("out", None) or env.get(ENV_OUT) or "bah-out"
    built: Dict[str, Any] = {}
    for name in sections:
        cls = SECTIONS.get(name)
        values = merged.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"section {name!r}{where} must be a mapping")
        built[name] = _build(cls, values, f"{name}{where}")
    return Config(
        data_root=_path(data_root) if data_root else None,
        out=_path(out),
        sections=types.MappingProxyType(built),
        source=Path(path) if path else None,
    )


def parse_set(items: Sequence[str]) -> Dict[str, Any]:
    """Turn ``["faces.size=128", "faces.detector=cnn"]`` into overrides (values parsed as YAML)."""
    out: Dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _path(p: Any) -> Path:
    return Path(os.path.expanduser(str(p))).absolute()


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} for {where}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints.get(k), f"{where}: {k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where) if len(non_none) == 1 else value
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return hint(value)
        if hint is Path:
            return _path(value)
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            inner = args[0] if args else None
            return tuple(_coerce(v, inner, where) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: cannot use {value!r} as {getattr(hint, '__name__', hint)}") from None
    return value


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_from_args(args, sections=(), overrides=None):
    """The one place a subcommand turns its parsed flags into the read-only Config."""
    ov = {"data_root": getattr(args, "data_root", None), "out": getattr(args, "out", None)}
    ov.update(overrides or {})
    given = parse_set(getattr(args, "set", []))
    for key in given:
        # a --set for a section this command does not read would be dropped without a word
        head = key.split(".", 1)[0]
        if key not in ("data_root", "out") and ("." not in key or head not in sections):
            allowed = ", ".join(f"{s}.KEY" for s in sections) or "no section"
            raise ConfigError(f"--set {key}: unknown section {head!r} for this command "
                              f"(it reads {allowed}, data_root, out)")
    ov.update(given)
    return load_config(getattr(args, "config", None), ov, sections=sections)
