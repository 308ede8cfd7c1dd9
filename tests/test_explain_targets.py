"""`sap-graph explain` on regression and multi-task models and on another
CSV of molecules (sap_graph.experiments.explain.targets and .report):
labels and predictions in the units of the data, per target; statistics
by quantile bins of a regression target; the checkpoint's columns reused.
"""
import math
import shutil

import pytest
import torch
from torch_geometric.data import Batch, Data

from sap_graph.experiments.cli import main
from sap_graph.experiments.explain import attention_statistics
from sap_graph.experiments.explain.targets import (
    format_value,
    graph_label,
    graph_outcomes,
    target_groups,
)
from sap_graph.experiments.models import GraphClassifier

RINGS = ['c1ccccc1', 'c1ccncc1', 'C1CCCCC1', 'C1CCCC1', 'c1ccoc1',
         'c1ccsc1', 'c1cc[nH]c1', 'c1ccc2ccccc2c1', 'c1ccc2[nH]ccc2c1',
         'C1CCNCC1', 'C1CCOCC1', 'c1cnccn1', 'c1ncncn1', 'C1CC1', 'C1CCC1',
         'c1ccc(-c2ccccc2)cc1', 'O=C1CCCCC1', 'c1cn[nH]c1', 'C1CCCCCC1',
         'c1ccc2ncccc2c1']
SMILES = RINGS + [s + 'C' for s in RINGS[:11]] + [s + 'O' for s in RINGS[:9]]


def test_graph_label_keeps_real_values():
    assert graph_label(Data(y=torch.tensor([[-7.87]]))) == pytest.approx(
        -7.87)
    assert graph_label(Data(y=torch.tensor([2361.0]))) == 2361
    assert graph_label(Data(y=torch.tensor([1]))) == 1
    assert graph_label(Data(y=torch.tensor([[math.nan, 1.0]]))) is None
    assert graph_label(Data(x=torch.ones(2, 1))) is None


def test_graph_outcomes_per_task():
    scale = {'mean': [-3.0, 100.0], 'std': [2.0, 10.0]}
    reg = graph_outcomes('regression', torch.tensor([0.5, -1.0]),
                         torch.tensor([[-7.87, math.nan]]), ['logS', 'mw'],
                         scale)
    assert [o['target'] for o in reg] == ['logS', 'mw']
    assert reg[0]['label'] == pytest.approx(-7.87) and reg[1]['label'] is None
    assert reg[0]['prediction'] == pytest.approx(-2.0)  # 0.5 * 2 - 3.
    assert reg[1]['prediction'] == pytest.approx(90.0)
    assert reg[0]['confidence'] is None and not reg[0]['standardised']
    raw = graph_outcomes('regression', torch.tensor([0.5]),
                         torch.tensor([1.5]), ['y'])
    assert raw[0]['prediction'] == 0.5 and raw[0]['standardised']

    binary = graph_outcomes('binary classification',
                            torch.tensor([2.0, -1.0, 0.0]),
                            torch.tensor([[1.0, math.nan, 0.0]]),
                            ['a', 'b', 'c'])
    assert [o['label'] for o in binary] == [1, None, 0]
    assert [o['prediction'] for o in binary] == [1, 0, 0]
    assert binary[0]['probability'] == pytest.approx(1 / (1 + math.exp(-2)))
    assert binary[1]['confidence'] == pytest.approx(1 / (1 + math.exp(-1)))

    (multi, ) = graph_outcomes('multiclass', torch.tensor([0.0, 3.0, 0.0]),
                               torch.tensor([1]), ['class'])
    assert multi['label'] == 1 and multi['prediction'] == 1
    assert multi['confidence'] == pytest.approx(
        float(torch.tensor([0.0, 3.0, 0.0]).softmax(0)[1]))
    assert format_value(-7.869999885559082) == '-7.87'
    assert format_value(123456.7) == '123457' and format_value(None) == \
        'missing'


