import importlib.util
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Batch, Data

from sap_graph.experiments.cli import main
from sap_graph.experiments.data import load_dataset
from sap_graph.experiments.explain import (
    TU_ATOM_SYMBOLS,
    TU_BOND_TYPES,
    atom_symbols_for,
    attention_sharpness,
    attention_statistics,
    attention_weights,
    draw_attention,
    draw_attention_statistics,
    graph_layout,
    head_entropy,
)
from sap_graph.experiments.models import GraphClassifier, load_checkpoint
from sap_graph.experiments.train import TrainConfig, run

PNG = b'\x89PNG\r\n\x1a\n'
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_model(readout='sap', **kwargs):
    torch.manual_seed(0)
    readout_kwargs = {'heads': 3} if readout == 'sap' else {}
    return GraphClassifier(8, 16, 2, num_layers=2, readout=readout,
                           readout_kwargs=readout_kwargs, **kwargs)


@pytest.fixture(scope='module')
def graphs(small_task):
    return [small_task.dataset[i] for i in range(6)]


def molecule():
    """A nitrobenzene in MUTAG's encoding: one-hot atoms (C, N, O, ...)
    and one-hot bonds (aromatic, single, double, triple)."""
    atoms = [0] * 6 + [1, 2, 2]
    bonds = [(i, (i + 1) % 6, 0) for i in range(6)]
    bonds += [(0, 6, 1), (6, 7, 2), (6, 8, 1)]
    src = [a for a, b, _ in bonds] + [b for a, b, _ in bonds]
    dst = [b for a, b, _ in bonds] + [a for a, b, _ in bonds]
    kinds = torch.tensor([k for *_, k in bonds] * 2)
    return Data(x=torch.eye(7)[atoms], edge_index=torch.tensor([src, dst]),
                edge_attr=torch.eye(4)[kinds], y=torch.tensor([1]))


def test_attention_weights_are_aligned_with_the_graphs(graphs):
    model = tiny_model()
    model.train()
    batch = Batch.from_data_list(graphs)
    alphas = attention_weights(model, batch)
    assert model.training  # The mode is restored.
    assert len(alphas) == len(graphs)
    for alpha, data in zip(alphas, graphs, strict=True):
        assert alpha.shape == (data.num_nodes, 3)
        assert torch.allclose(alpha.sum(dim=0), torch.ones(3), atol=1e-5)

    # The same as calling the readout on the node embeddings (index path).
    model.eval()
    with torch.no_grad():
        x = model.node_embeddings(batch.x, batch.edge_index)
        _, ref = model.readout(x, batch.batch, dim_size=len(graphs),
                               return_attention_weights=True)
    for b, alpha in enumerate(alphas):
        assert torch.allclose(alpha, ref[batch.batch == b], atol=1e-6)

    # Reordering the graphs of the batch reorders the outputs.
    perm = [3, 0, 5, 1, 4, 2]
    shuffled = attention_weights(model, [graphs[i] for i in perm])
    for k, i in enumerate(perm):
        assert torch.allclose(shuffled[k], alphas[i], atol=1e-5)

    # A single graph is batched on its own.
    single = attention_weights(model, graphs[2])
    assert len(single) == 1
    assert torch.allclose(single[0], alphas[2], atol=1e-5)


def test_attention_weights_need_a_sap_readout(graphs):
    with pytest.raises(ValueError, match='SAPAggregation'):
        attention_weights(tiny_model('sum'), Batch.from_data_list(graphs))


def test_entropy_bounds():
    n = 5
    uniform = torch.full((n, 2), 1.0 / n)
    assert torch.allclose(head_entropy(uniform),
                          torch.full((2, ), math.log(n)))
    peaked = torch.zeros(n, 1)
    peaked[2] = 1.0
    assert float(head_entropy(peaked)) == 0.0


@pytest.mark.parametrize('name', ['ogbg-molhiv', 'esol.csv', 'x.csv.gz'])
def test_symbols_of_ogb_atom_features(name):
    """OGB molecules and molecules from a CSV share OGB's atom features
    (atomic number - 1 first): the symbols come from RDKit's table."""
    pytest.importorskip('ogb')
    from ogb.utils import smiles2graph
    graph = smiles2graph('CC(=O)N[C@@H](Cl)c1ccccc1')
    data = Data(x=torch.from_numpy(graph['node_feat']))
    assert atom_symbols_for(name, data) == (
        ['C', 'C', 'O', 'N', 'C', 'Cl'] + ['C'] * 6)


def test_molecule_symbols_and_layout():
    data = molecule()
    symbols = atom_symbols_for('MUTAG', data)
    assert symbols == ['C'] * 6 + ['N', 'O', 'O']
    assert TU_ATOM_SYMBOLS['MUTAG'][:3] == ['C', 'N', 'O']
    assert atom_symbols_for('PROTEINS', data) is None
    pos = graph_layout(data, symbols)
    assert pos.shape == (9, 2) and bool((pos == pos).all())
    assert graph_layout(data).shape == (9, 2)  # Spring or circle layout.


