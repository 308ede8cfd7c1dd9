"""The accuracy grid: resumable cell cache and the renderer."""
import argparse
import csv
import json
import math
import os
import os.path as osp
import sys
from typing import List, Optional

import pytest
import torch

from benchmarks import accuracy, choose_default, readme_tables, variants
from benchmarks import render_accuracy as ra
from benchmarks.render import load, protocol, stats, tables
from sap_graph.experiments.data import load_synthetic


def write_cell(cache, dataset: str, readout: str, unit: str, test: float,
               val: float, metric: str = 'acc', folds: int = 4,
               seeds: Optional[List[int]] = None, epoch_time: float = 0.1,
               wall_time: float = 10.0, lr: float = 0.01,
               extra: Optional[dict] = None) -> None:
    """Writes one cell file in the format of ``accuracy.run_grid``
    (:obj:`extra`: more record fields, ``config`` merged)."""
    ogb = unit.startswith('seed_')
    config = dict(epochs=50, lr=lr, lr_step=25, lr_gamma=0.5,
                  hidden_channels=128 if ogb else 64, num_layers=5,
                  batch_size=32, conv='gine' if ogb else 'gin', jk='last',
                  dropout=0.5, layer_dropout=0.0, folds=folds,
                  seeds=seeds or [0], seed=0, val_ratio=0.1,
                  readout=readout.rstrip('0123456789'),
                  heads=1 if readout == 'sap1' else 4,
                  concat=readout != 'sap4_mean', readout_kwargs={},
                  device='cpu')
    record = dict(
        dataset=dataset, readout=readout, unit=unit, test=test, val=val,
        metric=metric, epoch_time_mean=epoch_time, wall_time=wall_time,
        protocol='ogb_official_split' if ogb else 'stratified_kfold_cv',
        config=config, threads=1,
        versions=dict(python='3.11', torch='2.13.0+cpu'))
    extra = dict(extra or {})
    record['config'].update(extra.pop('config', {}))
    record.update(extra)
    accuracy.write_atomic(accuracy.cell_path(str(cache), dataset, readout,
                                             unit), record)


def write_cells(cache, dataset: str, readout: str, tests: List[float],
                vals: List[float], **kwargs) -> None:
    for k, (t, v) in enumerate(zip(tests, vals, strict=True)):
        write_cell(cache, dataset, readout, f'fold_{k}', t, v, **kwargs)


@pytest.fixture
def fake_cache(tmp_path):
    """Known numbers: MUTAG has an incomplete 'max' (2/4 folds); PROTEINS
    and IMDB-BINARY are complete for all five readouts; ogbg-molhiv has
    2/3 seeds of 'sum' only."""
    cache = tmp_path / 'cache'
    write_cells(cache, 'MUTAG', 'sum', [.8, .9, .7, .8], [.9] * 4)
    # Best non-SAP by validation, although 'sum' has the better test mean.
    write_cells(cache, 'MUTAG', 'mean', [.7, .8, .6, .9], [.95] * 4)
    write_cells(cache, 'MUTAG', 'max', [.99, .99], [.5] * 2)
    write_cells(cache, 'MUTAG', 'sap1', [.8, .8, .8, .8], [.9] * 4)
    write_cells(cache, 'MUTAG', 'sap4', [.85, .95, .75, .85], [.8] * 4)
    for readout, test in [('sum', .7), ('mean', .6), ('max', .65),
                          ('sap1', .7), ('sap4', .75)]:
        write_cells(cache, 'PROTEINS', readout, [test] * 4, [.5] * 4)
    for readout, test in [('sum', .5), ('mean', .6), ('max', .7),
                          ('sap1', .8), ('sap4', .9)]:
        write_cells(cache, 'IMDB-BINARY', readout, [test] * 4, [.5] * 4)
    for s, test in enumerate([.75, .77]):
        write_cell(cache, 'ogbg-molhiv', 'sum', f'seed_{s}', test, .8,
                   metric='rocauc', seeds=[0, 1, 2])
    return cache


def table_row(text: str, name: str) -> List[str]:
    line = next(ln for ln in text.splitlines()
                if ln.startswith(f'| {name} |'))
    return [c.strip() for c in line.strip('|').split('|')]


