"""sap_graph: self-attention pooling readouts for PyTorch Geometric."""
from sap_graph.nn import SAPAggregation, sap_pool
from sap_graph.regularizers import (
    attention_entropy,
    aux_loss,
    diversity_penalty,
)

__version__ = '0.2.0'

__all__ = [
    'SAPAggregation',
    'attention_entropy',
    'aux_loss',
    'diversity_penalty',
    'sap_pool',
    '__version__',
]
