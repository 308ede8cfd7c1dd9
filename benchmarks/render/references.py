"""Published results shown beneath the grid's own rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class Reference:
    """A published result row: values as printed in the paper/leaderboard."""
    label: str
    protocol: str
    values: Dict[str, str]


# Published numbers, typed in from /work/shared/ANCHORS.md (which cites the
# papers' tables and the OGB leaderboard). They are references on their
# own protocols, not results of this grid. Keys are our dataset names:
# IMDB-B = IMDB-BINARY, IMDB-M = IMDB-MULTI, RDT-B = REDDIT-BINARY,
# RDT-M5K / RDT-5K = REDDIT-MULTI-5K, D&D = DD, PTC = PTC_MR.
REFERENCES: Tuple[Reference, ...] = (
    Reference(
        label='GIN-0, Xu et al. 2019',
        protocol=('"How Powerful are Graph Neural Networks?", Table 1: '
                  '10-fold CV, one epoch chosen by the best mean accuracy '
                  'over the held-out folds ("best mean validation accuracy '
                  'across folds"), so the same folds select and score the '
                  'model: an optimistic protocol; sum readout on bio, mean '
                  'on social datasets'),
        values={
            'MUTAG': '89.4 ± 5.6', 'PTC_MR': '64.6 ± 7.0',
            'NCI1': '82.7 ± 1.7', 'PROTEINS': '76.2 ± 2.8',
            'COLLAB': '80.2 ± 1.9', 'IMDB-BINARY': '75.1 ± 5.1',
            'IMDB-MULTI': '52.3 ± 2.8', 'REDDIT-BINARY': '92.4 ± 2.5',
            'REDDIT-MULTI-5K': '57.5 ± 1.5',
        }),
    Reference(
        label='GIN, Errica et al. 2020',
        protocol=('"A Fair Comparison of Graph Neural Networks for Graph '
                  'Classification": stratified 10-fold outer CV, model '
                  'selection on an inner validation split, never on the '
                  'test fold (the protocol of this grid); degree features '
                  'on social datasets'),
        values={
            'DD': '75.3 ± 2.9', 'NCI1': '80.0 ± 1.4',
            'PROTEINS': '73.3 ± 4.0', 'ENZYMES': '59.6 ± 4.5',
            'IMDB-BINARY': '71.2 ± 3.9', 'IMDB-MULTI': '48.5 ± 3.3',
            'REDDIT-BINARY': '89.9 ± 1.9', 'REDDIT-MULTI-5K': '56.1 ± 1.7',
            'COLLAB': '75.6 ± 2.3',
        }),
    Reference(
        label='structure-agnostic baseline, Errica et al. 2020',
        protocol=('same fair protocol; a model that ignores the graph '
                  'structure'),
        values={
            'DD': '78.4', 'NCI1': '69.8 ± 2.2', 'PROTEINS': '75.8',
            'ENZYMES': '65.2 ± 6.4', 'IMDB-MULTI': '49.1',
            'REDDIT-MULTI-5K': '52.2 ± 1.5', 'COLLAB': '70.2 ± 1.5',
        }),
    Reference(
        label='GMT, Baek et al. 2021',
        protocol=('"Accurate Learning of Graph Representations with Graph '
                  'Multiset Pooling", their own protocol and runs (TU: '
                  'means only; ogbg-molhiv: official split)'),
        values={
            'MUTAG': '83.44', 'PROTEINS': '75.09',
            'ogbg-molhiv': '77.56 ± 1.25',
        }),
    Reference(
        label='GIN, OGB leaderboard',
        protocol=('OGB reference GNN on the official scaffold split: 10 '
                  'seeds, 5 layers, 300 hidden, mean readout, 100 epochs, '
                  'batch 32, Adam 1e-3, no virtual node'),
        values={'ogbg-molhiv': '75.58 ± 1.40'}),
)
