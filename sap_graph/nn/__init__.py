"""The layer: :class:`SAPAggregation` and its functional form."""
from sap_graph.nn.aggr import SAPAggregation
from sap_graph.nn.functional import sap_pool

__all__ = ['SAPAggregation', 'sap_pool']