def test_rank_ties():
    ranks = stats.rank_descending({'a': 1.0, 'b': 3.0, 'c': 1.0, 'd': 0.5})
    assert ranks == {'b': 1.0, 'a': 2.5, 'c': 2.5, 'd': 4.0}
    # Means equal up to float rounding (0.1 + 0.2 vs 0.3) are ties.
    assert stats.rank_descending({'a': 0.1 + 0.2, 'b': 0.3}) == {
        'a': 1.5, 'b': 1.5}


def test_cells_bold_and_incomplete(fake_cache, tmp_path):
    text = ra.render(str(fake_cache), str(tmp_path / 'out'))
    header = table_row(text, 'readout')
    col = header.index('MUTAG (accuracy)')
    # 80, 90, 70, 80: mean 80, sample std sqrt(200 / 3) = 8.16.
    assert table_row(text, 'sum')[col] == '80.0 ± 8.2'
    assert table_row(text, 'sap (1 head)')[col] == '80.0 ± 0.0'
    # The highest mean but 2 of 4 folds: marked, never bold.
    assert table_row(text, 'max')[col] == '99.0 ± 0.0 (2/4)'
    assert table_row(text, 'sap (4 heads, concat)')[col] == '**85.0 ± 8.2**'
    assert text.count('**85.0 ± 8.2**') == 1
    col = header.index('PROTEINS (accuracy)')
    assert table_row(text, 'sap (4 heads, concat)')[col] == '**75.0 ± 0.0**'
    assert table_row(text, 'sum')[col] == '70.0 ± 0.0'
    # OGB: ROC-AUC, 2 of 3 seeds, alone on its dataset -> not bold.
    col = header.index('ogbg-molhiv (ROC-AUC)')
    assert table_row(text, 'sum')[col] == '76.0 ± 1.4 (2/3)'
    assert table_row(text, 'mean')[col] == '–'
    # Published rows beneath, with their values.
    assert '75.58 ± 1.40' in text and '77.56 ± 1.25' in text
    assert '89.4 ± 5.6' in text and '71.2 ± 3.9' in text
    assert text.index('| sum |') < text.index('Xu et al. 2019')
    assert 'RDKit' in text and 'OGB leaderboard' in text


def test_ties_are_all_bold(tmp_path):
    cache = tmp_path / 'cache'
    write_cells(cache, 'MUTAG', 'sum', [.80, .80], [.5] * 2, folds=2)
    write_cells(cache, 'MUTAG', 'sap4', [.8002, .8002], [.5] * 2, folds=2)
    write_cells(cache, 'MUTAG', 'mean', [.7, .7], [.5] * 2, folds=2)
    cells = load.load_cache(str(cache))
    assert tables.best_readouts(list(cells.values())) == {'sum', 'sap4'}


def test_average_ranks(fake_cache):
    cells = load.load_cache(str(fake_cache))
    datasets = load.order_datasets([d for d, _ in cells])
    readouts = load.order_readouts([r for _, r in cells])
    assert datasets == ['MUTAG', 'PROTEINS', 'IMDB-BINARY', 'ogbg-molhiv']
    ranks = stats.average_ranks(cells, datasets, readouts)
    assert ranks.used == ['PROTEINS', 'IMDB-BINARY']
    assert set(ranks.excluded) == {'MUTAG', 'ogbg-molhiv'}
    # PROTEINS: sap4 1, sum = sap1 2.5, max 4, mean 5; IMDB-BINARY:
    # sap4 1, sap1 2, max 3, mean 4, sum 5.
    assert ranks.average == pytest.approx({
        'sum': 3.75, 'mean': 4.5, 'max': 3.5, 'sap1': 2.25, 'sap4': 1.0})


