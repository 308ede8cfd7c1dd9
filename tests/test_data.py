import os
import os.path as osp
import stat

import pytest
import torch
from torch_geometric.utils import degree

from sap_graph.experiments.cli import main
from sap_graph.experiments.data import (
    DatasetNotFoundError,
    GraphList,
    UnknownDatasetError,
    add_node_features,
    default_root,
    load_dataset,
    load_ogbg,
    load_tu,
    synthetic_graphs,
)


def test_synthetic_is_deterministic_and_well_formed():
    a = synthetic_graphs(num_graphs=50, seed=3)
    b = synthetic_graphs(num_graphs=50, seed=3)
    c = synthetic_graphs(num_graphs=50, seed=4)
    assert all(torch.equal(x.x, y.x) and torch.equal(x.edge_index,
                                                      y.edge_index)
               for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x.x, y.x) for x, y in zip(a, c, strict=True))
    labels = torch.cat([d.y for d in a])
    assert torch.bincount(labels).tolist() == [25, 25]
    for data in a:
        assert 22 <= data.num_nodes <= 64
        assert data.x.shape[1] == 8
        # Dimers: every node has exactly one neighbour.
        deg = degree(data.edge_index[0], data.num_nodes)
        assert (deg == 1).all()


def test_synthetic_signal_is_hidden_but_recoverable():
    data_list = synthetic_graphs(num_graphs=400, seed=0)
    top_correct, mean_correct = 0, 0
    for data in data_list:
        label = int(data.y)
        marker, types = data.x[:, 0], data.x[:, 1:3]
        # The two most salient nodes of a graph are signal nodes.
        top = marker.topk(2).indices
        top_correct += int(types[top].sum(0).argmax()) == label
        mean_correct += int(types.mean(0).argmax()) == label
    # Relative selection recovers the label; averaging all nodes does not.
    assert top_correct / len(data_list) > 0.98
    assert mean_correct / len(data_list) < 0.8
    # No fixed threshold on the marker separates signal from distractors.
    markers = torch.cat([d.x[:, 0] for d in data_list])
    assert markers.min() < -2 and markers.max() > 2


def test_add_node_features():
    data_list = [d.clone() for d in synthetic_graphs(num_graphs=4)]
    for data in data_list:
        data.num_nodes = data.x.size(0)
        del data.x
    dataset = GraphList(data_list)
    out, note = add_node_features(dataset)  # Max degree 1: one-hot.
    assert 'one-hot degree' in note
    assert out[0].x.shape == (data_list[0].num_nodes, 2)
    assert torch.equal(out[0].x[:, 1], torch.ones(data_list[0].num_nodes))
    out, note = add_node_features(dataset, max_degree=0)  # Too large.
    assert 'constant' in note and out[0].x.shape[1] == 1
    out, _ = add_node_features(dataset, mode='constant')
    assert torch.equal(out[1].x, torch.ones(data_list[1].num_nodes, 1))
    with pytest.raises(ValueError, match='node feature mode'):
        add_node_features(dataset, mode='nope')


def write_tu(folder, name, with_labels=True):
    """A tiny TU dataset: 4 graphs (triangle, edge, path, triangle)."""
    raw = osp.join(folder, name, 'raw')
    os.makedirs(raw)
    graphs = [[(1, 2), (2, 3), (3, 1)], [(4, 5)], [(6, 7), (7, 8)],
              [(9, 10), (10, 11), (11, 9)]]
    indicator = [1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4]
    with open(osp.join(raw, f'{name}_A.txt'), 'w') as f:
        for edges in graphs:
            for u, v in edges:
                f.write(f'{u}, {v}\n{v}, {u}\n')
    with open(osp.join(raw, f'{name}_graph_indicator.txt'), 'w') as f:
        f.write('\n'.join(map(str, indicator)) + '\n')
    with open(osp.join(raw, f'{name}_graph_labels.txt'), 'w') as f:
        f.write('1\n-1\n-1\n1\n')
    if with_labels:
        with open(osp.join(raw, f'{name}_node_labels.txt'), 'w') as f:
            f.write('\n'.join(str(i % 3) for i in range(11)) + '\n')


def make_read_only(path):
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            os.chmod(osp.join(dirpath, name), 0o444)
    for dirpath, _, _ in sorted(os.walk(path), reverse=True):
        os.chmod(dirpath, 0o555)


def make_writable(path):
    for dirpath, _, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(osp.join(dirpath, name), 0o644)


def test_load_tu_without_features(tmp_path):
    write_tu(str(tmp_path), 'TOY', with_labels=False)
    task = load_tu('TOY', root=str(tmp_path), download=False)
    assert len(task.dataset) == 4 and task.num_classes == 2
    assert task.labels.tolist() == [1, 0, 0, 1]
    # Degrees 0..2: one-hot with 3 channels, as in the literature.
    assert task.num_features == 3
    assert task.dataset[2].x.argmax(-1).tolist() == [1, 2, 1]
    assert any('one-hot degree' in n for n in task.notes)
    # A writable root is used in place, like PyG does.
    assert osp.isdir(tmp_path / 'TOY' / 'processed')