def test_draw_attention_writes_pngs(graphs, tmp_path):
    pytest.importorskip('matplotlib')
    data = molecule()
    alpha = torch.softmax(torch.randn(9, 2), dim=0)
    out = draw_attention(data, alpha, str(tmp_path / 'mol.png'),
                         title='nitrobenzene',
                         atom_symbols=atom_symbols_for('MUTAG', data),
                         prediction=1, confidence=0.9,
                         bond_types=TU_BOND_TYPES['MUTAG'])
    assert open(out, 'rb').read(8) == PNG

    model = tiny_model()
    alpha = attention_weights(model, graphs[0])[0]
    out = draw_attention(graphs[0], alpha, str(tmp_path / 'graph.png'))
    assert open(out, 'rb').read(8) == PNG
    with pytest.raises(ValueError, match='nodes'):
        draw_attention(graphs[1], alpha, str(tmp_path / 'bad.png'))


def test_attention_statistics(graphs, tmp_path):
    pytest.importorskip('matplotlib')
    model = tiny_model()
    stats = attention_statistics(model, graphs, batch_size=4)
    assert stats['entropy'].shape == (len(graphs), 3)
    assert stats['num_nodes'].tolist() == [d.num_nodes for d in graphs]
    assert bool((stats['entropy'] <= stats['num_nodes'].float().log()
                 .unsqueeze(1) + 1e-4).all())
    alphas = attention_weights(model, Batch.from_data_list(graphs))
    assert torch.equal(stats['peak'],
                       torch.stack([a.amax(dim=0) for a in alphas]))
    mass, share = stats['type_mass'], stats['type_share']
    for c in range(mass.size(0)):
        if stats['class_counts'][c] > 0:  # Each graph's mass sums to 1.
            assert torch.allclose(mass[c].sum(dim=0), torch.ones(3),
                                  atol=1e-5)
            assert torch.allclose(share[c].sum(), torch.tensor(1.0))
    out = draw_attention_statistics(stats, str(tmp_path / 'stats.png'),
                                    title='synthetic')
    assert open(out, 'rb').read(8) == PNG


def test_attention_sharpness_against_uniform_and_one_node():
    # Head 1 attends uniformly, head 2 to one node; the one-node graph
    # (weight 1 in both heads) is left out.
    sizes = [1, 2, 4, 5]
    alphas = []
    for n in sizes:
        alpha = torch.zeros(n, 2)
        alpha[:, 0] = 1.0 / n
        alpha[n - 1, 1] = 1.0
        alphas.append(alpha)
    stats = {'num_nodes': torch.tensor(sizes),
             'entropy': torch.stack([head_entropy(a) for a in alphas]),
             'peak': torch.stack([a.amax(dim=0) for a in alphas])}
    uniform, one = attention_sharpness(stats)
    assert uniform['graphs'] == one['graphs'] == 3
    assert uniform['nodes'] == pytest.approx(11 / 3)
    assert uniform['attended'] == pytest.approx(11 / 3, rel=1e-5)
    assert uniform['entropy_ratio'] == pytest.approx(1.0, rel=1e-5)
    assert uniform['peak_median'] == pytest.approx(0.25)
    assert uniform['peak_max'] == pytest.approx(0.5)
    assert uniform['uniform_median'] == pytest.approx(0.25)
    assert uniform['sharp_share'] == 0.0
    assert one['attended'] == pytest.approx(1.0)
    assert one['entropy_ratio'] == pytest.approx(0.0)
    assert one['peak_median'] == one['peak_max'] == 1.0
    assert one['sharp_share'] == 1.0


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('explain') / 'sap.pt'
    run(TrainConfig(dataset='synthetic', readout='sap', heads=2,
                    hidden_channels=8, num_layers=2, epochs=1, folds=2,
                    progress=False, verbose=False, checkpoint=str(path)))
    return str(path)


