"""Hostile input to the layer (issue 18, layer side): the kernel build
cache, int32 batch vectors, an :obj:`index` that disagrees with
:obj:`ptr`, multi-head SAP inside PyG's convolutions and mixed precision.
Values are checked against the float64 reference of
:mod:`tests.reference`."""
import os.path as osp
import threading
import warnings

import pytest
import torch
import torch.utils.cpp_extension as cpp_extension

from sap_graph import SAPAggregation
from sap_graph.ops import native as _native
from sap_graph.ops.compiled import pool_compiled
from sap_graph.ops.torch import Segments, pool_torch
from tests.helpers import (
    SAP,
    core_batch,
    core_functions,
    make_batch,
    outputs_and_grads,
    reference_and_grads,
)
from tests.reference import sap_reference

# The fused kernels' build cache ###########################################


def test_extension_name_follows_source_install_and_torch(tmp_path,
                                                         monkeypatch):
    flags = list(_native._FLAGS)
    name = _native._extension_name(flags)
    assert name == _native._extension_name(flags)  # Deterministic.
    assert name.startswith('sap_graph_native_')
    source = open(_native._SOURCE, 'rb').read()

    # The same kernels in another installation get their own build.
    other = tmp_path / 'sap_pool.cpp'
    other.write_bytes(source)
    monkeypatch.setattr(_native, '_SOURCE', str(other))
    other_install = _native._extension_name(flags)
    assert other_install != name
    # Changed kernels (an upgrade in place) get a new build.
    other.write_bytes(source + b'\n// changed\n')
    assert _native._extension_name(flags) not in (name, other_install)
    other.write_bytes(source)
    assert _native._extension_name(flags) == other_install
    # Other flags or another torch never load this build either.
    assert _native._extension_name(flags + ['-g']) != other_install
    monkeypatch.setattr(torch, '__version__', '0.0.0+other')
    assert _native._extension_name(flags) != other_install


@pytest.fixture()
def fake_load(tmp_path, monkeypatch):
    """A stand-in for torch's JIT build into ``$TORCH_EXTENSIONS_DIR`` (a
    temporary folder): records the names it builds and writes the library
    the way the real build does."""
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    built = []

    def load(name, sources, build_directory, **kwargs):
        # torch's baton, which it would wait on forever, is gone.
        assert not osp.exists(osp.join(build_directory, 'lock'))
        assert sources == [_native._SOURCE]
        assert build_directory == str(tmp_path / name)
        built.append(name)
        open(osp.join(build_directory, f'{name}.so'), 'w').close()
        return f'module {name}'

    monkeypatch.setattr(cpp_extension, 'load', load)
    return built


def test_build_announces_itself_once(fake_load, tmp_path, capfd):
    name = _native._extension_name(list(_native._FLAGS))
    # A build killed earlier left torch's baton file behind.
    (tmp_path / name).mkdir()
    (tmp_path / name / 'lock').write_bytes(b'')
    assert _native._build() == f'module {name}'
    assert fake_load == [name]
    err = capfd.readouterr().err
    assert err.count('sap_graph: building fused CPU kernels') == 1
    assert err.strip().count('\n') == 0  # One line.
    # Finding the finished build (another process built it) is quiet.
    assert _native._build() == f'module {name}'
    assert 'building' not in capfd.readouterr().err


def test_concurrent_builds_wait_for_the_lock(fake_load, tmp_path, capfd):
    name = _native._extension_name(list(_native._FLAGS))
    lock = tmp_path / name / 'sap_graph_build.lock'
    lock.parent.mkdir()
    result = []
    with _native._file_lock(str(lock)):  # Another process is building.
        worker = threading.Thread(
            target=lambda: result.append(_native._build()))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and fake_load == []  # It waits.
        (lock.parent / f'{name}.so').write_bytes(b'')  # Build finished.
    worker.join(30)
    assert not worker.is_alive()
    # It then loads the finished build (torch's load finds it up to date)
    # instead of announcing and starting its own.
    assert result == [f'module {name}'] and fake_load == [name]
    assert 'building' not in capfd.readouterr().err


# int32 batch vectors ######################################################

SIZES = [3, 0, 5, 1, 7, 0, 2]


INT32_LAYOUTS = {  # (index, ptr) given to the layer.
    'index': lambda index, ptr: (index.int(), None),
    'ptr': lambda index, ptr: (None, ptr.int()),
    'index and ptr': lambda index, ptr: (index.int(), ptr.int()),
    'int32 index, int64 ptr': lambda index, ptr: (index.int(), ptr),
    'int64 index, int32 ptr': lambda index, ptr: (index, ptr.int()),
}


