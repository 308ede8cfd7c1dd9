r"""Command-line plumbing shared by the :obj:`sap-graph` commands and the
examples: the one-line errors, the parser whose usage errors are one
line, and the flags made from the fields of a dataclass and their help
texts (:func:`add_dataclass_arguments`, :func:`dataclass_from_args`),
*e.g.* of :class:`~sap_graph.experiments.train.TrainConfig`
(:func:`add_config_arguments`, :func:`config_from_args`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from sap_graph.experiments.errors import one_line

#: What to do about an error of a field, in flags.
_HINTS = {'state': ' (continue it with --resume)',
          'resume': ' (pass --state PATH)'}


def _error(e: BaseException, status: int = 2, cls: Any = None) -> int:
    r"""Prints :obj:`e` as one :obj:`error: ...` line; returns
    :obj:`status`. An error that names its option (:obj:`e.field`, *e.g.*
    a :class:`~sap_graph.experiments.errors.ConfigError`) is prefixed with
    the option's flag (:func:`flag_of` the dataclass :obj:`cls`)."""
    text = one_line(e)
    field = getattr(e, 'field', None)
    if field:
        text = f'--{flag_of(field, cls)}: {text}{_HINTS.get(field, "")}'
    print(f'error: {text}', file=sys.stderr)
    return status


def refuse(parser: argparse.ArgumentParser, error: BaseException,
           cls: Any = None) -> NoReturn:
    r"""Exits with :obj:`error` as one :obj:`error: ...` line, status 2,
    prefixed with the flag of its :obj:`field` when it has one (a field of
    the dataclass :obj:`cls`, default
    :class:`~sap_graph.experiments.train.TrainConfig`, else a flag of its
    own name): how the examples refuse a bad flag."""
    parser.exit(_error(error, 2, cls))


class ArgumentParser(argparse.ArgumentParser):
    r"""An :class:`argparse.ArgumentParser` whose usage errors are one
    :obj:`error: ...` line (exit status 2), like every other input
    error of :obj:`sap-graph`."""

    def error(self, message: str) -> 'NoReturn':  # type: ignore[override]
        text = ' '.join(message.split())  # argparse's own, no exception.
        self.exit(2, f'error: {text} (see {self.prog} --help)\n')

    def _get_option_tuples(self, option_string: str) -> list:
        # argparse's abbreviation matches: the two spellings of one flag
        # (--hidden_channels, --hidden-channels) are one match, not an
        # ambiguous abbreviation (each tuple starts with the action).
        unique: Dict[int, Any] = {}
        for match in super()._get_option_tuples(option_string):
            unique.setdefault(id(match[0]), match)
        return list(unique.values())


def _spellings(name: str) -> List[str]:
    flags = [f'--{name}']
    if '_' in name:
        flags.append(f"--{name.replace('_', '-')}")
    return flags


def _add(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    parser.add_argument(*_spellings(name), dest=name, **kwargs)


#: The origins of :obj:`Optional[X]` and :obj:`X | None`.
_UNIONS = (typing.Union, types.UnionType)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'not valid JSON: {e}') from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object')
    return value


# Flags from dataclass fields ##############################################


def _train_config() -> Any:
    from sap_graph.experiments.train.config import TrainConfig
    return TrainConfig


def _flag(f: Any) -> str:
    return f.metadata.get('flag', f.name)


