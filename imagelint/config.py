"""Configuration: ``.imagelint.yaml`` or ``[tool.imagelint]`` in pyproject.toml.

Found by walking up from the working directory (first hit wins) unless
``--config`` names a file. Unknown keys are errors that name the key.
"""
from __future__ import annotations

import os

from .rules import SEVERITIES
from .yamlcache import YamlFileError, load_yaml_cached

__all__ = ["Config", "ConfigError", "load_config", "find_config"]

CONFIG_NAMES = (".imagelint.yaml", ".imagelint.yml")
FAIL_LEVELS = SEVERITIES + ("none",)
FORMATS = ("tty", "json", "sarif", "github", "checkstyle")


class ConfigError(ValueError):
    """Invalid configuration; the message names the file and key."""


class Config:
    """Effective settings. CLI flags are applied on top with :meth:`override`."""

    KEYS = {
        "fail-on": "severity at or above which `lint` exits 1 (error|warning|info|style|none)",
        "format": "output format (tty|json|sarif|github|checkstyle)",
        "select": "only these rules (ids or names)",
        "ignore": "never these rules (ids or names)",
        "rules": "per rule: a severity, 'off', or a mapping of severity and options",
        "rules-dirs": "extra rule directories (relative to the config file)",
        "trusted-registries": "registries base images may come from (globs, e.g. '*.gcr.io')",
        "allowed-base-images": "base images allowed (globs, e.g. 'python:3.12-slim*')",
        "thresholds": "rule options by name for every rule that has them (e.g. max-layers: 30)",
        "disable-ignore-pragma": "ignore inline '# imagelint ignore=' / '# hadolint ignore=' comments",
        "no-color": "never colour tty output",
        "inspect": "settings of `imagelint inspect` (size gates and image rules)",
        "measure": "settings of `imagelint measure` (Fargate parameters)",
    }

    def __init__(self):
        self.source = None  # path of the file it came from
        self.base_dir = os.getcwd()
        self.fail_on = "info"
        self.format = "tty"
        self.select: list = []
        self.ignore: list = []
        self.rules: dict = {}  # id or name → {"severity": ..., options...} or {"off": True}
        self.rules_dirs: list = []
        self.trusted_registries: list = []
        self.allowed_base_images: list = []
        self.thresholds: dict = {}
        self.disable_ignore_pragma = False
        self.no_color = False
        self.inspect: dict = {}
        self.measure: dict = {}

    @classmethod
    def from_mapping(cls, data, source: str) -> "Config":
        cfg = cls()
        cfg.source = source
        cfg.base_dir = os.path.dirname(os.path.abspath(source))
        if data is None:
            return cfg
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the configuration must be a mapping of keys")
        for key, value in data.items():
            if key not in cls.KEYS:
                raise ConfigError(f"{source}: unknown key {key!r} (known: {', '.join(cls.KEYS)})")
            where = f"{source}: {key}"
            if key == "fail-on":
                cfg.fail_on = _choice(value, FAIL_LEVELS, where)
            elif key == "format":
                cfg.format = _choice(value, FORMATS, where)
            elif key in ("select", "ignore", "trusted-registries", "allowed-base-images"):
                setattr(cfg, key.replace("-", "_"), _str_list(value, where))
            elif key == "rules-dirs":
                cfg.rules_dirs = [os.path.join(cfg.base_dir, p) for p in _str_list(value, where)]
            elif key == "rules":
                cfg.rules = _rule_settings(value, where)
            elif key == "thresholds":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: expected a mapping of option: value")
                cfg.thresholds = dict(value)
            elif key in ("disable-ignore-pragma", "no-color"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{where}: expected true or false, got {value!r}")
                setattr(cfg, key.replace("-", "_"), value)
            elif key in ("inspect", "measure"):
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: expected a mapping")
                setattr(cfg, key, dict(value))
        return cfg


def _choice(value, allowed, where):
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value.lower()


def _str_list(value, where) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: expected a list of strings")


def _rule_settings(value, where) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of rule id or name to settings")
    out = {}
    for rule, setting in value.items():
        w = f"{where}.{rule}"
        if setting is False or (isinstance(setting, str) and setting.lower() == "off"):
            out[str(rule)] = {"off": True}
        elif isinstance(setting, str):
            out[str(rule)] = {"severity": _choice(setting, SEVERITIES, w)}
        elif isinstance(setting, dict):
            s = dict(setting)
            if "severity" in s:
                sev = s["severity"]
                if sev is False or (isinstance(sev, str) and sev.lower() == "off"):  # YAML reads off as false
                    s = {"off": True}
                else:
                    s["severity"] = _choice(sev, SEVERITIES, f"{w}.severity")
            out[str(rule)] = s
        else:
            raise ConfigError(f"{w}: expected a severity, 'off', or a mapping")
    return out


def find_config(start: str = None):
    """Nearest ``.imagelint.yaml``/``.yml`` or pyproject.toml with [tool.imagelint], or None."""
    d = os.path.abspath(start or os.getcwd())
    while True:
        for name in CONFIG_NAMES:
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
        pp = os.path.join(d, "pyproject.toml")
        if os.path.isfile(pp):
            try:
                with open(pp, "rb") as f:
                    if b"[tool.imagelint" in f.read():
                        return pp
            except OSError:
                pass
        if os.path.isdir(os.path.join(d, ".git")):
            return None
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def load_config(path: str = None, search: bool = True) -> Config:
    """Load ``path`` (or the discovered file); defaults when there is none."""
    if path is None and search:
        path = find_config()
    if path is None:
        return Config()
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    if os.path.basename(path) == "pyproject.toml":
        try:
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
        return Config.from_mapping(data.get("tool", {}).get("imagelint"), path)
    try:
        data = load_yaml_cached([path])[0]
    except YamlFileError as e:
        raise ConfigError(str(e)) from None
    return Config.from_mapping(data, path)
