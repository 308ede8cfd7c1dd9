r"""See what the readout attends to: the attention weights of a
:class:`~sap_graph.SAPAggregation` readout, per graph and over a dataset,
and figures of them.

.. code-block:: python

    from torch_geometric.data import Batch
    from sap_graph.experiments.explain import (attention_weights,
                                              atom_symbols_for, draw_attention)
    from sap_graph.experiments.models import load_checkpoint

    model = load_checkpoint('runs/mutag_sap.pt')
    batch = Batch.from_data_list([dataset[0], dataset[1]])
    alphas = attention_weights(model, batch)   # [[n_0, heads], [n_1, heads]]
    draw_attention(dataset[0], alphas[0], 'graph0.png',
                   atom_symbols=atom_symbols_for('MUTAG', dataset[0]))

The weights (:mod:`.weights`) and the labels and predictions of every
target (:mod:`.targets`: classes, binary tasks, regression targets in the
units of the data) need only PyTorch; the drawings
(:mod:`.drawing`) need :obj:`matplotlib` (the :obj:`plot` extra), imported
only when a figure is drawn. :func:`explain_checkpoint` (:mod:`.report`) is
:obj:`sap-graph explain`.
"""
from sap_graph.experiments.explain.drawing import (
    draw_attention,
    graph_layout,
)
from sap_graph.experiments.explain.report import (
    explain_checkpoint,
    load_explained,
)
from sap_graph.experiments.explain.statistics import (
    draw_attention_statistics,
)
from sap_graph.experiments.explain.weights import (
    TU_ATOM_SYMBOLS,
    TU_BOND_TYPES,
    TU_CLASS_NAMES,
    atom_symbols_for,
    attention_sharpness,
    attention_statistics,
    attention_weights,
    default_node_types,
    head_entropy,
)

__all__ = [
    'TU_ATOM_SYMBOLS', 'TU_BOND_TYPES', 'TU_CLASS_NAMES', 'atom_symbols_for',
    'attention_sharpness', 'attention_statistics', 'attention_weights',
    'default_node_types', 'draw_attention', 'draw_attention_statistics',
    'explain_checkpoint', 'graph_layout', 'head_entropy', 'load_explained',
]