def test_cli_explain(checkpoint, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    out, stats = tmp_path / 'graph.png', tmp_path / 'stats.png'
    code = main(['explain', '--checkpoint', checkpoint, '--index', '3',
                 '--out', str(out), '--stats', str(stats)])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'synthetic graph 3' in printed and 'head 2' in printed
    assert out.read_bytes()[:8] == PNG and stats.read_bytes()[:8] == PNG


def test_cli_explain_errors(checkpoint, tmp_path, capsys):
    out = str(tmp_path / 'graph.png')
    code = main(['explain', '--checkpoint', checkpoint, '--index', '100000',
                 '--out', out])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('error: ') and 'out of range' in err
    assert len(err.strip().splitlines()) == 1
    assert main(['explain', '--checkpoint', str(tmp_path / 'missing.pt'),
                 '--out', out]) == 2
    assert 'not found' in capsys.readouterr().err
    sum_ckpt = str(tmp_path / 'sum.pt')
    run(TrainConfig(dataset='synthetic', readout='sum', hidden_channels=8,
                    num_layers=1, epochs=1, folds=2, progress=False,
                    verbose=False, checkpoint=sum_ckpt))
    assert main(['explain', '--checkpoint', sum_ckpt, '--out', out]) == 2
    assert "readout 'sap'" in capsys.readouterr().err
    assert not osp.exists(out)


@pytest.mark.parametrize('out,stats,message', [
    ('g.png', '/proc/s.png', "image '/proc/s.png' is not writable"),
    ('/proc/a.png', None, "image '/proc/a.png' is not writable"),
    ('file/child.png', None, "is not a folder"),
    ('g.png', 's.txt', "--stats: 's.txt' names no image format"),
    ('g.txt', None, "--out: 'g.txt' names no image format"),
    ('noext', None, "--out: 'noext' names no image format"),
    ('g.png', '', "--stats: '' names no image format"),
    ('g.pgf', None, "--out: 'g.pgf' names no image format"),  # LaTeX.
    ('same.png', 'same.png', "--stats: 'same.png' is also the out image"),
])
def test_cli_explain_refuses_bad_images_before_loading(
        checkpoint, tmp_path, capsys, monkeypatch, out, stats, message):
    """A bad --out or --stats was a traceback (exit 1) after the other
    image was written, or silently wrote another file ('noext.png', the
    stats over the graph): one line, exit 2, nothing loaded or written."""
    import sap_graph.experiments.explain.report as report

    def no_loading(*args, **kwargs):
        raise AssertionError('loaded before the images were checked')

    monkeypatch.setattr(report, '_load', no_loading)
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'file').write_text('')
    argv = ['explain', '--checkpoint', checkpoint, '--out', out]
    assert main(argv + ([] if stats is None else ['--stats', stats])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and message in err and '\n' not in err
    assert sorted(os.listdir(tmp_path)) == ['file']


def test_cli_explain_without_matplotlib_names_the_plot_extra(
        checkpoint, tmp_path):
    # The [train] install has no matplotlib: hide it from a fresh
    # interpreter (a sitecustomize that blocks the import) and run the CLI.
    shim = tmp_path / 'shim'
    shim.mkdir()
    (shim / 'sitecustomize.py').write_text(
        "import sys\nsys.modules['matplotlib'] = None\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), ROOT]),
               OMP_NUM_THREADS='1')
    env.pop('SAP_GRAPH_DEBUG', None)
    blocked = subprocess.run([sys.executable, '-c', 'import matplotlib'],
                             env=env, capture_output=True, text=True)
    assert blocked.returncode != 0  # The shim works.
    out = tmp_path / 'graph.png'
    proc = subprocess.run(
        [sys.executable, '-m', 'sap_graph', 'explain', '--checkpoint',
         checkpoint, '--out', str(out)],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    assert "pip install 'sap-graph[plot]'" in lines[0]
    assert proc.stdout == '' and not out.exists()


def test_attention_sharpness_script(checkpoint, capsys):
    # benchmarks/attention_sharpness.py prints attention_sharpness's rows.
    path = osp.join(ROOT, 'benchmarks', 'attention_sharpness.py')
    spec = importlib.util.spec_from_file_location('attention_sharpness', path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(['--checkpoint', checkpoint])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith('| ') and line[2].isdigit()]
    model = load_checkpoint(checkpoint)
    task = load_dataset('synthetic')
    expected = attention_sharpness(attention_statistics(model, task.dataset))
    assert len(rows) == len(expected) == 2
    for row, r in zip(rows, expected, strict=True):
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] == f"{r['attended']:.1f} of {r['nodes']:.1f}"
        assert float(cells[2]) == pytest.approx(r['entropy_ratio'], abs=1e-3)
        assert float(cells[4]) == pytest.approx(r['peak_max'], abs=1e-3)


def load_example(name):
    path = osp.join(ROOT, 'examples', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'example_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_example_sap_pooling_over_positions():
    example = load_example('cnn_digits')
    torch.manual_seed(0)
    model = example.DigitsCNN('sap', channels=8, heads=2)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert model(x).shape == (4, 10) and torch.isfinite(loss)

    # [B, H * W, C] with dim=-2 and no index: one set per image.
    feats = torch.randn(3, 64, 8)
    out, alpha = model.readout(feats, dim=-2, return_attention_weights=True)
    assert out.shape == (3, 1, 16) and alpha.shape == (3, 64, 2)
    assert torch.allclose(alpha.sum(dim=1), torch.ones(3, 2), atol=1e-5)
    for b in range(3):
        assert torch.allclose(out[b], model.readout(feats[b]), atol=1e-5)