def test_paired_tests(fake_cache, tmp_path):
    cells = load.load_cache(str(fake_cache))
    results = {(r.dataset, r.sap): r for r in stats.paired_tests(
        cells, ['MUTAG', 'PROTEINS', 'ogbg-molhiv'], default_sap='sap4')}
    # MUTAG: baseline = 'mean' (best validation), not 'sum' (best test);
    # the incomplete 'max' is not a candidate.
    res = results['MUTAG', 'sap4']
    assert res.baseline == 'mean' and res.choice == 'default'
    assert res.diffs == pytest.approx([15, 15, 15, -5])
    assert res.mean_diff == pytest.approx(10.0)
    assert (res.wins, res.ties, res.losses) == (3, 0, 1)
    # |sum| >= 40 only for (+, +, +, +-5) and (-, -, -, +-5): 4 / 16.
    assert res.p_value == pytest.approx(0.25) and res.p_method == 'exact'
    # Best SAP by validation: sap1 (val 0.9 > 0.8).
    res = results['MUTAG', 'sap1']
    assert res.choice == 'best SAP by val' and res.baseline == 'mean'
    assert res.diffs == pytest.approx([10, 0, 20, -10])
    assert (res.wins, res.ties, res.losses) == (2, 1, 1)
    # +-10 +-20 +-10 reaches |20| in 6 of 8 patterns; the 0 doubles both.
    assert res.p_value == pytest.approx(0.75)
    # No SAP on molhiv: no test there.
    assert not any(d == 'ogbg-molhiv' for d, _ in results)
    text = ra.render(str(fake_cache), str(tmp_path / 'out'),
                     default_sap='sap4')
    assert '+15.0, +15.0, +15.0, -5.0' in text
    assert '| 3/0/1 | 0.25 |' in text
    # The module default is not in this cache: said so, best SAP tested.
    text = ra.render(str(fake_cache), str(tmp_path / 'out'))
    assert f'`{variants.DEFAULT_SAP}` has no result' in text
    assert '+15.0, +15.0, +15.0, -5.0' not in text
    assert '+10.0, +0.0, +20.0, -10.0' in text


def test_pairs_only_common_folds(tmp_path):
    cache = tmp_path / 'cache'
    write_cells(cache, 'MUTAG', 'sum', [.5, .5, .5], [.9] * 3, folds=3)
    write_cell(cache, 'MUTAG', 'sap4', 'fold_1', .6, .5, folds=3)
    cells = load.load_cache(str(cache))
    (res,) = stats.paired_tests(cells, ['MUTAG'], default_sap='sap4')
    assert res.units == ['fold_1'] and res.diffs == pytest.approx([10.0])


def test_files_and_partial_grids(fake_cache, tmp_path):
    out = tmp_path / 'out'
    text = ra.render(str(fake_cache), str(out))
    assert (out / 'accuracy.md').read_text() == text
    with open(out / 'accuracy.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    row = next(r for r in rows if r['dataset'] == 'MUTAG'
               and r['readout'] == 'max')
    assert (row['n'], row['n_expected']) == ('2', '4')
    assert float(row['mean']) == pytest.approx(99.0)
    assert float(row['epoch_time']) == pytest.approx(0.1)
    # 60 cells of 10 s each.
    assert '| **total** | 60 | **10 min 00 s** |' in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (out / 'accuracy.png').stat().st_size > 0
        assert (out / 'accuracy_vs_time.png').stat().st_size > 0
        assert '(accuracy.png)' in text
    # A single cell, a missing cache and a broken file do not crash.
    single = tmp_path / 'single'
    write_cell(single, 'NCI1', 'gmt', 'fold_0', .7, .7, folds=10)
    text = ra.render(str(single), str(tmp_path / 'out1'))
    assert '70.0 (1/10)' in text
    assert 'No dataset has both a SAP and a non-SAP result' in text
    text = ra.render(str(tmp_path / 'missing'), str(tmp_path / 'out2'))
    assert 'No finished cells yet' in text
    bad = single / 'NCI1' / 'gmt' / 'fold_1.json'
    bad.write_text('{')
    with pytest.warns(UserWarning, match='unreadable'):
        ra.render(str(single), str(tmp_path / 'out3'))


