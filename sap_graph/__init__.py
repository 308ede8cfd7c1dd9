"""sap_graph: self-attention pooling readouts for PyTorch Geometric."""
from sap_graph.nn import SAPAggregation, sap_pool
from sap_graph.regularizers import (
    attention_entropy,
    diversity_penalty,
)

__version__ = '0.4.0'

__all__ = [
    'SAPAggregation',
    'attention_entropy',
    'diversity_penalty',
    'sap_pool',
    '__version__',
]


def __getattr__(name: str):
    if name == 'aux_loss':
        raise AttributeError(
            "sap_graph.aux_loss was removed in 0.3 (SAPAggregation keeps no "
            "auxiliary loss): add weight * sap_graph.diversity_penalty("
            "alpha, index) or sap_graph.attention_entropy(alpha, index) of "
            "the weights that aggr(..., return_attention_weights=True) "
            "returns to the loss")
    raise AttributeError(f"module 'sap_graph' has no attribute '{name}'")
