r"""Which readout for my data? :func:`compare` runs readouts side by side
on one dataset under its kind's fair protocol (see
:mod:`~sap_graph.experiments.data.kinds`), chooses the learning rate per
fold/seed on validation, and reports mean ± std, the best readout by
validation, paired sign-flip tests against it, collapsed runs and time
per epoch (:obj:`sap-graph compare`, docs/compare.md).
"""
from sap_graph.experiments.compare.api import (
    DEFAULT_LRS,
    compare,
    write_report,
)
from sap_graph.experiments.compare.engine import Run, RunPlan
from sap_graph.experiments.compare.report import (
    ComparisonResult,
    PairedTest,
    ReadoutRow,
    UnknownReadout,
)
from sap_graph.experiments.compare.stats import sign_flip_test
from sap_graph.experiments.compare.variants import (
    DEFAULT_READOUTS,
    VARIANTS,
    Variant,
    parse_variant,
)

__all__ = [
    'ComparisonResult', 'DEFAULT_LRS', 'DEFAULT_READOUTS', 'PairedTest',
    'RunPlan', 'ReadoutRow', 'Run', 'UnknownReadout', 'VARIANTS', 'Variant',
    'compare', 'parse_variant', 'sign_flip_test', 'write_report',
]
