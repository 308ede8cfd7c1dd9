r"""The embedded synthetic task: a few signal nodes hidden among
many distractors (no files, no network).
"""
from __future__ import annotations

from typing import (
    Any,
    List,
)

import numpy as np
import torch
from torch_geometric.data import Data

from sap_graph.experiments.data.task import (
    GraphList,
    GraphTask,
)

SYNTHETIC = 'synthetic'


# Synthetic ################################################################


def synthetic_graphs(
    num_graphs: int = 1000,
    num_classes: int = 2,
    num_features: int = 8,
    min_pairs: int = 10,
    max_pairs: int = 30,
    min_signal_pairs: int = 1,
    max_signal_pairs: int = 2,
    shift: float = 3.0,
    noise: float = 0.5,
    seed: int = 0,
) -> List[Data]:
    r"""Generates the embedded synthetic task: a few *signal* nodes hidden
    among many *distractor* nodes; only the signal nodes carry the label.

    Every graph is a set of bonded node pairs (dimers): :math:`n \sim
    U[\text{min_pairs}, \text{max_pairs}]` distractor pairs and
    :math:`k \sim U[\text{min_signal_pairs}, \text{max_signal_pairs}]`
    signal pairs (so 20-60 distractors and 2 or 4 signal nodes by
    default). Node features are:

    * feature 0, a *salience* marker: :math:`b + 1` on signal nodes and
      :math:`b + U[-1, 0]` on distractors, with a per-graph offset
      :math:`b \sim U[-\text{shift}, \text{shift}]`; signal nodes are the
      most salient nodes *of their graph*, but no fixed threshold
      separates them across graphs;
    * features :math:`1, \dots, C`, a node *type*: :math:`+1` in the
      type's feature and :math:`-1` in the others, plus Gaussian
      :obj:`noise`. Signal nodes have the graph's label as type,
      distractors a uniformly random type;
    * the remaining features, standard normal noise.

    Pairs never mix signal and distractor nodes, and every node has degree
    one, so message passing neither leaks the label into distractors nor
    marks signal nodes by their degree. The label is the majority type of
    the few most salient nodes: a softmax attention over each graph's nodes
    selects them directly, whereas sum or mean pooling of per-node features
    can only gate by absolute thresholds and is swamped by the random types
    of the distractors. Deterministic for a given :obj:`seed`; no files.

    Args:
        num_graphs (int, optional): Number of graphs. (default: :obj:`1000`)
        num_classes (int, optional): Number of classes :math:`C`.
            (default: :obj:`2`)
        num_features (int, optional): Node feature width, at least
            :math:`C + 1`. (default: :obj:`8`)
        min_pairs (int, optional): Fewest distractor pairs.
            (default: :obj:`10`)
        max_pairs (int, optional): Most distractor pairs.
            (default: :obj:`30`)
        min_signal_pairs (int, optional): Fewest signal pairs.
            (default: :obj:`1`)
        max_signal_pairs (int, optional): Most signal pairs.
            (default: :obj:`2`)
        shift (float, optional): Range of the per-graph salience offset.
            (default: :obj:`3.0`)
        noise (float, optional): Noise on the type features.
            (default: :obj:`0.5`)
        seed (int, optional): Random seed. (default: :obj:`0`)
    """
    if num_features < num_classes + 1:
        raise ValueError(f"'num_features' must be at least num_classes + 1 "
                         f"= {num_classes + 1} (got {num_features})")
    rng = np.random.default_rng(seed)
    data_list = []
    for i in range(num_graphs):
        label = i % num_classes
        n = 2 * int(rng.integers(min_pairs, max_pairs + 1))
        k = 2 * int(rng.integers(min_signal_pairs, max_signal_pairs + 1))
        x = rng.standard_normal((n + k, num_features)).astype(np.float32)
        offset = rng.uniform(-shift, shift)
        x[:n, 0] = offset + rng.uniform(-1.0, 0.0, n)
        x[n:, 0] = offset + 1.0 + 0.1 * rng.standard_normal(k)
        types = np.concatenate([rng.integers(0, num_classes, n),
                                np.full(k, label)])
        onehot = -np.ones((n + k, num_classes), dtype=np.float32)
        onehot[np.arange(n + k), types] = 1.0
        x[:, 1:1 + num_classes] = (
            onehot + noise * rng.standard_normal((n + k, num_classes)))
        # Pair up the distractors at random and the signal nodes in order,
        # then shuffle the node order.
        pairs = np.concatenate([rng.permutation(n), np.arange(n, n + k)])
        pairs = pairs.reshape(-1, 2).T
        perm = rng.permutation(n + k)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n + k)
        x, pairs = x[perm], inv[pairs]
        edge_index = np.concatenate([pairs, pairs[::-1]], axis=1)
        data_list.append(Data(
            x=torch.from_numpy(np.ascontiguousarray(x)),
            edge_index=torch.from_numpy(edge_index).long(),
            y=torch.tensor([label]),
            num_nodes=n + k,
        ))
    order = rng.permutation(num_graphs)
    return [data_list[i] for i in order]


def load_synthetic(seed: int = 0, **kwargs: Any) -> GraphTask:
    r"""Returns the embedded synthetic task of :func:`synthetic_graphs` as a
    :class:`GraphTask` (no files, no network).

    Args:
        seed (int, optional): Random seed of the generator.
            (default: :obj:`0`)
        **kwargs (optional): Further arguments of :func:`synthetic_graphs`.
    """
    num_classes = kwargs.get('num_classes', 2)
    dataset = GraphList(synthetic_graphs(seed=seed, **kwargs))
    return GraphTask(
        name=SYNTHETIC, dataset=dataset,
        num_features=dataset.num_node_features, num_classes=num_classes,
        num_edge_features=0, kind='synthetic',
        notes=[f'generated in code (seed={seed})'])
