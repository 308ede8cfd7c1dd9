"""The variant table of the repository benchmarks (``benchmarks/variants.py``)
against the committed cells: what the grid would train now under a cell's
name is what that cell was trained with."""
import argparse
import glob
import inspect
import json
import os.path as osp

import pytest

from benchmarks import accuracy, choose_default, variants
from benchmarks.render import load
from sap_graph import SAPAggregation

RESULTS = osp.join(osp.dirname(osp.dirname(osp.realpath(__file__))),
                   'benchmarks', 'results')
CACHES = ('accuracy_cache', 'ablation_cache', 'enzymes_attr_cache')

#: The layer's defaults in the versions the committed cells ran with
#: (0.1: normally initialised queries, no residual; 0.2 and 0.3: zero
#: queries and a residual to max pooling, kept in 0.4), written out here
#: independently of the table.
LAYER_DEFAULTS = {
    '0.1.0': {'query_init': 'normal', 'residual': None, 'size_scaler': None},
    '0.2.0': {'query_init': 'zeros', 'residual': 'max', 'size_scaler': None},
    '0.3.0': {'query_init': 'zeros', 'residual': 'max', 'size_scaler': None},
    '0.4.0': {'query_init': 'zeros', 'residual': 'max', 'size_scaler': None},
}


def _now_defaults():
    params = inspect.signature(SAPAggregation.__init__).parameters
    return {k: params[k].default
            for k in ('query_init', 'residual', 'size_scaler')}


def _effective(kwargs, defaults):
    out = {**defaults, **kwargs}
    if out['residual'] is True:  # 0.1's spelling of the mean residual.
        out['residual'] = 'mean'
    return out


def _committed_cells():
    """One record per (cache, dataset, readout) of the committed caches."""
    for cache in CACHES:
        for folder in sorted(glob.glob(osp.join(RESULTS, cache, '*', '*'))):
            files = sorted(glob.glob(osp.join(folder, '*.json')))
            if files:
                with open(files[0]) as f:
                    yield cache, json.load(f)


def _grid_args(record):
    config = record['config']
    return argparse.Namespace(
        root=None, device='cpu', seed=config['seed'],
        use_node_attr=bool(config.get('use_node_attr')), epochs=None,
        lr_step=None, folds=config.get('folds') or 10, ogb_epochs=10,
        ogb_hidden=64, ogb_seeds=3)


def test_every_committed_cell_is_its_table_entry():
    cells = list(_committed_cells())
    if not cells:
        pytest.skip('no committed caches in this checkout')
    now = _now_defaults()
    names = set()
    for cache, record in cells:
        name, config = record['readout'], record['config']
        names.add(name)
        assert name in variants.VARIANTS, (cache, name)
        cfg = accuracy.grid_config(_grid_args(record), record['dataset'],
                                   name)
        where = (cache, record['dataset'], name)
        assert cfg.readout == config['readout'], where
        assert cfg.lr == pytest.approx(config['lr']), where
        assert (cfg.epochs, cfg.lr_step) == (config['epochs'],
                                             config['lr_step']), where
        if config['readout'] in ('sap', 'set_transformer', 'gmt'):
            assert cfg.heads == config['heads'], where
        if config['readout'] == 'sap':
            then = LAYER_DEFAULTS[record['versions']['sap_graph']]
            assert cfg.concat == config['concat'], where
            assert (_effective(cfg.readout_kwargs, now)
                    == _effective(config['readout_kwargs'], then)), where
        else:
            assert cfg.readout_kwargs == config['readout_kwargs'] == {}
    # Every cell folder of the caches is a named variant of the table.
    assert len(names) >= 30


def test_pre_0_2_variants_keep_the_old_layer():
    """The grid readouts and ablations ran before 0.2: their entries pin
    the old defaults (the current layer's differ)."""
    assert _now_defaults() != LAYER_DEFAULTS['0.1.0']
    for name in ('sap1', 'sap4', 'sap4_mean', 'sap4_lr1e-3', 'sap4_div'):
        kwargs = variants.VARIANTS[name].options['readout_kwargs']
        assert kwargs['query_init'] == 'normal'
        assert kwargs['residual'] is None
    assert variants.VARIANTS['sap4_mean_res'].options['readout_kwargs'][
        'residual'] == 'mean'
    assert variants.VARIANTS['sap4'].options['concat'] is True
    assert variants.VARIANTS['sap4_mean'].options['concat'] is False


def test_learning_rate_twins():
    for name, v in variants.VARIANTS.items():
        twin = variants.VARIANTS.get(name + variants.LR_SUFFIX)
        if twin is not None:
            assert twin.readout == v.readout
            assert twin.options == {**v.options, 'lr': 0.001}
            assert 'with lr 0.001' in twin.label
    assert variants.VARIANTS['sap_max_lr1e-2'].options == {
        **variants.VARIANTS['sap_max'].options, 'lr': 0.01}


def test_scripts_read_the_one_table():
    # The renderer's names and order, the grid's choices and the
    # candidates of choose_default are the table's.
    assert list(load.READOUT_NAMES) == list(variants.VARIANTS)
    assert load.display('sap_max') == 'sap (4 heads avg, residual max)'
    assert load.display('not_a_variant') == 'not_a_variant'
    assert load.order_readouts(['sap_max', 'zz', 'sum', 'sap1']) == [
        'sum', 'sap1', 'sap_max', 'zz']
    assert set(variants.GRID) <= set(variants.VARIANTS)
    assert set(variants.DEFAULT_CANDIDATES) <= set(variants.VARIANTS)
    assert all(variants.is_sap(n) for n in variants.DEFAULT_CANDIDATES)
    assert variants.DEFAULT_SAP in variants.DEFAULT_CANDIDATES
    assert choose_default.DEFAULT_CANDIDATES is variants.DEFAULT_CANDIDATES