def flag_of(name: str, cls: Any = None) -> str:
    r"""The flag of field :obj:`name` of the dataclass :obj:`cls`
    (default: :class:`TrainConfig`), else :obj:`name`."""
    f = (cls or _train_config()).__dataclass_fields__.get(name)
    return _flag(f) if f is not None else name


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ' '.join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: Any, exclude: Sequence[str] = (),
    only: Optional[Sequence[str]] = None,
    defaults: Optional[Dict[str, Tuple[Any, str]]] = None,
) -> None:
    r"""Adds one flag per field of the dataclass :obj:`cls` (but the
    hidden and :obj:`exclude` ones; with :obj:`only`, just those), typed,
    with the field's help text and default (a scalar default changed by
    :meth:`parser.set_defaults` shows in the help). :obj:`defaults` maps a
    field to another default and how its help shows it, *e.g.*
    :obj:`{'targets': (None, "the checkpoint's")}`.

    A field's :obj:`metadata` may hold :obj:`help` (its help text; the
    default is appended unless the text mentions one), :obj:`flag`
    (another flag name; the value still lands on the field's name),
    :obj:`choices`, :obj:`invert` (a :obj:`True` default switched off
    by the flag) and :obj:`hidden` (no flag). Both spellings of a name
    with underscores parse (:obj:`--hidden_channels`,
    :obj:`--hidden-channels`); a field without a default is a required
    flag.
    """
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        meta = f.metadata
        if (meta.get('hidden') or f.name in exclude
                or (only is not None and f.name not in only)):
            continue
        default = _default(f)
        text = meta.get('help', f.name.replace('_', ' '))
        if defaults and f.name in defaults:
            default, shown = defaults[f.name]
            text = re.sub(r'\s*\(default: [^)]*\)', '', text)
            text = f'{text} (default: {shown})'
        elif default is not MISSING and 'default' not in text:
            shown = _shown(default)
            if meta.get('invert'):
                shown = 'off'  # The flag switches the field's True off.
            elif not isinstance(default, (bool, list, dict)):
                shown = '%(default)s'  # argparse's, after set_defaults.
            text += f' (default: {shown})'
        if meta.get('invert'):
            _add(parser, _flag(f), action='store_true', help=text)
            continue
        kwargs: Dict[str, Any] = {'help': text}
        if default is MISSING:
            kwargs['required'] = True
            default = None
        hint = inner = hints[f.name]
        if typing.get_origin(hint) in _UNIONS:  # Optional[X]: X.
            inner = next(a for a in typing.get_args(hint)
                         if a is not type(None))
        if hint is bool:
            kwargs.update(action='store_true')
        elif typing.get_origin(inner) is list:
            kwargs.update(nargs='+', type=typing.get_args(inner)[0],
                          default=default)
        elif typing.get_origin(inner) is dict:
            kwargs.update(type=_json_dict, default=default)
        else:
            kwargs.update(type=inner, default=default)
        if 'choices' in meta:
            kwargs['choices'] = meta['choices']
        parser.add_argument(*_spellings(_flag(f)), dest=f.name, **kwargs)


def dataclass_from_args(cls: Any, args: argparse.Namespace,
                        **extra: Any) -> Any:
    r"""The dataclass :obj:`cls` of the flags added by
    :func:`add_dataclass_arguments`; fields without a flag keep their
    default, and :obj:`extra` sets further fields."""
    values = {}
    for f in fields(cls):
        if f.metadata.get('invert') and hasattr(args, _flag(f)):
            values[f.name] = not getattr(args, _flag(f))
        elif hasattr(args, f.name) and not f.metadata.get('hidden'):
            values[f.name] = getattr(args, f.name)
    values.update(extra)
    return cls(**values)


def add_config_arguments(
    parser: argparse.ArgumentParser, exclude: Sequence[str] = (),
    only: Optional[Sequence[str]] = None,
    defaults: Optional[Dict[str, Tuple[Any, str]]] = None,
) -> None:
    r"""Adds the flags of the :class:`TrainConfig` fields (but the hidden
    and :obj:`exclude` ones; with :obj:`only`, just those; other
    :obj:`defaults`), see :func:`add_dataclass_arguments`."""
    add_dataclass_arguments(parser, _train_config(), exclude, only, defaults)


def config_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    r"""The :class:`TrainConfig` of flags added by
    :func:`add_config_arguments`; :obj:`extra` sets further fields."""
    return dataclass_from_args(_train_config(), args, **extra)
