r"""Attention weights and their figures (see :mod:`.drawing`)."""
from sap_graph.experiments.explain.drawing import *  # noqa: F401,F403