@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('layout', list(INT32_LAYOUTS))
def test_int32_index_and_ptr(sap_backend, layout, masked):
    """A sorted int32 batch (forward and backward) on the fused kernels and
    on the PyTorch path, against the float64 reference."""
    torch.manual_seed(1)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, 4, heads=2, query_init='normal',
               residual='mean')
    mask = None
    if masked:
        mask = torch.rand(x.size(0), generator=torch.Generator()
                          .manual_seed(2)) > 0.3
    cot = torch.randn(num_graphs, aggr.output_channels, dtype=torch.float64)
    ref, ref_alpha, ref_grads = reference_and_grads(aggr, x, index,
                                                    num_graphs, cot, mask)
    index32, ptr32 = INT32_LAYOUTS[layout](index, ptr)
    x = x.requires_grad_()
    out, alpha = aggr(x, index32, ptr32, dim_size=num_graphs, mask=mask,
                      return_attention_weights=True)
    if not masked:  # The sorted int32 batch takes the backend under test.
        expected = {'native': 'SAPNativeFunctionBackward',
                    'torch': 'SAPPoolFunctionBackward'}[sap_backend]
        assert core_functions(out) == {expected}
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alpha.double(), ref_alpha, rtol=1e-5,
                               atol=1e-6)
    (out * cot.float()).sum().backward()
    grads = {'x': x.grad, **{n: p.grad for n, p in aggr.named_parameters()}}
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(
            grad.double(), ref_grads[name], rtol=1e-4, atol=1e-4,
            msg=lambda m, name=name: f'{name}: {m}')


@pytest.mark.parametrize('with_ptr', [False, True])
def test_int32_segments_core(sap_backend, with_ptr):
    """The SAP core (:func:`sap_graph.ops.torch.pool_torch`) on a sorted
    int32 batch, against plain float64 autograd on an int64 one."""
    x, w, index, ptr, num_graphs = core_batch([3, 0, 5, 1, 7], 6, 2)
    ref = outputs_and_grads(
        lambda x, w: pool_compiled(x, w, index, num_graphs), x, w)
    seg = Segments(index.int(), ptr.int() if with_ptr else None,
                   num_graphs, 2)
    assert seg.sorted and seg.ptr.dtype == torch.long
    got = outputs_and_grads(lambda x, w: pool_torch(x, w, seg), x, w)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


# index and ptr that disagree ##############################################

DISAGREEING = {  # (index, ptr, node, index there, ptr's graph there)
    'boundary moved': ([0, 0, 1, 1, 1], [0, 3, 5], 2, 1, 0),
    'unsorted index': ([0, 1, 0, 1, 1], [0, 2, 5], 1, 1, 0),
    'other batch': ([0, 0, 0, 0, 1], [0, 1, 5], 1, 0, 1),
    'int32, empty graph': ([0, 0, 0, 0, 0], [0, 0, 5], 0, 0, 1),
}


@pytest.mark.parametrize('leading', [False, True])
@pytest.mark.parametrize('case', list(DISAGREEING))
def test_index_and_ptr_must_agree(sap_backend, case, leading):
    """Both paths refuse the same inconsistent batches (the fused kernels
    followed 'ptr', the PyTorch path mixed both) and name what they got
    and what was expected."""
    index, ptr, node, got, graph = DISAGREEING[case]
    index, ptr = torch.tensor(index), torch.tensor(ptr)
    if case.startswith('int32'):
        index, ptr = index.int(), ptr.int()
    aggr = SAP(4, heads=2)
    x = torch.randn(2, 5, 4) if leading else torch.randn(5, 4)
    expected = torch.repeat_interleave(torch.arange(2), ptr.diff())
    with pytest.raises(ValueError) as info:
        aggr(x, index, ptr, dim_size=2)
    message = str(info.value)
    assert "'index' and 'ptr' disagree" in message
    if not leading:  # (Else it names the batch of all leading positions.)
        assert f'got \'index\' {index.tolist()}' in message
        assert f'expected {expected.tolist()}' in message
        assert (f'puts node {node} in graph {graph} but \'index\' holds '
                f'{got} there') in message
    # Either one alone is a valid batch.
    for kwargs in (dict(index=index), dict(ptr=ptr)):
        assert aggr(x, **kwargs, dim_size=2).shape[-2:] == (2, 8)


# Mixed precision ##########################################################

MIXED = [  # (features, layer)
    (torch.float16, torch.float32),
    (torch.bfloat16, torch.float32),
    (torch.float64, torch.float32),
    (torch.float32, torch.bfloat16),
]


@pytest.mark.parametrize('kwargs', [dict(heads=2), dict(
    heads=2, gated=True, residual='mean', concat=False)])
@pytest.mark.parametrize('dtypes', MIXED, ids=str)
def test_mixed_dtypes_are_a_clear_error(sap_backend, dtypes, kwargs):
    """Features in another dtype than the layer's parameters (outside
    autocast) are refused up front on both paths, like torch.nn.Linear
    does, with what to do (they failed inside the value projection)."""
    x_dtype, layer_dtype = dtypes
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, **kwargs).to(layer_dtype)
    for batch in (dict(index=index), dict(ptr=ptr)):
        with pytest.raises(ValueError) as info:
            aggr(x.to(x_dtype), **batch, dim_size=num_graphs)
        message = str(info.value)
        assert f'{x_dtype} node features' in message
        assert f'parameters are {layer_dtype}' in message
        assert 'torch.autocast' in message and f'x.to({layer_dtype})' in message
    # The same batch in the layer's dtype is fine.
    out = aggr(x.to(layer_dtype), index, ptr, dim_size=num_graphs)
    assert out.dtype == layer_dtype and torch.isfinite(out).all()