def test_learning_rate_selected_on_validation(tmp_path):
    main, other = tmp_path / 'main', tmp_path / 'other'
    # sum: lr 0.001 wins fold 0 on validation, ties fold 1 (keeps 0.01),
    # loses fold 2; fold 3 exists at lr 0.01 only and is not paired.
    write_cells(main, 'MUTAG', 'sum', [.50, .60, .70, .80], [.5, .6, .7, .8])
    write_cells(other, 'MUTAG', 'sum_lr1e-3', [.95, .99, .10],
                [.9, .6, .1])
    # sap4 has no lr 0.001 run on MUTAG: left out, not shown as selected.
    write_cells(main, 'MUTAG', 'sap4', [.9] * 4, [.9] * 4)
    write_cells(other, 'PROTEINS', 'sap4_lr1e-3', [.7] * 4, [.7] * 4)
    cells = load.select_learning_rate({**load.load_cache(str(other)),
                                     **load.load_cache(str(main))})
    assert list(cells) == [('MUTAG', 'sum')]
    cell = cells['MUTAG', 'sum']
    assert cell.units == ['fold_0', 'fold_1', 'fold_2']
    assert [cell.records[u]['selected'] for u in cell.units] == [
        'sum_lr1e-3', 'sum', 'sum']
    # Test scores follow the validation choice, never the other way round.
    assert cell.scores('test') == pytest.approx([95.0, 60.0, 70.0])
    assert cell.wall_time == pytest.approx(60.0)  # Both runs of 3 folds.

    out = tmp_path / 'out'
    text = ra.render(str(main), str(out), select_from=str(other))
    assert text.startswith('# Readout comparison: learning rate selected')
    assert 'lower rate was chosen in 1 of 3 folds' in text
    assert '| sum | 1/3 |' in text
    assert '| sum | 75.0 ± 18.0 (3/4) |' in text  # 95, 60, 70 of 4 folds.


