import json
import warnings

import numpy as np
import pytest
import torch

import sap_graph.experiments.train as train_mod
import sap_graph.experiments.train.runs as runs
from sap_graph.experiments.cli import main
from sap_graph.experiments.data import GraphList, GraphTask
from sap_graph.experiments.models import load_checkpoint
from sap_graph.experiments.train import (
    TrainConfig,
    compute_loss,
    cross_validate,
    resolve_config,
    run,
    stratified_splits,
)
from sap_graph.regularizers import attention_entropy, diversity_penalty


def quick_config(**kwargs):
    base = dict(readout='sap', heads=2, hidden_channels=16, num_layers=2,
                epochs=3, batch_size=32, progress=False, verbose=False)
    base.update(kwargs)
    return resolve_config(TrainConfig(**base), 'synthetic')


def test_folds_are_stratified_and_disjoint():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    splits = stratified_splits(labels, folds=10, val_ratio=0.1, seed=1)
    assert len(splits) == 10
    tests = torch.cat([s['test'] for s in splits])
    assert sorted(tests.tolist()) == list(range(100))  # A partition.
    for s in splits:
        train, val, test = (set(s[k].tolist()) for k in ('train', 'val',
                                                          'test'))
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(train | val | test) == 100
        counts = torch.bincount(labels[s['test']], minlength=3).tolist()
        assert counts == [6, 3, 1]  # Stratified test folds.
        val_counts = torch.bincount(labels[s['val']], minlength=3)
        assert abs(int(val_counts[0]) - 5) <= 1  # Stratified validation.
    again = stratified_splits(labels, folds=10, val_ratio=0.1, seed=1)
    assert all(torch.equal(a['val'], b['val'])
               for a, b in zip(splits, again, strict=True))
    with pytest.raises(ValueError, match='smallest class'):
        stratified_splits(torch.tensor([0] * 20 + [1] * 3), folds=5)


def binary_graphs(y):
    """Tiny graphs with one float label each (rows of ``y``)."""
    from torch_geometric.data import Data
    return [Data(x=torch.ones(2, 3), edge_index=torch.tensor([[0, 1],
                                                             [1, 0]]),
                 y=torch.tensor([row], dtype=torch.float))
            for row in y]


@pytest.mark.parametrize('case', ['one binary target', 'a missing label',
                                  'two targets',
                                  'a class smaller than the folds'])
def test_kfold_stratifies_one_binary_target(case):
    """k-fold over a single 0/1 target without missing labels keeps the
    class shares in every test fold (plain k-fold left validation parts
    of one class, where ROC-AUC is undefined); missing labels, several
    targets or a class with fewer graphs than folds keep plain k-fold."""
    from sap_graph.experiments.data.graphs import task_from_graphs
    from sap_graph.experiments.train import kfold_splits, plan_splits
    y = [[1.0]] * 8 + [[0.0]] * 32
    if case == 'a missing label':
        y = [[float(i % 2)] for i in range(200)]
        y[-1] = [float('nan')]
    elif case == 'two targets':
        y = [[float(i % 2), float(i % 3 == 0)] for i in range(200)]
    elif case == 'a class smaller than the folds':
        y = [[1.0]] * 3 + [[0.0]] * 37
    task = task_from_graphs(binary_graphs(y))
    assert task.task_type == 'binary classification'
    strata = runs.strata_of(task, 4)
    if case == 'one binary target':
        assert torch.equal(strata, torch.tensor([1] * 8 + [0] * 32))
        cfg = resolve_config(TrainConfig(folds=4, seed=0), task.kind)
        splits = plan_splits(task, cfg)
        for s in splits:
            assert int(strata[s.index['test']].sum()) == 2
            assert int(strata[s.index['val']].sum()) >= 1
        return
    assert strata is None
    if case != 'a class smaller than the folds':
        cfg = resolve_config(TrainConfig(folds=4, seed=0), task.kind)
        plain = kfold_splits(len(y), 4, cfg.val_ratio, cfg.seed)
        for ours, theirs in zip(plan_splits(task, cfg), plain, strict=True):
            assert all(torch.equal(ours.index[k], theirs[k])
                       for k in ('train', 'val', 'test'))


