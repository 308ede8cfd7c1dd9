"""Graphs passed from Python (data.graphs.task_from_graphs): every bad
graph is one DatasetFormatError naming the first offending graph, raised
by compare before any training or output folder; the inputs that worked
before still work, and well-formed graphs are checked without a loop
over the graphs."""
import pytest
import torch
from torch_geometric.data import Data

import sap_graph.experiments.compare.engine as engine
import sap_graph.experiments.data.graphs as graphs_module
from sap_graph.experiments.compare import compare
from sap_graph.experiments.compare.report import diverged
from sap_graph.experiments.data import DatasetFormatError
from sap_graph.experiments.data.graphs import task_from_graphs

TINY = dict(epochs=1, hidden_channels=8, num_layers=1, folds=2,
            batch_size=8)
PATH = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # 3 nodes, 4 edges.
NAN, INF = float('nan'), float('inf')
DROP = object()  # Removes the attribute.


def graphs(n=6, every=None, **changes):
    """n paths of 3 nodes with 4 features and classes 0, 1, 0, ...;
    `every` changes every graph, `g<i>=dict(...)` graph i (DROP
    removes an attribute)."""
    out = []
    for i in range(n):
        data = Data(x=torch.ones(3, 4) * i, edge_index=PATH,
                    y=torch.tensor([i % 2]))
        for key, value in {**(every or {}), **changes.get(f'g{i}', {})
                           }.items():
            if value is DROP:
                delattr(data, key)
            else:
                setattr(data, key, value(i) if callable(value) else value)
        out.append(data)
    return out


def _not_data():
    bad = graphs()
    bad[3] = {'x': torch.ones(3, 4)}
    return bad