def test_fair_table_override_ranks_collapse(tmp_path):
    main, low, attr = (tmp_path / 'main', tmp_path / 'low',
                       tmp_path / 'attr')
    k = dict(folds=2)
    lo = dict(folds=2, lr=0.001)
    # MUTAG: lr 0.01 kept for sum (val 90 > 80) and gmt (tie), lr 0.001
    # chosen for sap_sum (val 60 > 50).
    write_cells(main, 'MUTAG', 'sum', [.8, .8], [.9, .9], **k)
    write_cells(low, 'MUTAG', 'sum_lr1e-3', [.6, .6], [.8, .8], **lo)
    write_cells(main, 'MUTAG', 'sap_sum', [.9, .9], [.5, .5], **k)
    write_cells(low, 'MUTAG', 'sap_sum_lr1e-3', [.95, .95], [.6, .6], **lo)
    write_cells(main, 'MUTAG', 'gmt', [.7, .7], [.9, .9], **k)
    write_cells(low, 'MUTAG', 'gmt_lr1e-3', [.75, .75], [.9, .9], **lo)
    # ENZYMES of the main caches is replaced by the node-attribute cache.
    write_cells(main, 'ENZYMES', 'sum', [.1, .1], [.9, .9], **k)
    write_cells(low, 'ENZYMES', 'sum_lr1e-3', [.1, .1], [.9, .9], **lo)
    node_attr = dict(config=dict(use_node_attr=True))
    write_cells(attr, 'ENZYMES', 'sum', [.5, .5], [.5, .5], extra=node_attr,
                **k)
    write_cells(attr, 'ENZYMES', 'sum_lr1e-3', [.6, .6], [.6, .6],
                extra=node_attr, **lo)
    write_cells(attr, 'ENZYMES', 'sap_sum', [.4, .4], [.7, .7],
                extra=node_attr, **k)
    # Both folds of sap_sum at lr 0.001 collapsed: loss 1.8 >= 0.98 ln 6.
    write_cells(attr, 'ENZYMES', 'sap_sum_lr1e-3', [.3, .3], [.6, .6],
                extra=dict(node_attr, final_train_loss=1.8), **lo)
    # One collapsed fold of sum at lr 0.01 on MUTAG (0.98 x 0.638 = 0.625).
    for fold, loss in enumerate([0.7, 0.1]):
        write_cell(main, 'MUTAG', 'sum', f'fold_{fold}', .8, .9,
                   extra=dict(final_train_loss=loss), **k)

    text = ra.render(str(main), str(tmp_path / 'out'), str(low),
                     overrides=[('ENZYMES', str(attr))],
                     default_sap='sap_sum')
    header = table_row(text, 'readout')
    assert header[1:3] == ['MUTAG (accuracy)',
                           'ENZYMES (node attr.) (accuracy)']
    assert header[-2:] == ['avg. rank', 'avg. rank, complete readouts']
    # Ranks: MUTAG alone (gmt has no ENZYMES cell): sap_sum 1, sum 2,
    # gmt 3; complete readouts on both datasets: (2 + 1) / 2 for sum,
    # (1 + 2) / 2 for sap_sum, gmt left out.
    assert table_row(text, 'sum') == ['sum', '80.0 ± 0.0', '**60.0 ± 0.0**',
                                      '2.00', '1.50']
    assert table_row(text, 'sap (4 heads avg, residual sum)') == [
        'sap (4 heads avg, residual sum)', '**95.0 ± 0.0**', '40.0 ± 0.0',
        '1.00', '1.50']
    assert table_row(text, 'gmt') == ['gmt', '70.0 ± 0.0', '–', '3.00', '–']
    assert 'Not ranked: ENZYMES (node attr.) (no result for gmt)' in text
    assert 'gmt (incomplete on ENZYMES (node attr.))' in text
    assert 'ENZYMES (node attr.) from' in text
    assert '--override ENZYMES=' in text
    # Paired tests of the default against the best non-SAP by validation
    # (MUTAG: sum and gmt tie at 90, table order keeps sum).
    rows = [ln for ln in text.splitlines() if '(`sap_sum`) | default' in ln]
    assert rows == [
        '| MUTAG | sap (4 heads avg, residual sum) (`sap_sum`) | default; '
        'also best SAP by val | sum (`sum`) | 2 | +15.0, +15.0 | +15.0 | '
        '2/0/0 | 0.5 |',
        '| ENZYMES (node attr.) | sap (4 heads avg, residual sum) '
        '(`sap_sum`) | default; also best SAP by val | sum (`sum`) | 2 | '
        '-20.0, -20.0 | -20.0 | 0/0/2 | 0.5 |']
    # Collapsed folds, per learning rate, before the selection.
    lines = text.splitlines()
    at = lines.index('lr 0.001 (2 of 2 folds collapsed):')
    assert lines[at + 4] == ('| sap (4 heads avg, residual sum) | – | '
                             '2/2 |')
    at = lines.index('lr 0.01 (1 of 2 folds collapsed):')
    assert lines[at + 4] == '| sum | 1/2 | – |'
    with open(tmp_path / 'out' / 'accuracy.csv') as f:
        rows = list(csv.DictReader(f))
    assert {r['dataset'] for r in rows} == {'MUTAG', 'ENZYMES (node attr.)'}


def test_override_parsing():
    assert ra.parse_override('ENZYMES=a/b') == ('ENZYMES', 'a/b')
    with pytest.raises(ValueError, match="'ENZYMES'"):
        ra.parse_override('ENZYMES')


def grid_args(cache) -> argparse.Namespace:
    """Every field of ``accuracy.main``'s parser."""
    return argparse.Namespace(
        datasets=['synthetic'], readouts=['sum', 'sap1'], epochs=1,
        lr_step=25, folds=2, ogb_epochs=1, ogb_hidden=16, ogb_seeds=1,
        seed=0, root=None, device='cpu', threads=1, shard=(0, 1),
        cache=str(cache), out=str(cache), render=False, no_render=True,
        select_lr_from=None, use_node_attr=False, override=[],
        default_sap=None)