def test_load_tu_from_read_only_source(tmp_path, monkeypatch):
    src, cache = tmp_path / 'src', tmp_path / 'cache'
    write_tu(str(src), 'TOY')
    make_read_only(str(src))
    monkeypatch.setenv('SAP_GRAPH_CACHE', str(cache))
    try:
        task = load_tu('TOY', root=str(src), download=False)
        assert task.num_features == 3  # Node labels, one-hot.
        assert not osp.exists(src / 'TOY' / 'processed')  # Never written.
        assert osp.isdir(cache / 'TUDataset' / 'TOY' / 'processed')
        mtime = os.stat(cache / 'TUDataset' / 'TOY').st_mtime_ns
        again = load_tu('TOY', root=str(src), download=False)  # Reused.
        assert os.stat(cache / 'TUDataset' / 'TOY').st_mtime_ns == mtime
        assert torch.equal(again.dataset.x, task.dataset.x)
        assert not (os.stat(src / 'TOY').st_mode & stat.S_IWUSR)
    finally:
        make_writable(str(src))


def test_missing_tu_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_tu('NOPE', root=str(tmp_path), download=False)
    msg = str(info.value)
    assert 'NOPE_A.txt' in msg and 'NOPE_graph_indicator.txt' in msg
    assert osp.join(str(tmp_path), 'NOPE', 'raw') in msg
    assert 'SAP_GRAPH_DATA' in msg
    assert isinstance(info.value, FileNotFoundError)
    assert not osp.exists(tmp_path / 'NOPE')


def test_ogb_processing_hides_only_the_read_only_labels_warning():
    # ogb 1.3.6 turns pandas' read-only label arrays into tensors and
    # torch warns (once per process, so the test warns it itself). That
    # warning, and no other, is hidden, and only while processing.
    import warnings

    from sap_graph.experiments.data.ogb import quiet_processing
    alarm = ('The given NumPy array is not writable, and PyTorch does not '
             'support non-writable tensors.')
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        with quiet_processing():
            warnings.warn(alarm, UserWarning, stacklevel=1)
            warnings.warn('another warning', UserWarning, stacklevel=1)
        warnings.warn(alarm, UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ['another warning', alarm]


def test_missing_ogb_dataset_is_a_clear_error(tmp_path):
    pytest.importorskip('ogb')
    with pytest.raises(DatasetNotFoundError) as info:
        load_ogbg('ogbg-molhiv', root=str(tmp_path), download=False)
    msg = str(info.value)
    assert 'ogbg_molhiv' in msg and 'RELEASE_v1.txt' in msg
    # A folder without the release file would make ogb prompt on stdin.
    os.makedirs(tmp_path / 'ogbg_molhiv' / 'raw')
    with pytest.raises(DatasetNotFoundError, match='RELEASE_v1.txt'):
        load_ogbg('ogbg-molhiv', root=str(tmp_path))
    with pytest.raises(UnknownDatasetError, match='ogbg-molhiv'):
        load_dataset('ogbg-nope', root=str(tmp_path))


def test_default_root(monkeypatch):
    monkeypatch.setenv('SAP_GRAPH_DATA', '/some/data')
    assert default_root('tu') == osp.join('/some/data', 'TUDataset')
    assert default_root('ogb') == osp.join('/some/data', 'ogb')
    assert default_root('tu', '/explicit') == '/explicit'
    monkeypatch.delenv('SAP_GRAPH_DATA')
    assert default_root('tu') == osp.join('data', 'TUDataset')


def test_default_root_refuses_a_file(monkeypatch, tmp_path):
    """A root that is a file is refused by name (the loaders once failed
    in os.makedirs with FileExistsError)."""
    path = tmp_path / 'file'
    path.write_text('')
    with pytest.raises(DatasetNotFoundError) as info:
        default_root('tu', str(path))
    assert str(info.value) == f"data root '{path}' is not a folder"
    assert info.value.field == 'root'
    monkeypatch.setenv('SAP_GRAPH_DATA', str(path))
    with pytest.raises(DatasetNotFoundError, match='is not a folder'):
        default_root('ogb')


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    code = main(['train', '--dataset', 'NOPE', '--root', str(tmp_path),
                 '--no-download', '--no-progress'])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith('error: ') and '\n' not in err
    assert 'NOPE_A.txt' in err
    code = main(['train', '--readout', 'nope', '--epochs', '1'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith('error: ') and 'sap' in err


def test_task_digest_follows_the_graphs():
    from dataclasses import replace

    from sap_graph.experiments.data import load_synthetic

    def task():
        return load_synthetic(num_graphs=12, min_pairs=2, max_pairs=3)

    ref = task()
    assert len(ref.digest) == 64 and task().digest == ref.digest
    changed = task()
    changed.dataset._data.x[0, 0] += 1  # One feature of one node.
    assert changed.digest != ref.digest
    order = list(range(1, 12)) + [0]  # The same graphs in another order.
    assert replace(ref, dataset=ref.dataset[order]).digest != ref.digest
    moved = task()  # The same tensors cut into graphs elsewhere.
    slices = moved.dataset.slices['x'].clone()
    slices[1] += 1
    moved.dataset.slices['x'] = slices
    assert moved.digest != ref.digest