def with_ids(task):
    data_list = []
    for i in range(len(task.dataset)):
        data = task.dataset[i].clone()
        data.gid = torch.tensor([i])
        data_list.append(data)
    return GraphTask(name=task.name, dataset=GraphList(data_list),
                     num_features=task.num_features,
                     num_classes=task.num_classes, num_edge_features=0,
                     kind='synthetic')


def test_selection_never_sees_the_test_fold(small_task, monkeypatch):
    task = with_ids(small_task)
    splits = stratified_splits(task.labels, folds=4, seed=0)[:1]
    test_ids = set(splits[0]['test'].tolist())

    seen = []
    original_fit = runs.fit

    def spy(model, train_data, val_data, *args, **kwargs):
        seen.extend(int(d.gid) for d in list(train_data) + list(val_data))
        return original_fit(model, train_data, val_data, *args, **kwargs)

    monkeypatch.setattr(runs, 'fit', spy)
    cfg = quick_config(epochs=4)
    clean = cross_validate(task, cfg, splits=splits)
    assert seen and not (set(seen) & test_ids)

    # Scrambling the test graphs changes the test score only: the selected
    # epoch and its validation scores are the same.
    data_list = [task.dataset[i] for i in range(len(task.dataset))]
    for i in test_ids:
        data_list[i].x = torch.randn_like(data_list[i].x) * 10
        data_list[i].y = 1 - data_list[i].y
    scrambled_task = GraphTask(
        name=task.name, dataset=GraphList(data_list),
        num_features=task.num_features, num_classes=2,
        num_edge_features=0, kind='synthetic')
    scrambled = cross_validate(scrambled_task, cfg, splits=splits)
    a, b = clean['folds'][0], scrambled['folds'][0]
    assert a['best_epoch'] == b['best_epoch']
    assert a['val_acc'] == b['val_acc'] and a['val_loss'] == b['val_loss']
    assert a['test_acc'] != b['test_acc']


@pytest.mark.slow
def test_attention_learns_the_synthetic_task(small_task):
    splits = stratified_splits(small_task.labels, folds=4, seed=0)[:1]
    acc = {}
    for readout in ('sap', 'mean'):
        cfg = quick_config(readout=readout, epochs=15, heads=4,
                           hidden_channels=32)
        result = cross_validate(small_task, cfg, splits=splits)
        acc[readout] = result['folds'][0]['test_acc']
    print(acc)
    assert acc['sap'] >= 0.85
    assert acc['sap'] > acc['mean']


def test_runs_are_repeatable(small_task):
    splits = stratified_splits(small_task.labels, folds=4, seed=0)[:1]
    cfg = quick_config(epochs=2)
    a = cross_validate(small_task, cfg, splits=splits)['folds'][0]
    b = cross_validate(small_task, cfg, splits=splits)['folds'][0]
    for key in ('best_epoch', 'val_acc', 'val_loss', 'test_acc',
                'test_loss', 'final_train_loss'):
        assert a[key] == b[key]


def test_loss_masks_unlabelled_targets():
    out = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.2, 0.1]])
    y = torch.tensor([[1.0, float('nan')], [0.0, 1.0], [float('nan'), 0.0]])
    loss = compute_loss(out, y, 'binary classification')
    mask = ~torch.isnan(y)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        out[mask], y[mask])
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    reg = compute_loss(out, y, 'regression')
    assert torch.allclose(reg, ((out[mask] - y[mask])**2).mean())


