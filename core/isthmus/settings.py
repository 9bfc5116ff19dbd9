"""Settings: pydantic models filled from environment variables and command-line flags.

Every component describes its settings once, as a ``pydantic_settings.BaseSettings`` model
with a description on each field. ``click_options`` turns that model into click options, so
``--help`` shows the same text, and ``load`` merges the sources with the usual precedence:
flag > environment variable (``ISTHMUS_<COMPONENT>_<FIELD>``) > default. Validation happens
once, here, and a bad value becomes a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import pydantic
from pydantic_settings import BaseSettings, SettingsConfigDict

from isthmus.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)
F = TypeVar("F", bound=Callable[..., Any])


class ComponentSettings(BaseSettings):
    """Common base: unknown environment variables are ignored, unknown fields refused."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    log_level: str = pydantic.Field(
        default="info", description="Log level: debug, info, warning or error."
    )


def _option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _metavar(annotation: object) -> str:
    """What the option takes, as help shows it (pydantic still validates the value)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return "[" + "|".join(str(a) for a in args) + "]"
    if args and typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return _metavar(args[0])
    if args:  # list[X], tuple[X, ...]: given as a comma-separated list
        return f"{_metavar(args[0])},..."
    names: dict[object, str] = {int: "INTEGER", float: "NUMBER", bool: "BOOLEAN", Path: "PATH"}
    return names.get(annotation, "TEXT")


def _shown_default(default: object) -> str:
    if default is None or default in ("", (), []):
        return ""
    if isinstance(default, (list, tuple, frozenset, set)):
        default = ",".join(str(d) for d in default)
    return f" [default: {default}]"


def click_options(model: type[BaseSettings]) -> Callable[[F], F]:
    """Decorator adding one click option per model field (all optional: None = not given)."""

    def decorate(func: F) -> F:
        prefix = str(model.model_config.get("env_prefix", ""))
        for name, info in reversed(list(model.model_fields.items())):
            env = (prefix + name).upper()
            default = info.get_default(call_default_factory=True)
            shown = _shown_default(default)
            help_text = f"{info.description or ''}{shown} (env {env})"
            if info.annotation is bool:
                opt = click.option(
                    f"{_option_name(name)}/--no-{name.replace('_', '-')}",
                    name,
                    default=None,
                    help=help_text,
                )
            else:
                opt = click.option(
                    _option_name(name), name, default=None, help=help_text,
                    metavar=_metavar(info.annotation),
                )
            func = opt(func)
        return func

    return decorate


def load(model: type[S], flags: dict[str, Any]) -> S:
    """Build ``model`` from flags given on the command line plus the environment."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return model(**given)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{_option_name(str(err['loc'][0])) if err['loc'] else 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {model.__name__}: {problems}") from exc
