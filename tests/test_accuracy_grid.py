"""The accuracy grid's renderer: tables, ranks, paired tests, learning-rate
selection and overrides, from fake cells."""
import csv

import pytest
from benchmark_cells import make_fake_cache, table_row, write_cell, write_cells

from benchmarks import render_accuracy as ra
from benchmarks import variants
from benchmarks.render import load, stats, tables


@pytest.fixture
def fake_cache(tmp_path):
    return make_fake_cache(tmp_path)


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
    results = {(r.dataset, r.readout): r for r in stats.paired_tests(
        cells, ['MUTAG', 'PROTEINS', 'ogbg-molhiv'], default_sap='sap4')}
    # MUTAG: baseline = 'mean' (best validation), not 'sum' (best test);
    # the incomplete 'max' is not a candidate.
    res = results['MUTAG', 'sap4']
    assert res.against == 'mean' and res.choice == 'default'
    assert res.diffs == pytest.approx([15, 15, 15, -5])
    assert res.mean_diff == pytest.approx(10.0)
    assert (res.wins, res.ties, res.losses) == (3, 0, 1)
    # |sum| >= 40 only for (+, +, +, +-5) and (-, -, -, +-5): 4 / 16.
    assert res.p_value == pytest.approx(0.25) and res.p_method == 'exact'
    # Best SAP by validation: sap1 (val 0.9 > 0.8).
    res = results['MUTAG', 'sap1']
    assert res.choice == 'best SAP by val' and res.against == 'mean'
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