def test_target_groups_are_quantile_bins():
    values = torch.tensor([-8.0, -5.0, -3.0, -1.0, 0.5, 2.0, math.nan, 4.0])
    group, names = target_groups(values, bins=4)
    assert len(names) == 4 and int(group[6]) == -1
    assert sorted(torch.bincount(group[group >= 0]).tolist()) == [1, 2, 2, 2]
    assert names[0].startswith('-8 to') and names[-1].endswith('to 4')
    # Bins follow the values: lower values, lower bins.
    known = group[group >= 0].tolist()
    assert known == sorted(known)


def regression_graphs(scale=1.0):
    torch.manual_seed(0)
    graphs = []
    for i in range(24):
        n = 3 + i % 5
        graphs.append(Data(x=torch.randn(n, 8),
                           edge_index=torch.tensor([[0, 1], [1, 0]]),
                           y=torch.tensor([[(i - 12) * 0.7 * scale]])))
    return graphs


@pytest.mark.parametrize('scale', [1.0, 300.0])
def test_attention_statistics_of_a_regression_target(scale, tmp_path):
    """Real targets (negative, or whole numbers up to thousands) are put
    in quantile bins, not taken as classes (which dropped the negative
    ones and drew one class per value)."""
    pytest.importorskip('matplotlib')
    from sap_graph.experiments.explain import draw_attention_statistics
    torch.manual_seed(0)
    model = GraphClassifier(8, 16, 1, num_layers=2, readout='sap',
                            readout_kwargs={'heads': 2}).eval()
    graphs = regression_graphs(scale)
    graphs[5].y = torch.tensor([[math.nan]])
    stats = attention_statistics(model, graphs, task_type='regression')
    assert stats['group_by'] == 'quantile' and len(stats['group_names']) == 4
    assert int(stats['class_counts'].sum()) == 23  # All labelled graphs.
    assert stats['type_mass'].shape[0] == 4
    assert stats['label'][0] == pytest.approx(-12 * 0.7 * scale)
    assert math.isnan(stats['label'][5]) and int(stats['group'][5]) == -1
    out = model(*[Batch.from_data_list(graphs)[k]
                  for k in ('x', 'edge_index', 'batch')])
    assert torch.allclose(stats['prediction'], out[:, 0].detach(), atol=1e-5)
    # Float labels not all 0/1 are regression by default.
    assert attention_statistics(model, graphs)['group_by'] == 'quantile'
    draw = draw_attention_statistics(stats, str(tmp_path / 's.png'),
                                     target_name='logS')
    assert open(draw, 'rb').read(4) == b'\x89PNG'


# Through the command line ###################################################


def write_csv(path, header, rows):
    path.write_text(header + '\n' + '\n'.join(rows) + '\n')
    return str(path)


def train(csv, checkpoint, targets, **kwargs):
    from sap_graph.experiments.train import TrainConfig, run
    return run(TrainConfig(
        dataset=csv, targets=targets, epochs=1, readout='sap', heads=2,
        hidden_channels=8, num_layers=1, progress=False, verbose=False,
        checkpoint=str(checkpoint), **kwargs))


@pytest.fixture(scope='module')
def regression(tmp_path_factory):
    pytest.importorskip('rdkit')
    folder = tmp_path_factory.mktemp('regression')
    csv = write_csv(folder / 'mols.csv', 'smiles,y', [
        f'{s},{(i % 13) * 230.0 - 7.87 * (i % 2)}'
        for i, s in enumerate(SMILES)])
    train(csv, folder / 'reg.pt', ['y'], seeds=[0])
    return folder


def predicted(checkpoint, csv, index, targets):
    from sap_graph.experiments.data import load_dataset
    from sap_graph.experiments.models import load_checkpoint
    model = load_checkpoint(checkpoint)
    data = load_dataset(csv, targets=targets).dataset[index]
    batch = Batch.from_data_list([data])
    with torch.no_grad():
        return model(batch.x, batch.edge_index, batch.batch,
                     edge_attr=batch.edge_attr)[0], data