def test_run_writes_result_and_checkpoint(small_task, tmp_path):
    out, ckpt = tmp_path / 'res' / 'r.json', tmp_path / 'm.pt'
    cfg = TrainConfig(readout='sap', heads=2, hidden_channels=16,
                      num_layers=2, epochs=2, folds=3, progress=False,
                      verbose=False, out=str(out), checkpoint=str(ckpt))
    result = run(cfg, task=small_task)
    on_disk = json.loads(out.read_text())
    assert on_disk['test_mean'] == pytest.approx(result['test_mean'])
    for key in ('config', 'folds', 'test_mean', 'test_std', 'val_mean',
                'epoch_time_mean', 'versions', 'device', 'dataset'):
        assert key in on_disk
    accs = [f['test_acc'] for f in on_disk['folds']]
    assert len(accs) == 3 and all(0.0 <= a <= 1.0 for a in accs)
    assert on_disk['test_mean'] == pytest.approx(np.mean(accs))
    assert on_disk['test_std'] == pytest.approx(np.std(accs))
    assert on_disk['config']['folds'] == 3
    assert on_disk['dataset']['num_graphs'] == 240
    assert on_disk['versions']['torch'] == torch.__version__
    assert not list(tmp_path.glob('res/.tmp-*'))  # Atomic write.

    model = load_checkpoint(str(ckpt))
    state = torch.load(ckpt, weights_only=True)
    selected = state['config']['selected']
    assert selected['val_acc'] == max(f['val_acc'] for f in result['folds'])
    # The saved weights reproduce the selected fold's test accuracy.
    splits = stratified_splits(small_task.labels, 3, seed=0)
    test = [small_task.dataset[int(i)]
            for i in splits[selected['fold']]['test']]
    from torch_geometric.loader import DataLoader
    acc = train_mod.evaluate(model, DataLoader(test, batch_size=64),
                             torch.device('cpu'))['acc']
    assert acc == pytest.approx(selected['test_acc'])


def test_cli_trains_the_default_task(tmp_path, capsys):
    out = tmp_path / 'r.json'
    code = main(['train', '--epochs', '1', '--folds', '2',
                 '--hidden_channels', '8', '--no-progress', '--quiet',
                 '--out', str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'synthetic readout=sap' in printed and '±' in printed
    result = json.loads(out.read_text())
    assert result['dataset']['name'] == 'synthetic'
    assert result['config']['heads'] == 4 and len(result['folds']) == 2


def test_diversity_flag_reaches_the_readout_and_the_loss(tmp_path):
    """--diversity sets the SAP penalty, the training loop optimises it,
    and the penalty is lower after training than with it switched off."""
    import torch
    from torch_geometric.loader import DataLoader

    from sap_graph.experiments.cli import _config, build_parser
    from sap_graph.experiments.data import load_synthetic
    from sap_graph.experiments.train import (
        build_model,
        resolve_config,
        train_epoch,
    )

    args = build_parser().parse_args(
        ['train', '--readout', 'sap', '--heads', '4', '--diversity', '1.0'])
    cfg = resolve_config(_config(args), 'synthetic')
    assert cfg.readout_kwargs == {'diversity': 1.0}
    task = load_synthetic(num_graphs=64)
    loader = DataLoader(list(task.dataset), batch_size=32)

    def penalty_after_training(diversity):
        torch.manual_seed(0)
        cfg.readout_kwargs = {'diversity': diversity} if diversity else {}
        model = build_model(cfg, task)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        with warnings.catch_warnings():
            # The harness adds the penalty itself (RegularizedSAP), not
            # through the layer's deprecated constructor weight.
            warnings.simplefilter('error', FutureWarning)
            for _ in range(5):
                train_epoch(model, loader, opt, torch.device('cpu'))
        # Measured the same way for both: the function of alpha.
        model.train()
        batch = next(iter(loader))
        h = model.node_embeddings(batch.x, batch.edge_index)
        _, alpha = model.readout(h, batch.batch, dim_size=batch.num_graphs,
                                 return_attention_weights=True)
        return float(diversity_penalty(alpha, batch.batch,
                                       batch.num_graphs).detach())

    assert penalty_after_training(1.0) < penalty_after_training(0.0)


def test_regularized_sap_adds_the_functions_of_alpha():
    from sap_graph import SAPAggregation
    from sap_graph.experiments.readouts import resolve_readout
    from sap_graph.experiments.regularized import RegularizedSAP, aux_loss

    readout, width = resolve_readout('sap', 6, heads=3, diversity=0.5,
                                     entropy=-0.2)
    assert isinstance(readout, RegularizedSAP) and width == 6
    plain, _ = resolve_readout('sap', 6, heads=3, diversity=0.0)
    assert type(plain) is SAPAggregation  # No weights: the plain layer.
    assert 'diversity=0.5' in repr(readout)
    torch.manual_seed(0)
    x, index = torch.randn(7, 6), torch.tensor([0, 0, 0, 2, 2, 2, 2])
    out, alpha = readout(x, index, dim_size=3,
                         return_attention_weights=True)
    expected = (0.5 * diversity_penalty(alpha, index, 3) -
                0.2 * attention_entropy(alpha, index, 3))
    torch.testing.assert_close(aux_loss(readout), expected)
    # The same parameters give the layer's own output.
    plain.load_state_dict(readout.state_dict())
    torch.testing.assert_close(plain(x, index, dim_size=3), out)
    # ptr instead of index; nothing kept in eval mode.
    ptr = torch.tensor([0, 3, 3, 7])
    readout(x, ptr=ptr, dim_size=3)
    torch.testing.assert_close(aux_loss(readout), expected)
    readout.eval()
    readout(x, index, dim_size=3)
    assert aux_loss(readout) is None


def test_versions_record_source_digest_and_cpu_core(sap_backend):
    from sap_graph import SAPAggregation
    from sap_graph.experiments.train import source_digest, versions

    digest = source_digest()
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert source_digest() == digest
    aggr = SAPAggregation(4, heads=2)
    aggr(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]), dim_size=2)
    core = versions()['sap_graph_cpu_core']
    assert core == ('native' if sap_backend == 'native' else
                    'torch (SAP_GRAPH_NATIVE=0)')
    assert versions()['sap_graph_source'] == digest
    # The path the batch took and the switches behind it.
    assert sap_backend in versions()['sap_graph_paths'].split(',')
    switches = versions()['sap_graph_switches']
    assert switches.endswith(' triton=auto')  # The default.
    assert ('native=off' in switches) == (sap_backend == 'torch')


