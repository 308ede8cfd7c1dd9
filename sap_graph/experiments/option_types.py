r"""The types of options: a check takes an option's name and value and
raises a :class:`ValueError` naming both when the value is not of the
option's type, so that :obj:`{"k": 0}` or :obj:`{"rezero": "false"}` is
an error, not a readout that means something else
(:data:`~sap_graph.experiments.readouts.READOUTS` gives each readout
option its check). :func:`check_fields` runs checks on the fields of a
config dataclass (*e.g.* the sequence examples' configs) and raises a
:class:`~sap_graph.experiments.errors.ConfigError` naming the field.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Mapping

from sap_graph.experiments.errors import ConfigError

Check = Callable[[str, Any], None]


def size(name: str, value: Any) -> None:
    r"""A positive integer (not a boolean, not :obj:`2.0`)."""
    if (isinstance(value, bool) or not isinstance(value, Integral)
            or value < 1):
        raise ValueError(f"'{name}' must be a positive integer "
                         f"(got {value!r})")


#: The widest model: a layer holds width x width weights, 2**30 of them
#: (4 GiB as float32) at this width; wider is a typo, not a model.
MAX_HIDDEN_CHANNELS = 2**15

#: The deepest model (the deepest published GNNs have about 1000 layers);
#: deeper is a typo that would build layers until memory runs out.
MAX_LAYERS = 1024


def size_at_most(high: int, meaning: str) -> Check:
    r"""A positive integer of at most :obj:`high`; :obj:`meaning` says
    what a larger one would be."""
    def bounded_size(name: str, value: Any) -> None:
        size(name, value)
        if value > high:
            raise ValueError(f"'{name}' must be <= {high} (got {value}): "
                             f"{meaning}")
    return bounded_size


#: A layer width (:data:`MAX_HIDDEN_CHANNELS` at most).
width = size_at_most(MAX_HIDDEN_CHANNELS, 'a layer of that width would '
                     'have more than 2**30 weights')
#: A number of layers (:data:`MAX_LAYERS` at most).
depth = size_at_most(MAX_LAYERS, 'deeper than any published GNN')


def seed(name: str, value: Any) -> None:
    r"""A seed: an integer from :math:`0` to :math:`2^{31} - 1`, as
    :class:`~sap_graph.experiments.train.TrainConfig`'s (numpy and
    scikit-learn take :math:`[0, 2^{32})`; k-fold runs add to it)."""
    from sap_graph.experiments.train.config import MAX_SEED
    if (isinstance(value, bool) or not isinstance(value, Integral)
            or not 0 <= value < MAX_SEED):
        raise ValueError(f"'{name}' must be an integer from 0 to "
                         f"{MAX_SEED - 1} (got {value!r})")


def flag(name: str, value: Any) -> None:
    r"""A boolean (JSON :obj:`true`/:obj:`false`, not :obj:`"false"`)."""
    if not isinstance(value, bool):
        raise ValueError(f"'{name}' must be a boolean, true or false "
                         f"(got {value!r})")


#: The largest float32 (``torch.finfo(torch.float32).max``): options
#: become float32 tensors (a larger weight would be inf there, and train
#: to NaN).
FLOAT32_MAX = 3.4028234663852886e38


def _finite(name: str, value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, Real)
            or not math.isfinite(value)):
        raise ValueError(f"'{name}' must be a finite number "
                         f"(got {value!r})")
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"'{name}' must be within float32's range, at "
                         f"most {FLOAT32_MAX:.3g} (got {value!r})")
    return float(value)


def number(name: str, value: Any) -> None:
    r"""A finite number."""
    _finite(name, value)


def positive(name: str, value: Any) -> None:
    r"""A finite number :math:`> 0`."""
    if not _finite(name, value) > 0:
        raise ValueError(f"'{name}' must be positive (got {value!r})")


def probability(name: str, value: Any) -> None:
    r"""A dropout probability in :math:`[0, 1)`."""
    if not 0 <= _finite(name, value) < 1:
        raise ValueError(f"'{name}' must be in [0, 1) (got {value!r})")


def optional(check: Check) -> Check:
    r""":obj:`None` or what :obj:`check` accepts."""
    def optional_check(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)
    return optional_check


def one_of(*choices: Any) -> Check:
    r"""One of :obj:`choices`, of the same type (:obj:`1` is not
    :obj:`True`)."""
    def choice(name: str, value: Any) -> None:
        if not any(type(value) is type(c) and value == c for c in choices):
            raise ValueError(f"'{name}' must be one of "
                             f"{', '.join(map(repr, choices))} "
                             f"(got {value!r})")
    return choice


def check_fields(obj: Any, checks: Mapping[str, Check]) -> None:
    r"""Runs every check of :obj:`checks` (field name to check) on that
    field of :obj:`obj` (a config dataclass), in order.

    Raises:
        ConfigError: For the first invalid field, naming it (the command
            line names its flag).
    """
    for name, check in checks.items():
        try:
            check(name, getattr(obj, name))
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(name, str(e)) from None


__all__ = ['Check', 'check_fields', 'flag', 'number', 'one_of', 'optional',
           'positive', 'probability', 'seed', 'size', 'size_at_most', 'width',
           'depth']