def test_grid_resumes(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    task = load_synthetic(num_graphs=60, min_pairs=3, max_pairs=6)
    monkeypatch.setattr(accuracy, 'load_dataset', lambda *a, **k: task)
    calls = []
    run_unit = accuracy.run_unit

    def counting_run_unit(task, cfg, unit):
        calls.append((cfg.readout, cfg.heads, unit))
        return run_unit(task, cfg, unit)

    monkeypatch.setattr(accuracy, 'run_unit', counting_run_unit)
    cache = tmp_path / 'cache'
    args = grid_args(cache)
    accuracy.run_grid(args)
    paths = {(r, u): accuracy.cell_path(str(cache), 'synthetic', r, u)
             for r in ('sum', 'sap1') for u in ('fold_0', 'fold_1')}
    assert all(osp.exists(p) for p in paths.values())
    assert len(calls) == 4
    with open(paths['sap1', 'fold_1']) as f:
        record = json.load(f)
    assert record['unit'] == 'fold_1' and record['readout'] == 'sap1'
    assert record['config']['heads'] == 1 and record['config']['folds'] == 2
    assert record['metric'] == 'acc' and 0 <= record['test'] <= 1

    # Delete one cell; age the others so a rewrite would show.
    os.remove(paths['sap1', 'fold_0'])
    before = {}
    for key, path in paths.items():
        if osp.exists(path):
            os.utime(path, ns=(10**18, 10**18))
            with open(path) as f:
                before[key] = f.read()
    calls.clear()
    accuracy.run_grid(args)
    assert calls == [('sap', 1, 'fold_0')]
    assert osp.exists(paths['sap1', 'fold_0'])
    for key, text in before.items():
        assert os.stat(paths[key]).st_mtime_ns == 10**18
        with open(paths[key]) as f:
            assert f.read() == text

    # The hook that accuracy.py calls renders this cache too.
    out = tmp_path / 'out'
    accuracy.render_all(str(cache), str(out))
    text = (out / 'accuracy.md').read_text()
    assert '| sap (1 head) |' in text and 'synthetic (accuracy)' in text


def test_grid_cell_is_a_compare_run(tmp_path):
    """A grid cell trains through the code of ``sap-graph compare``: the
    same fold, seed and record as the comparison engine's run of the
    same variant and configuration."""
    from sap_graph.experiments.compare import engine
    from sap_graph.experiments.train import plan_splits
    torch.set_num_threads(1)
    task = load_synthetic(num_graphs=60, min_pairs=3, max_pairs=6)
    cfg = accuracy.grid_config(grid_args(tmp_path), 'synthetic', 'sap1')
    plan = engine.RunPlan(task, cfg, [variants.VARIANTS['sap1']], [cfg.lr],
                       plan_splits(task, cfg))
    (run,) = [r for r in plan.runs if r.unit == 'fold_1']
    theirs = engine.execute_run(plan, run)
    ours = accuracy.run_unit(task, cfg, 'fold_1')
    assert ours['fold'] == 1 and ours['seed'] == theirs['seed'] == 1
    for key in ('test', 'val', 'test_acc', 'val_acc', 'best_epoch',
                'final_train_loss', 'chance_loss', 'train_size',
                'test_size'):
        assert ours[key] == theirs[key], key


def test_training_diagnostics(tmp_path):
    cache = tmp_path / 'cache'
    for k, (loss, epoch) in enumerate([(0.693, 2), (0.25, 48), (0.5, 30)]):
        write_cell(cache, 'NCI1', 'sap4', f'fold_{k}', .7, .7, folds=3)
        path = accuracy.cell_path(str(cache), 'NCI1', 'sap4', f'fold_{k}')
        with open(path) as f:
            record = json.load(f)
        accuracy.write_atomic(path, {**record, 'final_train_loss': loss,
                                     'best_epoch': epoch})
    write_cell(cache, 'NCI1', 'sum', 'fold_0', .7, .7, folds=3)  # No fields.
    cells = load.load_cache(str(cache))
    lines = protocol.training_lines(cells, ['NCI1'], ['sum', 'sap4'])
    rows = [line for line in lines if line.startswith('| NCI1')]
    assert rows == ['| NCI1 | sap (4 heads, concat) | 3 | 1 | 0.481 | '
                    '0.250-0.693 | 2-48 | 50 |']
    assert protocol.training_lines(cells, ['NCI1'], ['sum']) == []


def test_training_diagnostics_imbalanced_classes(tmp_path):
    # DD has 691 and 487 graphs per class: predicting those frequencies
    # costs their entropy, 0.678, below 0.98 ln 2 = 0.679, so the stuck
    # 0.6781 fold below is only found with the class frequencies.
    p = 691 / 1178
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert load.constant_loss('DD') == pytest.approx(entropy, rel=1e-12)
    assert load.constant_loss('NCI1') == pytest.approx(math.log(2), rel=1e-5)
    assert load.constant_loss('COLLAB') == pytest.approx(math.log(3))
    # ogbg-molhiv: the official training split, 1,232 actives of 32,901.
    q = 1232 / 32901
    assert load.constant_loss('ogbg-molhiv') == pytest.approx(
        -(q * math.log(q) + (1 - q) * math.log(1 - q)), rel=1e-12)
    assert load.constant_loss('ogbg-molpcba') is None
    cache = tmp_path / 'cache'
    for k, loss in enumerate([0.6781, 0.30]):
        write_cell(cache, 'DD', 'gmt', f'fold_{k}', .6, .6, folds=2)
        path = accuracy.cell_path(str(cache), 'DD', 'gmt', f'fold_{k}')
        with open(path) as f:
            record = json.load(f)
        accuracy.write_atomic(path, {**record, 'final_train_loss': loss,
                                     'best_epoch': 1 + k})
    lines = protocol.training_lines(load.load_cache(str(cache)), ['DD'],
                                    ['gmt'])
    assert [line for line in lines if line.startswith('| DD')] == [
        '| DD | gmt | 2 | 1 | 0.489 | 0.300-0.678 | 1-2 | 50 |']
    assert any('DD 0.678' in line for line in lines)


def test_render_command_names_non_default_paths(tmp_path):
    # The header of every rendering must be a command that rerenders it.
    assert ra.render_command(accuracy.CACHE, accuracy.RESULTS) == \
        'python -m benchmarks.accuracy --render'
    ablation = osp.join(accuracy.RESULTS, 'ablation_cache')
    out = osp.join(accuracy.RESULTS, 'ablation')
    assert ra.render_command(ablation, out) == (
        'python -m benchmarks.accuracy --render --cache '
        'benchmarks/results/ablation_cache --out benchmarks/results/ablation')
    assert ra.render_command(accuracy.CACHE, None, ablation) == (
        'python -m benchmarks.accuracy --render --select_lr_from '
        'benchmarks/results/ablation_cache --out <folder>')
    cache = tmp_path / 'cache'
    write_cell(cache, 'MUTAG', 'sum', 'fold_0', .8, .8, folds=1)
    ra.render(str(cache), str(tmp_path / 'out'))
    with open(tmp_path / 'out' / 'accuracy.md') as f:
        text = f.read()
    assert (f'`python -m benchmarks.accuracy --render --cache {cache} '
            f'--out {tmp_path / "out"}` refreshes it') in text


def test_choose_default_on_validation_with_census(tmp_path, monkeypatch):
    main, low = tmp_path / 'main', tmp_path / 'low'
    loss = dict(extra={'final_train_loss': 0.3})
    dead = dict(extra={'final_train_loss': 0.69})
    for d in ('MUTAG', 'PROTEINS'):
        # 'a': best validation on both datasets (the test scores, which
        # would favour 'b', are never read); 'c': better still, but its
        # collapsed runs (MUTAG, lr 0.01) rule it out.
        write_cells(main, d, 'a', [.1, .1], [.9, .8], folds=2, **loss)
        write_cells(low, d, 'a_lr1e-3', [.1, .1], [.7, .7], folds=2,
                    lr=0.001, **loss)
        write_cells(main, d, 'b', [.9, .9], [.6, .6], folds=2, **loss)
        write_cells(low, d, 'b_lr1e-3', [.9, .9], [.7, .6], folds=2,
                    lr=0.001, **loss)
        write_cells(main, d, 'c', [.9, .9], [.95, .95], folds=2,
                    **(dead if d == 'MUTAG' else loss))
        write_cells(low, d, 'c_lr1e-3', [.9, .9], [.5, .5], folds=2,
                    lr=0.001, **loss)
    # One rate only (not in the choice), but in the census: 'a' on
    # ogbg-molhiv at 0.001 (grid rate) and 0.01 (the '_lr1e-2' twin).
    for s, (name, lr, value) in enumerate([('a', 0.001, 0.10),
                                           ('a_lr1e-2', 0.01, 0.159),
                                           ('a_lr1e-2', 0.01, 0.12)]):
        write_cell(main, 'ogbg-molhiv', name, f'seed_{s}', .7, .7,
                   metric='rocauc', seeds=[0, 1, 2], lr=lr,
                   extra={'final_train_loss': value})
    out = tmp_path / 'choice.md'
    monkeypatch.setattr(sys, 'argv', [
        'choose_default.py', '--cache', str(main), '--select_lr_from',
        str(low), '--candidates', 'a', 'b', 'c', '--folds', '2', '--out',
        str(out)])
    choose_default.main()
    text = out.read_text()
    # Validation of the selected rate per fold: a (90, 80) -> 85.0;
    # b (70, 60) -> 65.0; c (95, 95) -> 95.0 but collapsed twice.
    assert table_row(text, '`a`') == ['`a`', '85.0', '85.0', '0', '2.00']
    assert table_row(text, '`b`') == ['`b`', '65.0', '65.0', '0', '3.00']
    assert table_row(text, '`c`') == ['`c`', '95.0', '95.0', '2', '1.00']
    assert 'Chosen: `a`' in text
    census = [ln for ln in text.splitlines() if ln.startswith('| `a` | 0.0')]
    # 0.159 >= 0.98 x 0.1597 (molhiv's constant loss): collapsed.
    assert census == ['| `a` | 0.01 | 0/2 | 0/2 | 1/2 |',
                      '| `a` | 0.001 | 0/2 | 0/2 | 0/1 |']


def test_readme_tables_copies_pages(tmp_path, monkeypatch):
    results = tmp_path / 'benchmarks' / 'results'
    results.mkdir(parents=True)
    (results / 'speed.md').write_text(
        '# Speed\n\nText.\n\n## Scaling\n\n![plot](speed.png) '
        '[abs](https://x.org/a.png)\n\n| a |\n|---|\n| 1 |\n')
    monkeypatch.setattr(readme_tables, 'HERE', str(tmp_path / 'benchmarks'))
    doc = tmp_path / 'docs' / 'perf.md'
    doc.parent.mkdir()
    doc.write_text('# Perf\n\n<!-- page:speed.md -->\nold\n'
                   '<!-- /page:speed.md -->\n\nEnd.\n')
    assert readme_tables.fill_file(str(doc), {}) == 1
    assert doc.read_text() == (
        '# Perf\n\n<!-- page:speed.md -->\n### Speed\n\nText.\n\n'
        '### Scaling\n\n![plot](../benchmarks/results/speed.png) '
        '[abs](https://x.org/a.png)\n\n| a |\n|---|\n| 1 |\n'
        '<!-- /page:speed.md -->\n\nEnd.\n')


@pytest.mark.parametrize('dataset,epochs,lr_step', [
    ('NCI1', 50, 25), ('REDDIT-BINARY', 20, 10)])
def test_grid_budget_matches_the_cached_cells(dataset, epochs, lr_step):
    """Without --epochs/--lr_step a dataset gets the budget its cached cells
    were run with (read from one committed cell)."""
    args = argparse.Namespace(root=None, device='cpu', seed=0,
                              use_node_attr=False, epochs=None, lr_step=None,
                              folds=10, ogb_epochs=10, ogb_hidden=64,
                              ogb_seeds=3)
    cfg = accuracy.grid_config(args, dataset, 'max')
    path = accuracy.cell_path(accuracy.CACHE, dataset, 'max', 'fold_0')
    if osp.exists(path):  # The committed grid.
        with open(path) as f:
            cached = json.load(f)['config']
        assert (cfg.epochs, cfg.lr_step) == (cached['epochs'],
                                             cached['lr_step'])
    assert (cfg.epochs, cfg.lr_step) == (epochs, lr_step)
    args.epochs, args.lr_step = 3, 0
    cfg = accuracy.grid_config(args, dataset, 'max')
    assert (cfg.epochs, cfg.lr_step) == (3, 0)
