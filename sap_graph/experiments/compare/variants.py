r"""The readout variants a comparison can run: one table
(:data:`VARIANTS`, name -> training options and display label), and
:func:`parse_variant` for the command-line syntax: a name of the table
(:obj:`sap_rezero`), a registered readout (:obj:`sort`), or a registered
readout with JSON options (:obj:`'sap{"residual": "mean"}'`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Union

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.readouts import READOUTS, UnknownReadoutError


@dataclass(frozen=True)
class Variant:
    r"""One readout of a comparison.

    Args:
        name (str): Its name in tables, files and on the command line.
        readout (str): The registered readout
            (:data:`~sap_graph.experiments.readouts.READOUTS`).
        options (dict): Other :class:`TrainConfig` fields it sets
            (:obj:`heads`, :obj:`concat`, :obj:`readout_kwargs`).
        label (str): What it is, for reports.
    """
    name: str
    readout: str
    options: Dict[str, Any] = field(default_factory=dict)
    label: str = ''

    @property
    def is_sap(self) -> bool:
        return self.readout == 'sap'

    def config(self) -> Dict[str, Any]:
        r"""The :class:`TrainConfig` fields of this variant."""
        return {'readout': self.readout, 'readout_kwargs': {},
                **json.loads(json.dumps(self.options))}


def _v(name: str, readout: str, label: str, **options: Any) -> Variant:
    return Variant(name, readout, options, label)


#: The size-aware candidate (residual mean pooling, log-size scaler).
_LOG: Dict[str, Any] = {'residual': 'mean', 'size_scaler': 'log'}

#: The ReZero candidate (the default's attention gated by a learned gamma).
_REZERO: Dict[str, Any] = {'residual': 'max', 'size_scaler': None,
                           'rezero': True}

#: Every named variant, in report order.
VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    _v('sum', 'sum', 'sum pooling'),
    _v('mean', 'mean', 'mean pooling'),
    _v('max', 'max', 'max pooling'),
    _v('attention', 'attention', "PyG AttentionalAggregation (one gate)"),
    _v('set2set', 'set2set', 'PyG Set2Set (2 steps)'),
    _v('set_transformer', 'set_transformer',
       'PyG SetTransformerAggregation (4 heads)', heads=4),
    _v('gmt', 'gmt', 'PyG GraphMultisetTransformer (4 heads)', heads=4),
    _v('sap', 'sap', 'SAP, the layer default (residual max pooling)'),
    _v('sap_frozen', 'sap',
       'SAP default with its queries frozen at zero: uniform attention, '
       'i.e. the mean of the values + max pooling (control)',
       readout_kwargs={'freeze_queries': True}),
    _v('sap_sharp', 'sap',
       'SAP default with its scores scaled by 10 (temperature 0.1): the '
       'queries move the weights 10 times faster',
       readout_kwargs={'temperature': 0.1}),
    _v('sap_log', 'sap', 'SAP, residual mean pooling, log-size scaler',
       readout_kwargs=dict(_LOG)),
    _v('sap_log_frozen', 'sap',
       'sap_log with its queries frozen at zero: log(1 + n) x the mean of '
       'the values + mean pooling (control)',
       readout_kwargs={**_LOG, 'freeze_queries': True}),
    _v('sap_mean', 'sap', 'SAP, residual mean pooling, no size scaler',
       readout_kwargs={'residual': 'mean', 'size_scaler': None}),
    _v('sap_sum', 'sap', 'SAP, residual sum pooling',
       readout_kwargs={'residual': 'sum', 'size_scaler': None}),
    _v('sap_rezero', 'sap',
       'SAP default with the attention gated by a ReZero gamma',
       readout_kwargs=dict(_REZERO)),
    _v('sap_rezero_frozen', 'sap',
       'sap_rezero with its queries frozen at zero: gamma x the mean of the '
       'values + max pooling (control)',
       readout_kwargs={**_REZERO, 'freeze_queries': True}),
    _v('sap_none', 'sap', 'SAP without residual or size scaler (attention '
       'alone)', readout_kwargs={'residual': None, 'size_scaler': None}),
    _v('sap1', 'sap', 'SAP, one head', heads=1),
)}

#: The frozen-query control of each attention design: the same layer with
#: its queries frozen at zero (uniform weights).
CONTROLS: Dict[str, str] = {'sap': 'sap_frozen', 'sap_sharp': 'sap_frozen',
                            'sap_log': 'sap_log_frozen',
                            'sap_rezero': 'sap_rezero_frozen'}

#: What :obj:`sap-graph compare` runs without :obj:`--readouts`.
DEFAULT_READOUTS = ('sum', 'mean', 'max', 'set2set', 'sap')


def parse_variant(text: str) -> Variant:
    r"""Returns the variant named by :obj:`text` (see the module doc).

    Raises:
        UnknownReadoutError: For a name that is neither a variant nor a
            registered readout.
        ConfigError: For options that are not a JSON object.
    """
    text = text.strip()
    if text in VARIANTS:
        return VARIANTS[text]
    base, brace, rest = text.partition('{')
    base = base.strip()
    if base not in READOUTS:
        raise UnknownReadoutError(
            f"Unknown readout '{text}' (expected one of "
            f"{', '.join(VARIANTS)}, a readout of {', '.join(READOUTS)}, "
            f"or such a readout with JSON options, e.g. "
            f"'sap{{\"residual\": \"mean\"}}')")
    kwargs: Dict[str, Any] = {}
    if brace:
        try:
            kwargs = json.loads(brace + rest)
        except json.JSONDecodeError as e:
            raise ConfigError('readouts', f"options of '{text}' are not "
                              f"valid JSON: {e}") from None
        if not isinstance(kwargs, dict):
            raise ConfigError('readouts', f"options of '{text}' must be a "
                              f"JSON object")
    options: Dict[str, Any] = {}
    for key in ('heads', 'concat'):
        if key in kwargs:
            options[key] = kwargs.pop(key)
    options['readout_kwargs'] = kwargs
    return Variant(text, base, options, text)


def parse_variants(texts: Sequence[Union[str, Variant]]) -> List[Variant]:
    r"""Parses several variants (strings, or :class:`Variant` objects kept
    as they are); names must be distinct."""
    out = [t if isinstance(t, Variant) else parse_variant(t) for t in texts]
    names = [v.name for v in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError('readouts', f"readouts given twice: "
                          f"{', '.join(dup)}")
    if not out:
        raise ConfigError('readouts', 'no readouts to compare')
    return out


__all__ = ['CONTROLS', 'DEFAULT_READOUTS', 'VARIANTS', 'Variant',
           'parse_variant', 'parse_variants']