@pytest.mark.parametrize('kwargs', [dict(heads=2), dict(
    heads=2, gated=True, residual='mean', concat=False)])
def test_bfloat16_features_into_float32_layer_under_autocast(sap_backend,
                                                             kwargs):
    """Under CPU autocast a bfloat16 batch (the output of an autocast
    linear layer) into a float32 layer works, close to the reference."""
    torch.manual_seed(3)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, query_init='normal', **kwargs)
    x = x.to(torch.bfloat16)
    ref, _ = sap_reference(aggr, x.double(), index, num_graphs)
    x.requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = aggr(x, index, ptr, dim_size=num_graphs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()
    assert torch.isfinite(aggr.query.grad).all()


# Multi-head SAP inside PyG's convolutions #################################

# Widths that keep in_channels (16), as PyG's convolutions assume.
KEEPS_WIDTH = {
    'one head': dict(heads=1),
    'heads averaged': dict(heads=4, concat=False),
    'heads * out_channels == in_channels': dict(heads=4, out_channels=4),
}


def neighbourhood(num_nodes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, 16, generator=gen)
    # Targets sorted (the fused kernels on CPU); 0 and 5..9 get no message.
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 6, 7, 8, 9],
                               [1, 1, 2, 3, 3, 4, 4, 4, 4]])
    return x, edge_index


@pytest.mark.parametrize('form', list(KEEPS_WIDTH))
def test_sap_in_sage_conv(sap_backend, form):
    from torch_geometric.nn import SAGEConv
    torch.manual_seed(4)
    aggr = SAP(16, query_init='normal', **KEEPS_WIDTH[form])
    assert aggr.output_channels == 16
    conv = SAGEConv(16, 32, aggr=aggr)
    x, edge_index = neighbourhood()
    out = conv(x, edge_index)
    agg, _ = sap_reference(aggr, x[edge_index[0]], edge_index[1], x.size(0))
    expected = conv.lin_l(agg.float()) + conv.lin_r(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(aggr.query.grad).all()


@pytest.mark.parametrize('form', list(KEEPS_WIDTH))
def test_sap_in_multi_aggregation_cat(sap_backend, form):
    from torch_geometric.nn import SAGEConv
    from torch_geometric.nn.aggr import MultiAggregation
    torch.manual_seed(5)
    aggr = SAP(16, query_init='normal', **KEEPS_WIDTH[form])
    multi = MultiAggregation([aggr, 'mean'], mode='cat')
    conv = SAGEConv(16, 32, aggr=multi)
    x, edge_index = neighbourhood()
    out = conv(x, edge_index)
    src, dst = edge_index
    sap, _ = sap_reference(aggr, x[src], dst, x.size(0))
    mean = torch.zeros(x.size(0), 16).index_add_(0, dst, x[src])
    mean = mean / torch.bincount(dst, minlength=x.size(0)).clamp(min=1)[
        :, None]
    expected = (conv.lin_l(torch.cat([sap.float(), mean], dim=-1)) +
                conv.lin_r(x))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_wider_sap_as_readout_and_its_limit_in_convs(sap_backend):
    """Outside a convolution any width works (here a cat of a 64-wide SAP
    and a mean); inside one, PyG sizes the layer after the aggregation for
    in_channels, so a wider SAP fails there (the documented limit)."""
    from torch_geometric.nn import SAGEConv
    from torch_geometric.nn.aggr import MultiAggregation
    torch.manual_seed(6)
    x, index, ptr, num_graphs = make_batch(SIZES, channels=16)
    aggr = SAP(16, heads=4, query_init='normal')  # 64 wide.
    multi = MultiAggregation([aggr, 'mean'], mode='cat')
    out = multi(x, index, ptr=ptr, dim_size=num_graphs)
    sap, _ = sap_reference(aggr, x, index, num_graphs)
    torch.testing.assert_close(out[:, :64].double(), sap, rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(
        out[:, 64:], aggr.reduce(x, index, dim_size=num_graphs,
                                 reduce='mean'))
    x, edge_index = neighbourhood()
    for aggr in (SAP(16, heads=4), SAPAggregation(16, 4),
                 MultiAggregation([SAP(16, heads=4), 'mean'], mode='cat')):
        # PyG's own shape error comes next; the warning says what to do.
        with pytest.warns(UserWarning, match=r"(?s)channels inside 'SAGEC"
                          r"onv'.*keeps in_channels=16: use out_channels=16"):
            with pytest.raises(RuntimeError, match='cannot be multiplied'):
                SAGEConv(16, 32, aggr=aggr)(x, edge_index)


def test_width_check_is_silent_where_widths_are_fine(sap_backend):
    from torch_geometric.nn import SAGEConv
    x, edge_index = neighbourhood()
    index = torch.tensor([0] * 4 + [1] * 6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        SAGEConv(16, 32, aggr=SAPAggregation(16, heads=4))(x, edge_index)
        wide = SAP(16, heads=4)  # A wide readout, twice.
        assert wide(x, index).shape == (2, 64)
        assert wide(x, index).shape == (2, 64)
