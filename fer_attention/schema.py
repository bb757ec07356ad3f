"""What the structured configs share, below every layer: :class:`Choice`, the str Enum of every choice field;
the LBP methods (:mod:`fer_attention.lbp` implements them but imports torch, which no schema may: the config
layer reads the schemas without it); and :func:`check_fields`, a mapping checked against a schema in one line.

A choice field typed by a :class:`Choice` lets Hydra reject a bad value while it composes the config, naming
the full key and the allowed values. Each member's name is its value, so the composed config, checkpoints'
hyperparameters and metrics.json hold the same plain strings as before the fields were Enums.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Mapping
from typing import Any

__all__ = ["Choice", "LBPMethod", "check_fields", "schema_message"]


class Choice(enum.StrEnum):
    """A choice field's allowed values (a member equals its value, ``Fusion.add == "add"``)."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The allowed values in order, aliases left out."""
        return tuple(member.value for member in cls)


class LBPMethod(Choice):
    """``lbp.method``: the LBP variants of :func:`fer_attention.lbp.local_binary_pattern`."""

    basic = "basic"
    circle = "circle"
    ror = "ror"
    uniform = "uniform"
    nri_uniform = "nri_uniform"
    var = "var"
    # scikit-image's name of the circular LBP, which the configs used too: checkpoints that record it load
    default = "circle"


def _field_type(kind: Any, name: str) -> Any:
    """The type of field ``name`` of the dataclass ``kind`` (``X | None`` as ``X``), or None."""
    if not dataclasses.is_dataclass(kind):
        return None
    hint = typing.get_type_hints(kind).get(name)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def schema_message(err: Exception, key: str = "") -> str:
    """An OmegaConf error about a schema as one line naming the key (``key`` + the error's full key): for a
    :class:`Choice` field ``<key>='bogus' is not one of a, b``, else ``<key>=<value>: <OmegaConf's reason>``."""
    full_key = str(getattr(err, "full_key", None) or "")
    name = ".".join(part for part in (key, full_key) if part)
    value = getattr(err, "value", None)
    kind = _field_type(getattr(err, "object_type", None), full_key.rsplit(".", 1)[-1])
    if isinstance(kind, type) and issubclass(kind, Choice):
        return f"{name}={value!r} is not one of {', '.join(kind.values())}"
    reason = str(getattr(err, "msg", None) or err).splitlines()[0].strip()
    return f"{name}={value!r}: {reason}" if value is not None else f"{name}: {reason}"


def check_fields(kind: type, values: Mapping[str, Any], key: str) -> None:
    """Raise ValueError with one line naming ``<key>.<field>`` (:func:`schema_message`) unless ``values`` fit
    the dataclass ``kind``: the types and choices its fields declare, and no key it lacks. Checks only; the
    caller keeps ``values`` as given."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.merge(OmegaConf.structured(kind), dict(values))
    except OmegaConfBaseException as err:
        raise ValueError(schema_message(err, key)) from None