def test_versions_of_resumed_runs_name_the_core_they_used(monkeypatch):
    """A finished training state resumed trains nothing and loads no
    kernels: its result names the core its runs recorded, not 'not
    loaded'."""
    from sap_graph.experiments.train import versions
    from sap_graph.ops import native
    monkeypatch.setattr(native, 'status', lambda: 'not loaded')
    assert versions({'native'})['sap_graph_cpu_core'] == 'native'
    assert versions({'torch'})['sap_graph_cpu_core'] == 'not loaded'
    assert versions()['sap_graph_cpu_core'] == 'not loaded'
    monkeypatch.setattr(native, 'status', lambda: 'torch (SAP_GRAPH_NATIVE=0)')
    assert versions({'native'})['sap_graph_cpu_core'] == 'native'
    monkeypatch.setattr(native, 'status', lambda: 'native')
    assert versions({'torch'})['sap_graph_cpu_core'] == 'torch'


def test_kernels_are_built_before_the_first_timed_epoch(monkeypatch):
    from sap_graph.experiments.data import load_synthetic
    from sap_graph.experiments.train import loop
    from sap_graph.ops import native as _native
    calls = []
    monkeypatch.setattr(_native, 'native', lambda: calls.append('build'))
    original = loop.train_epoch

    def train_epoch(*args, **kwargs):
        calls.append('epoch')
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, 'train_epoch', train_epoch)
    task = load_synthetic(num_graphs=40, min_pairs=2, max_pairs=3)
    cfg = train_mod.resolve_config(TrainConfig(
        readout='sap', heads=2, hidden_channels=8, epochs=2, device='cpu',
        progress=False, verbose=False), 'synthetic')
    model = train_mod.build_model(cfg, task)
    data = [task.dataset[i] for i in range(len(task.dataset))]
    train_mod.fit(model, data[:30], data[30:], cfg, torch.device('cpu'))
    # The layer asks again in its forward (then it is loaded: no cost).
    assert calls[0] == 'build' and calls.count('epoch') == 2
