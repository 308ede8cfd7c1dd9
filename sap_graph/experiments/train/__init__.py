r"""Training and evaluation protocols (see :mod:`.protocols`)."""
from sap_graph.experiments.train.protocols import *  # noqa: F401,F403
