r"""Datasets for graph classification (see :mod:`.tu`)."""
from sap_graph.experiments.data.tu import *  # noqa: F401,F403
from sap_graph.experiments.data.tu import _require_ogb  # noqa: F401
