"""sap_graph: self-attention pooling readouts for PyTorch Geometric."""
from sap_graph.aggr import SAPAggregation

__version__ = '0.1.0'

__all__ = ['SAPAggregation', '__version__']
