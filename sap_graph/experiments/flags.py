r"""Command-line plumbing shared by the :obj:`sap-graph` commands: the
one-line errors, the parser whose usage errors are one line, and the
flags made from the fields of
:class:`~sap_graph.experiments.train.TrainConfig` and their help texts
(:func:`add_config_arguments`, :func:`config_from_args`).
"""
from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import MISSING, fields
from typing import Any, Dict, List, NoReturn, Sequence

from sap_graph.experiments.errors import one_line

#: What to do about an error of a field, in flags.
_HINTS = {'state': ' (continue it with --resume)',
          'resume': ' (pass --state PATH)'}


def _error(e: BaseException, status: int = 2) -> int:
    r"""Prints :obj:`e` as one :obj:`error: ...` line; returns
    :obj:`status`. An error that names its option (:obj:`e.field`, *e.g.*
    a :class:`~sap_graph.experiments.errors.ConfigError`) is prefixed with
    the option's flag."""
    text = one_line(e)
    field = getattr(e, 'field', None)
    if field:
        text = f'--{flag_of(field)}: {text}{_HINTS.get(field, "")}'
    print(f'error: {text}', file=sys.stderr)
    return status


class ArgumentParser(argparse.ArgumentParser):
    r"""An :class:`argparse.ArgumentParser` whose usage errors are one
    :obj:`error: ...` line (exit status 2), like every other input
    error of :obj:`sap-graph`."""

    def error(self, message: str) -> 'NoReturn':  # type: ignore[override]
        text = ' '.join(message.split())  # argparse's own, no exception.
        self.exit(2, f'error: {text} (see {self.prog} --help)\n')


def _spellings(name: str) -> List[str]:
    flags = [f'--{name}']
    if '_' in name:
        flags.append(f"--{name.replace('_', '-')}")
    return flags


def _add(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    parser.add_argument(*_spellings(name), dest=name, **kwargs)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'not valid JSON: {e}') from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object')
    return value


# Flags from TrainConfig ###################################################


def _config_fields() -> Any:
    from sap_graph.experiments.train.config import TrainConfig
    return TrainConfig


def _flag(f: Any) -> str:
    return f.metadata.get('flag', f.name)


def flag_of(name: str) -> str:
    r"""The flag of a :class:`TrainConfig` field (else :obj:`name`)."""
    f = _config_fields().__dataclass_fields__.get(name)
    return _flag(f) if f is not None else name


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ' '.join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def add_config_arguments(parser: argparse.ArgumentParser,
                         exclude: Sequence[str] = ()) -> None:
    r"""Adds one flag per :class:`TrainConfig` field (but the hidden and
    :obj:`exclude` ones), typed, with the field's help text and
    default."""
    cls = _config_fields()
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        meta = f.metadata
        if meta.get('hidden') or f.name in exclude:
            continue
        default = (f.default if f.default is not MISSING
                   else f.default_factory())  # type: ignore[misc]
        text = meta['help']
        if 'default' not in text:
            text += f' (default: {_shown(default)})'
        if meta.get('invert'):
            _add(parser, _flag(f), action='store_true', help=text)
            continue
        kwargs: Dict[str, Any] = {'help': text}
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = args[0] if args and typing.get_origin(hint) is not dict \
            else hint
        if hint is bool:
            kwargs.update(action='store_true')
        elif typing.get_origin(inner) is list:
            kwargs.update(nargs='+', type=typing.get_args(inner)[0],
                          default=None)
        elif typing.get_origin(inner) is dict:
            kwargs.update(type=_json_dict, default={})
        else:
            kwargs.update(type=inner, default=default)
        if 'choices' in meta:
            kwargs['choices'] = meta['choices']
        parser.add_argument(*_spellings(_flag(f)), dest=f.name, **kwargs)


def config_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    r"""The :class:`TrainConfig` of flags added by
    :func:`add_config_arguments`; :obj:`extra` sets further fields."""
    cls = _config_fields()
    values = {}
    for f in fields(cls):
        if f.metadata.get('invert') and hasattr(args, _flag(f)):
            values[f.name] = not getattr(args, _flag(f))
        elif hasattr(args, f.name) and not f.metadata.get('hidden'):
            values[f.name] = getattr(args, f.name)
    values.update(extra)
    return cls(**values)