G = "Dataset 'graphs': graph"
BAD = {
    # The hostile trial's cases.
    'later graph without x': (
        graphs(g3=dict(x=DROP)),
        f"{G} 3 has no node features 'x' (for graphs without features, "
        f"set x = torch.ones(num_nodes, 1))"),
    'no edge_index': (
        graphs(every=dict(edge_index=DROP)),
        f"{G} 0 has no 'edge_index' (a graph without edges needs an empty "
        f"one: torch.empty(2, 0, dtype=torch.long))"),
    'later graph without edge_index': (
        graphs(g2=dict(edge_index=DROP)),
        f"{G} 2 has no 'edge_index' (a graph without edges needs an empty "
        f"one: torch.empty(2, 0, dtype=torch.long))"),
    'x widths differ': (
        graphs(g4=dict(x=torch.ones(3, 5))),
        f"{G} 4 has 5 node features but graph 0 has 4"),
    '1-D x': (
        graphs(every=dict(x=torch.ones(3))),
        f"{G} 0 has node features 'x' of shape [3]; 'x' must be "
        f"[num_nodes, num_features] (x.view(-1, 1) for one feature per "
        f"node)"),
    '1-D x in a later graph': (
        graphs(g2=dict(x=torch.ones(3))),
        f"{G} 2 has node features 'x' of shape [3]; 'x' must be "
        f"[num_nodes, num_features] (x.view(-1, 1) for one feature per "
        f"node)"),
    '3-D x': (
        graphs(every=dict(x=torch.ones(3, 2, 2))),
        f"{G} 0 has node features 'x' of shape [3, 2, 2]; 'x' must be "
        f"[num_nodes, num_features]"),
    'all-NaN float y': (
        graphs(every=dict(y=torch.tensor([NAN]))),
        "Dataset 'graphs' has no labelled target: 'y' is NaN in every "
        "graph"),
    # The other checks.
    'complex x in a later graph': (
        graphs(g1=dict(x=torch.ones(3, 4, dtype=torch.cfloat))),
        f"{G} 1 has node features 'x' of dtype torch.complex64; node "
        f"features must be real numbers (float, integer or bool)"),
    'NaN x': (
        graphs(g2=dict(x=torch.tensor([[NAN] * 4] + [[0.] * 4] * 2))),
        "Dataset 'graphs' has NaN or infinite node features (1 nodes; "
        "first in graph 2)"),
    'edge to a missing node': (
        graphs(g4=dict(edge_index=torch.tensor([[0], [3]]))),
        f"{G} 4 has an edge [0, 3] to a node that does not exist (it has "
        f"3 nodes)"),
    'negative node index': (
        graphs(g1=dict(edge_index=torch.tensor([[-1], [0]]))),
        f"{G} 1 has an edge [-1, 0] to a node that does not exist (it "
        f"has 3 nodes)"),
    'float edge_index in a later graph': (
        graphs(g5=dict(edge_index=PATH.float())),
        f"{G} 5 has 'edge_index' of dtype torch.float32; it must hold "
        f"integer node indices"),
    'bool edge_index': (
        graphs(every=dict(edge_index=PATH.bool())),
        f"{G} 0 has 'edge_index' of dtype torch.bool; it must hold "
        f"integer node indices"),
    'edge_index of 3 rows': (
        graphs(every=dict(edge_index=torch.zeros(3, 2, dtype=torch.long))),
        f"{G} 0 has 'edge_index' of shape [3, 2]; it must be [2, "
        f"num_edges]"),
    '1-D edge_index': (
        graphs(every=dict(edge_index=torch.zeros(4, dtype=torch.long))),
        f"{G} 0 has 'edge_index' of shape [4]; it must be [2, num_edges]"),
    'y widths differ': (
        graphs(every=dict(y=torch.tensor([[0.5]])),
               g3=dict(y=torch.tensor([[0.5, 1.5]]))),
        f"{G} 3 has label 'y' of shape [1, 2] but graph 0 has [1, 1]; "
        f"every graph needs a label of the same shape"),
    'y lengths differ (would collate misaligned)': (
        graphs(every=dict(y=torch.tensor([0.5, 1.5])),
               g2=dict(y=torch.tensor([0.5, 1.5, 2.5]))),
        f"{G} 2 has label 'y' of shape [3] but graph 0 has [2]; every "
        f"graph needs a label of the same shape"),
    'a target NaN in every graph': (
        graphs(every=dict(y=lambda i: torch.tensor([[i + 0.5, NAN]]))),
        "Dataset 'graphs': target 1 of 'y' has no labelled graph (NaN in "
        "every graph)"),
    'infinite y': (
        graphs(every=dict(y=lambda i: torch.tensor([i + 0.5])),
               g2=dict(y=torch.tensor([INF]))),
        f"{G} 2 has an infinite label ([inf]); labels must be finite (NaN "
        f"marks a missing one)"),
    'negative class': (
        graphs(g1=dict(y=torch.tensor([-1]))),
        f"{G} 1 has label -1; integer labels are the classes 0, 1, 2, ... "
        f"(1 graphs affected)"),
    'two integer labels per graph': (
        graphs(every=dict(y=torch.tensor([[0, 1]]))),
        f"{G} 0 has 2 labels of dtype torch.int64 in 'y'; integer and "
        f"bool labels are one class per graph (a float 'y' holds several "
        f"tasks)"),
    'complex y': (
        graphs(every=dict(y=torch.tensor([1j]))),
        f"{G} 0 has label 'y' of dtype torch.complex64; labels must be "
        f"real numbers (float, integer or bool)"),
    'text y in a later graph': (
        graphs(g2=dict(y='active')),
        f"{G} 2 has label 'y' of type str, not a tensor"),
    'no y': (
        graphs(every=dict(y=DROP)),
        f"{G} 0 has no label 'y'"),
    'later graph without edge_attr': (
        graphs(every=dict(edge_attr=torch.ones(4, 3)),
               g2=dict(edge_attr=DROP)),
        f"{G} 2 has no 'edge_attr' but graph 0 has"),
    'edge_attr widths differ': (
        graphs(every=dict(edge_attr=torch.ones(4, 3)),
               g2=dict(edge_attr=torch.ones(4, 5))),
        f"{G} 2 has 'edge_attr' of shape [4, 5] but graph 0 has [4, 3]"),
    # The fifth hostile trial: shapes that collate but fail in training.
    'num_nodes beyond x': (
        graphs(every=dict(num_nodes=4)),
        f"{G} 0 has num_nodes = 4 but node features 'x' for 3 nodes; 'x' "
        f"needs one row per node"),
    'num_nodes in a later graph only': (
        graphs(g3=dict(num_nodes=5)),
        f"{G} 3 has 'num_nodes' but graph 0 has not; every graph needs the "
        f"same attributes"),
    'edge_attr in later graphs only': (
        graphs(g1=dict(edge_attr=torch.ones(4, 2))),
        f"{G} 1 has 'edge_attr' but graph 0 has not; every graph needs the "
        f"same attributes"),
    'num_nodes short of x in a later graph': (
        graphs(every=dict(num_nodes=3), g4=dict(num_nodes=2)),
        f"{G} 4 has num_nodes = 2 but node features 'x' for 3 nodes; 'x' "
        f"needs one row per node"),
    'edge_attr rows differ from edges': (
        graphs(every=dict(edge_attr=torch.ones(4, 2)),
               g3=dict(edge_attr=torch.ones(5, 2))),
        f"{G} 3 has 'edge_attr' of shape [5, 2] for 4 edges; 'edge_attr' "
        f"needs one row per edge [num_edges, num_edge_features]"),
    'one edge_attr per graph': (
        graphs(every=dict(edge_attr=torch.tensor(1.))),
        f"{G} 0 has 'edge_attr' of shape [] for 4 edges; 'edge_attr' "
        f"needs one row per edge [num_edges, num_edge_features]"),
    'edge_attr not a tensor': (
        graphs(every=dict(edge_attr=['single'] * 4)),
        f"{G} 0 has 'edge_attr' of type list, not a tensor"),
    'not a Data': (
        _not_data(), f"{G} 3 is a dict, not a torch_geometric Data"),
    'one Data': (
        graphs()[0], 'Got one graph (Data); pass a list of graphs or a '
        'dataset'),
    'a generator': (
        (g for g in graphs()),
        'Expected a PyG dataset or a list of Data (got generator)'),
    'no graphs': ([], "Dataset 'graphs' has no graphs"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_graphs_fail_before_training_or_output(case, tmp_path,
                                                   monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError('trained on bad graphs')

    monkeypatch.setattr(engine, 'execute_run', no_training)
    data, message = BAD[case]
    out = tmp_path / 'out'
    with pytest.raises(DatasetFormatError) as error:
        compare(data, ['sum'], out=str(out), lrs=[0.01], progress=False,
                **TINY)
    assert str(error.value) == message
    assert not out.exists()


def _tu(tmp_path):
    from torch_geometric.datasets import TUDataset

    from tests.test_data import write_tu
    write_tu(str(tmp_path), 'TOY')
    return TUDataset(str(tmp_path), 'TOY')


GOOD = {
    # input -> (task type, classes or tasks, first labels, features)
    'int y scalar': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor(i % 2))), ('multiclass', 2, [0, 1], 4)),
    'int y [1, 1]': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor([[i % 3]]))), ('multiclass', 3, [0, 1], 4)),
    'python int y': (lambda _: graphs(every=dict(y=lambda i: i % 2)),
                     ('multiclass', 2, [0, 1], 4)),
    'bool y (classes 0 and 1)': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor([i % 2 == 1]))),
        ('multiclass', 2, [0, 1], 4)),
    'float y scalar': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor(i + 0.5))), ('regression', 1, [0.5, 1.5],
                                              4)),
    'float y [1, 2] with NaN': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor([[i % 2, NAN if i == 1 else 1.]]))),
        ('binary classification', 2, [0.0, 1.0], 4)),
    'float y [2]': (lambda _: graphs(every=dict(
        y=lambda i: torch.tensor([i + 0.5, 1.]))),
        ('regression', 2, [0.5, 1.5], 4)),
    'int, bool and float64 x': (lambda _: graphs(
        g0=dict(x=torch.ones(3, 4, dtype=torch.long)),
        g1=dict(x=torch.ones(3, 4, dtype=torch.bool)),
        g2=dict(x=torch.ones(3, 4, dtype=torch.float64))),
        ('multiclass', 2, [0, 1], 4)),
    'zero nodes, no edges, int32 edges': (lambda _: graphs(
        g0=dict(x=torch.ones(0, 4), edge_index=torch.empty(2, 0).long()),
        g1=dict(edge_index=torch.empty(2, 0).long()),
        g2=dict(edge_index=PATH.int())), ('multiclass', 2, [0, 1], 4)),
    'one graph': (lambda _: graphs(n=1), ('multiclass', 1, [0], 4)),
    'num_nodes as x': (lambda _: graphs(every=dict(num_nodes=3)),
                       ('multiclass', 2, [0, 1], 4)),
    'tuple of Data': (lambda _: tuple(graphs()),
                      ('multiclass', 2, [0, 1], 4)),
    'TUDataset': (lambda tmp: _tu(tmp), ('multiclass', 2, [1, 0], 3)),
    'TUDataset slice': (lambda tmp: _tu(tmp)[1:],
                        ('multiclass', 2, [0, 0], 3)),
}


