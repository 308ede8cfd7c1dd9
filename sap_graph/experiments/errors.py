r"""Errors of the harness, in library terms, and their one-line form.

Library code raises :class:`ConfigError` (or another exception with a
:obj:`field` attribute) naming the offending option by its field name
(:obj:`'epochs'`, :obj:`'state'`, ...); the command line
(:mod:`sap_graph.experiments.cli`) turns the field into its flag and the
error into one :obj:`error: ...` line with exit status 2.
"""
from __future__ import annotations

from typing import Optional


class ConfigError(ValueError):
    r"""Raised for an invalid option; :obj:`field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple:  # Pickled back from worker processes.
        return type(self), (self.field, str(self))


def one_line(error: BaseException, limit: Optional[int] = None) -> str:
    r"""Returns :obj:`error` as one line (whitespace collapsed, the type
    name when the message is empty), cut to :obj:`limit` characters."""
    text = ' '.join(str(error).split()) or type(error).__name__
    if limit is not None and len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


__all__ = ['ConfigError', 'one_line']
