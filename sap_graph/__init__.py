"""sap_graph: self-attention pooling readouts for PyTorch Geometric."""
from sap_graph.aggr import SAPAggregation
from sap_graph.regularizers import (
    attention_entropy,
    aux_loss,
    diversity_penalty,
)

__version__ = '0.1.0'

__all__ = [
    'SAPAggregation',
    'attention_entropy',
    'aux_loss',
    'diversity_penalty',
    '__version__',
]