def first_line(capsys):
    return capsys.readouterr().out.splitlines()[0]


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_cli_explain_a_regression_model(regression, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    from sap_graph.experiments.checkpoint import read_checkpoint
    from sap_graph.experiments.data import load_dataset
    from sap_graph.experiments.train import plan_splits
    from sap_graph.experiments.train.config import TrainConfig, resolve_config
    ckpt, csv = str(regression / 'reg.pt'), str(regression / 'mols.csv')
    # The checkpoint keeps the standardisation of its training part.
    state = read_checkpoint(ckpt)
    task = load_dataset(csv, targets=['y'])
    cfg = resolve_config(TrainConfig(dataset=csv, targets=['y'], seeds=[0]),
                         task.kind)
    train_part = plan_splits(task, cfg)[0].index['train']
    y = torch.cat([task.dataset[int(i)].y for i in train_part]).view(-1)
    scale = state['config']['target_scale']
    assert scale['mean'] == [pytest.approx(float(y.double().mean()))]
    assert scale['std'] == [pytest.approx(float(y.double().std(
        unbiased=False)), rel=1e-5)]

    out, stats = tmp_path / 'g.png', tmp_path / 's.png'
    assert main(['explain', '--checkpoint', ckpt, '--index', '3', '--out',
                 str(out), '--stats', str(stats)]) == 0
    line = first_line(capsys)
    output, data = predicted(ckpt, csv, 3, ['y'])
    value = float(output[0]) * scale['std'][0] + scale['mean'][0]
    assert float(data.y) == pytest.approx(682.13)  # 3 * 230 - 7.87.
    assert (f'label 682.1, predicted {format_value(value)};' in line), line
    assert 'p =' not in line and 'standardised' not in line
    assert out.read_bytes()[:4] == stats.read_bytes()[:4] == b'\x89PNG'

    # A checkpoint written before the scale was kept: recomputed from the
    # selected split of the same data, with a warning.
    old = tmp_path / 'old.pt'
    del state['config']['target_scale']
    torch.save(state, old)
    assert main(['explain', '--checkpoint', str(old), '--index', '3',
                 '--out', str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0] == line
    assert printed.err.startswith('warning: ') and 'recomputed' in printed.err
    # ... and on other data it cannot be: standardised units, said so.
    moved = str(shutil.copy(csv, tmp_path / 'moved.csv'))
    assert main(['explain', '--checkpoint', str(old), '--dataset', moved,
                 '--index', '3', '--out', str(out)]) == 0
    printed = capsys.readouterr()
    assert (f'predicted {format_value(float(output[0]))} (standardised '
            f'units)') in printed.out.splitlines()[0]
    assert 'cannot be recomputed' in printed.err


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_cli_explain_another_csv_reuses_the_checkpoint_columns(
        regression, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    ckpt, csv = str(regression / 'reg.pt'), str(regression / 'mols.csv')
    out = str(tmp_path / 'g.png')
    assert main(['explain', '--checkpoint', ckpt, '--index', '3',
                 '--out', out]) == 0
    expected = first_line(capsys).split(':', 1)[1]
    moved = str(shutil.copy(csv, tmp_path / 'moved.csv'))
    assert main(['explain', '--checkpoint', ckpt, '--dataset', moved,
                 '--index', '3', '--out', out]) == 0
    assert first_line(capsys) == f'moved graph 3:{expected}'

    # Other column names: a clear error naming the checkpoint's columns,
    # then --smiles_column and --target choose them.
    renamed = tmp_path / 'renamed.csv'
    renamed.write_text('mol,logS\n' + open(csv).read().split('\n', 1)[1])
    assert main(['explain', '--checkpoint', ckpt, '--dataset', str(renamed),
                 '--out', out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    assert "no SMILES column 'smiles'" in err
    assert "checkpoint's SMILES column 'smiles' and target column(s) 'y'" \
        in err
    assert main(['explain', '--checkpoint', ckpt, '--dataset', str(renamed),
                 '--smiles_column', 'mol', '--target', 'logS', '--index', '3',
                 '--out', out]) == 0
    assert first_line(capsys) == f'renamed graph 3:{expected}'

    # Targets the model does not predict: one line naming --target.
    two = write_csv(tmp_path / 'two.csv', 'smiles,a,b',
                    [f'{s},{i * 1.5},{i}' for i, s in enumerate(SMILES)])
    assert main(['explain', '--checkpoint', ckpt, '--dataset', two,
                 '--target', 'a', 'b', '--out', out]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --target: ') and 'predicts 1 target ' \
        'but two has 2 targets' in err


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_cli_explain_multitask_models(tmp_path, capsys):
    """Several targets, some labels missing: one line per target."""
    pytest.importorskip('rdkit')
    pytest.importorskip('matplotlib')
    rows = [f"{s},{i % 2},{'' if i % 3 == 0 else (i // 2) % 2},{i * 0.25}"
            for i, s in enumerate(SMILES)]
    csv = write_csv(tmp_path / 'tox.csv', 'smiles,t1,t2,r', rows)
    ckpt = tmp_path / 'tox.pt'
    train(csv, ckpt, ['t1', 't2'], folds=2, val_ratio=0.5)
    out, stats = tmp_path / 'g.png', tmp_path / 's.png'
    assert main(['explain', '--checkpoint', str(ckpt), '--index', '3',
                 '--out', str(out), '--stats', str(stats)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'tox graph 3:' in lines[0] and '2 targets (below)' in lines[0]
    output, _ = predicted(str(ckpt), csv, 3, ['t1', 't2'])
    p = torch.sigmoid(output).tolist()
    assert lines[1] == (f'  t1: label 1, predicted {int(p[0] > 0.5)} '
                        f'(p = {max(p[0], 1 - p[0]):.2f})')
    assert lines[2] == (f'  t2: label missing, predicted {int(p[1] > 0.5)} '
                        f'(p = {max(p[1], 1 - p[1]):.2f})')
    assert stats.read_bytes()[:4] == b'\x89PNG'

    # Multi-task regression: real values, the missing one said so.
    rows = [f"{s},{'' if i == 3 else i * -0.5},{i * 40.0 + 100}"
            for i, s in enumerate(SMILES)]
    csv = write_csv(tmp_path / 'reg2.csv', 'smiles,a,b', rows)
    train(csv, tmp_path / 'reg2.pt', ['a', 'b'], seeds=[0])
    assert main(['explain', '--checkpoint', str(tmp_path / 'reg2.pt'),
                 '--index', '3', '--out', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith('  a: label missing, predicted ')
    assert lines[2].startswith('  b: label 220, predicted ')
    assert 'p =' not in lines[1] + lines[2]


@pytest.mark.filterwarnings('ignore:mols. skipped')
def test_cli_explain_from_another_folder_and_other_columns(
        tmp_path, capsys, monkeypatch):
    """A checkpoint trained on a CSV named by a relative path is explained
    from another folder (the file it read); an old checkpoint's scale is
    only recomputed from the columns it was trained on, and the outputs
    keep the trained targets' names."""
    pytest.importorskip('rdkit')
    pytest.importorskip('matplotlib')
    from sap_graph.experiments.checkpoint import read_checkpoint
    data = tmp_path / 'data'
    data.mkdir()
    write_csv(data / 'mols.csv', 'smiles,y,w', [
        f'{s},{(i % 13) * 2.0 - 7.87},{i * 100.0}'
        for i, s in enumerate(SMILES)])
    monkeypatch.chdir(tmp_path)
    train('data/mols.csv', tmp_path / 'reg.pt', ['y'], seeds=[0])
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = str(tmp_path / 'g.png')
    assert main(['explain', '--checkpoint', str(tmp_path / 'reg.pt'),
                 '--index', '3', '--out', out]) == 0
    line = first_line(capsys)
    assert line.startswith('mols graph 3:') and 'label -1.87,' in line, line

    state = read_checkpoint(str(tmp_path / 'reg.pt'))
    del state['config']['target_scale']
    old = tmp_path / 'old.pt'
    torch.save(state, old)
    assert main(['explain', '--checkpoint', str(old), '--target', 'w',
                 '--index', '3', '--out', out]) == 0
    printed = capsys.readouterr()
    assert '(standardised units)' in printed.out.splitlines()[0]
    assert 'cannot be recomputed' in printed.err
    assert 'label 300' in printed.out.splitlines()[0]