@pytest.mark.parametrize('case', sorted(GOOD))
def test_good_graphs_make_a_task_without_the_per_graph_loop(case, tmp_path,
                                                            monkeypatch):
    def loop(*args):
        raise AssertionError('looped over well-formed graphs')

    monkeypatch.setattr(graphs_module, '_name_culprit', loop)
    make, (task_type, classes, first, features) = GOOD[case]
    task = task_from_graphs(make(tmp_path))
    assert (task.task_type, task.num_classes) == (task_type, classes)
    assert task.labels[:2].tolist() == first
    assert task.num_features == features
    assert task.dataset._data.x.dtype == torch.float32
    assert task.dataset._data.edge_index.dtype == torch.long


def test_shuffled_tu_dataset_keeps_its_labels(tmp_path):
    dataset = _tu(tmp_path)
    shuffled = dataset.shuffle()
    task = task_from_graphs(shuffled)
    assert task.labels.tolist() == [int(d.y) for d in shuffled]
    assert task.name == 'TUDataset'


def test_bool_labels_train_as_two_classes(tmp_path):
    """The trial's bool y crashed in training ("round_vml_cpu" not
    implemented for 'Bool'); it trains as the classes 0 and 1."""
    data = graphs(n=16, every=dict(y=lambda i: torch.tensor([i % 2 == 1]),
                                   x=lambda i: torch.randn(3, 4) + i % 2))
    res = compare(data, ['sum'], out=str(tmp_path), lrs=[0.01],
                  progress=False, **TINY)
    assert res.metric == 'acc' and len(res.runs) == 2
    assert (tmp_path / 'report.md').exists()


