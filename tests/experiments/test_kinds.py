"""The dataset-kind registry: names go to their kind, and the per-kind
defaults documented in docs/training.md are those of the code."""
import os.path as osp

import pytest

from sap_graph.experiments.data.kinds import KINDS, kind_of
from sap_graph.experiments.train import TrainConfig, resolve_config

DOCS = osp.join(osp.dirname(__file__), '..', '..', 'docs', 'training.md')


@pytest.mark.parametrize('name,kind', [
    ('synthetic', 'synthetic'), ('SYNTHETIC', 'synthetic'),
    ('ogbg-molhiv', 'ogb'), ('data/x.csv', 'molecules'),
    ('x.CSV.gz', 'molecules'), ('MUTAG', 'tu'), ('IMDB-BINARY', 'tu'),
])
def test_names_go_to_their_kind(name, kind):
    assert kind_of(name).name == kind


def _documented():
    lines = open(DOCS).read().split('<!-- kind-defaults -->')[1]
    rows = []
    for line in lines.strip().splitlines():
        if not line.startswith('|'):
            break
        rows.append(line)
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    for line in rows[2:]:
        yield dict(zip(header, (c.strip() for c in line.strip('|')
                                .split('|')), strict=True))


def test_documented_defaults_are_the_registry():
    documented = list(_documented())
    assert [d['kind'] for d in documented] == list(KINDS)
    for row in documented:
        cfg = resolve_config(TrainConfig(), row['kind'])
        for key, text in row.items():
            if key == 'kind':
                continue
            value = getattr(cfg, key)
            if key == 'seeds':
                want = (None if text == '-' else
                        [int(t) for t in text.split()])
                assert (value if key in KINDS[row['kind']].defaults
                        else None) == want, (row['kind'], key)
            elif text == '-':
                assert value is None, (row['kind'], key)
            else:
                assert str(value) == text, (row['kind'], key)


RINGS = ['c1ccccc1', 'c1ccncc1', 'C1CCCCC1', 'C1CCCC1', 'c1ccoc1',
         'c1ccsc1', 'c1cc[nH]c1', 'c1ccc2ccccc2c1', 'c1ccc2[nH]ccc2c1',
         'C1CCNCC1', 'C1CCOCC1', 'c1cnccn1', 'c1ncncn1', 'C1CC1', 'C1CCC1',
         'c1ccc(-c2ccccc2)cc1', 'O=C1CCCCC1', 'c1cn[nH]c1', 'C1CCCCCC1',
         'c1ccc2ncccc2c1']


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_train_on_a_csv_of_molecules(tmp_path):
    """`train` takes a CSV: scaffold split per seed, RMSE in data units."""
    from sap_graph.experiments.train import run
    rows = [f'{s}{tail},{i * 0.5 - 3}' for i, (s, tail) in enumerate(
        (s, t) for t in ('', 'C') for s in RINGS)]
    path = tmp_path / 'mols.csv'
    path.write_text('smiles,logS\n' + '\n'.join(rows) + '\n')
    result = run(TrainConfig(
        dataset=str(path), targets=['logS'], epochs=1, seeds=[0, 1],
        hidden_channels=8, num_layers=1, progress=False, verbose=False))
    assert result['protocol'] == 'scaffold_split_per_seed'
    assert result['metric'] == 'rmse' and len(result['seeds']) == 2
    # Methylated pyrazine and triazine N (lines 33, 34) are invalid.
    assert 'skipped 2 invalid SMILES (lines 33, 34)' in ' '.join(
        result['dataset']['notes'])
    for record in result['seeds']:
        assert record['train_size'] + record['val_size'] + \
            record['test_size'] == 38
        # An RMSE in the units of the targets (spread 0..19.5), not of the
        # standardised ones the model is trained on.
        assert record['test_rmse'] > 0.5


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_explain_a_model_trained_on_a_csv(tmp_path):
    """The checkpoint of a CSV run names its SMILES and target columns
    and its metric, so explaining it reloads the same molecules, scored
    the same way, without asking again."""
    from sap_graph.experiments.explain import (
        attention_statistics,
        load_explained,
    )
    from sap_graph.experiments.train import run
    rows = [f'{s},{i * 0.5 - 3},{i}' for i, s in enumerate(RINGS)]
    path = tmp_path / 'mols.csv'
    path.write_text('mol,logS,other\n' + '\n'.join(rows) + '\n')
    run(TrainConfig(
        dataset=str(path), smiles_column='mol', targets=['logS'], epochs=1,
        seeds=[0], readout='sap', hidden_channels=8, num_layers=1,
        metric='mae', progress=False, verbose=False,
        checkpoint=str(tmp_path / 'm.pt')))
    model, task = load_explained(str(tmp_path / 'm.pt'))
    assert len(task.dataset) == 20 and task.metric == 'mae'
    assert task.dataset.smiles[3] == 'C1CCCC1'
    stats = attention_statistics(model, task.dataset)
    assert stats['entropy'].shape[0] == 20


def test_a_last_batch_of_one_atom_does_not_stop_training(tmp_path):
    """33 training molecules in batches of 32 leave a last batch of one
    graph; a one-atom molecule there has one node, on which batch
    normalisation cannot train: that batch is skipped."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    from sap_graph.experiments.data.graphs import task_from_graphs
    from sap_graph.experiments.models import GraphClassifier
    from sap_graph.experiments.train import train_epoch
    graphs = [Data(x=torch.randn(n, 3), edge_index=torch.empty(2, 0).long(),
                   y=torch.tensor([i % 2])) for i, n in
              enumerate([3] * 32 + [1])]
    task = task_from_graphs(graphs)
    model = GraphClassifier(3, 8, 2, num_layers=1, readout='sum')
    loader = DataLoader(list(task.dataset), batch_size=32)
    opt = torch.optim.Adam(model.parameters())
    loss = train_epoch(model, loader, opt, torch.device('cpu'))
    assert loss > 0
