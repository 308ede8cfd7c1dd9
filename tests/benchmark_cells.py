"""Fake cells of the accuracy grid's cache, shared by its tests."""
from typing import List, Optional

from benchmarks import accuracy


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


def make_fake_cache(tmp_path):
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