@pytest.mark.parametrize('edge_attr,width', [
    (torch.ones(4), 1), (torch.ones(4, 2, 3, dtype=torch.long), 6)])
def test_edge_attr_is_one_row_per_edge_and_trains_with_gine(
        edge_attr, width, tmp_path):
    """The trial's 1-D edge_attr passed the checks with one edge feature
    but reached GINEConv 1-D ("mat1 and mat2 shapes cannot be
    multiplied"): edge_attr is made [num_edges, num_edge_features]."""
    data = graphs(n=16, every=dict(edge_attr=lambda i: edge_attr * i,
                                   x=lambda i: torch.randn(3, 4) + i % 2))
    task = task_from_graphs(data)
    assert task.num_edge_features == width
    stored = task.dataset._data.edge_attr
    assert stored.shape == (64, width) and stored.dtype == torch.float32
    assert task.dataset[3].edge_attr.tolist() == [[3.] * width] * 4
    res = compare(data, ['sum'], out=str(tmp_path), lrs=[0.01],
                  progress=False, conv='gine', **TINY)
    assert len(res.runs) == 2 and not any(diverged(r) for r in res.runs)


def test_node_counts_are_those_of_the_tasks_graphs(tmp_path):
    """Graphs of different sizes: the statistics that compare reports and
    keys its cache on count the nodes and edges of each graph of the task,
    from a list of Data and from a task whose dataset selects graphs of a
    larger storage (``dataset[indices]``, counted over the whole storage
    before, so two selections of one storage shared a cache key)."""
    from dataclasses import replace

    from sap_graph.experiments.compare.api import prepare

    sizes = [1, 6, 2, 9, 4, 3, 7, 5]
    data = []
    for i, n in enumerate(sizes):
        line = torch.arange(n - 1)
        data.append(Data(x=torch.full((n, 4), float(i)),
                         edge_index=torch.stack([line, line + 1]),
                         y=torch.tensor(i % 2)))
    task = task_from_graphs(data)
    stats = task.stats()
    assert stats['num_nodes'] == sum(sizes) == task.dataset._data.num_nodes
    assert stats['avg_nodes'] == pytest.approx(sum(sizes) / len(sizes))
    assert stats['num_directed_edges'] == sum(sizes) - len(sizes)

    first = [0, 1, 2, 3]
    halves = [replace(task, dataset=task.dataset[keep])
              for keep in (first, [4, 5, 6, 7])]
    for half, keep in zip(halves, (first, [4, 5, 6, 7]), strict=True):
        nodes = sum(sizes[i] for i in keep)
        assert half.stats()['num_nodes'] == nodes
        assert half.stats()['avg_nodes'] == nodes / 4
        ready, _, _ = prepare(half, ['sum'], [0.01], TINY, str(tmp_path))
        assert ready.stats()['num_nodes'] == nodes
        assert [ready.dataset[i].num_nodes for i in range(4)] == [
            sizes[i] for i in keep]
        assert torch.equal(ready.labels, half.labels)
    fingerprints = [engine.task_fingerprint(prepare(
        half, ['sum'], [0.01], TINY, str(tmp_path))[0]) for half in halves]
    assert fingerprints[0] != fingerprints[1]
