"""The one dispatch of the SAP core (:mod:`sap_graph.ops.dispatch`) and its
switches (:mod:`sap_graph.ops.env`): which path a batch takes, that the
path named is the one run, and that a CUDA tensor takes the Triton path
by default only on a GPU architecture that has passed the GPU check, or
with ``SAP_GRAPH_TRITON=1`` (a CPU tensor presented as a CUDA one)."""
import types

import pytest
import torch

import sap_graph.ops
from sap_graph.ops import dispatch, env
from sap_graph.ops.padded import lengths_to_mask
from tests.helpers import (
    SAP,
    assert_matches_reference,
    core_functions,
    make_batch,
)

SIZES = [3, 0, 4, 2]


@pytest.mark.parametrize('variable,name', [('SAP_GRAPH_NATIVE', 'native'),
                                           ('SAP_GRAPH_TRITON', 'triton')])
def test_one_parser_of_the_switches(monkeypatch, variable, name):
    monkeypatch.delenv(variable, raising=False)
    assert env.switch(name) == {'native': 'auto', 'triton': 'auto'}[name]
    for value, state in (('1', 'on'), (' ON ', 'on'), ('true', 'on'),
                         ('yes', 'on'), ('0', 'off'), ('off', 'off'),
                         ('False', 'off'), ('no', 'off')):
        monkeypatch.setenv(variable, value)
        assert env.switch(name) == state, value
    monkeypatch.setenv(variable, 'maybe')  # Unrecognised: the default.
    assert env.switch(name) == {'native': 'auto', 'triton': 'auto'}[name]
    assert set(env.switches()) == {'native', 'triton'}


def paths(backend, **kwargs):
    """The path of each kind of batch, from :func:`choose_path`."""
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = torch.randn(2, 8)
    padded = torch.randn(3, 5, 8)
    lengths = torch.tensor([2, 5, 0])
    scattered = torch.tensor([[1, 0, 1, 0, 1]] * 3).bool()
    return {
        'index': dispatch.choose_path(x, w, index, None, num_graphs),
        'ptr': dispatch.choose_path(x, w, None, ptr, num_graphs),
        'unsorted': dispatch.choose_path(x, w, index.flip(0), None,
                                         num_graphs),
        'dropout': dispatch.choose_path(x, w, index, ptr, num_graphs,
                                        dropout=0.5),
        'gated': dispatch.choose_path(x, w, index, ptr, num_graphs,
                                      gated=True),
        'float64 features': dispatch.choose_path(x.double(), w, index, ptr,
                                                 num_graphs),
        'lengths': dispatch.choose_path(
            padded, w, mask=lengths_to_mask(lengths, 5), lengths=lengths),
        'scattered mask': dispatch.choose_path(padded, w, mask=scattered),
    }


def test_choose_path_on_cpu(sap_backend):
    fused = 'native' if sap_backend == 'native' else 'torch'
    assert paths(sap_backend) == {
        'index': fused, 'ptr': fused, 'unsorted': 'torch',
        'dropout': 'torch', 'gated': 'torch',
        'float64 features': 'torch',  # Parameters float32: mixed dtypes.
        'lengths': fused, 'scattered mask': 'dense'}


def test_choose_path_infers_dim_size_as_the_layer(sap_backend):
    """dim_size=None, as the layer's call is given it: the same path as
    with the number of sets (a padded batch: 1 set per row)."""
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = torch.randn(2, 8)
    padded, lengths = torch.randn(3, 5, 8), torch.tensor([2, 5, 0])
    for args, kwargs in (((x, w, index, None), {}), ((x, w, None, ptr), {}),
                         ((padded, w, None, None), dict(lengths=lengths))):
        assert dispatch.choose_path(*args, None, **kwargs) == (
            dispatch.choose_path(*args, 1 if args[0] is padded
                                 else num_graphs, **kwargs))


def test_choose_path_while_compiling(monkeypatch):
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = torch.randn(2, 8)
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'compiled'
    lengths = torch.tensor([2, 5, 0])
    assert dispatch.choose_path(torch.randn(3, 5, 8), w,
                                mask=lengths_to_mask(lengths, 5),
                                lengths=lengths) == 'dense'


def test_choose_path_of_lengths_alone(sap_backend):
    fused = 'native' if sap_backend == 'native' else 'torch'
    assert dispatch.choose_path(torch.randn(2, 4, 8), torch.randn(4, 8),
                                lengths=torch.tensor([2, 3])) == fused


@pytest.mark.parametrize('residual', [None, 'max', 'mean'])
def test_a_trace_is_right_for_other_batches(sap_backend, residual):
    """``torch.jit.trace`` takes the capture paths, which read no values:
    a trace made on one batch (a sorted index, a ptr, full lengths) gives
    the eager result, values and gradients, on another (an unsorted index,
    other sizes with an empty graph, other lengths), not the path of the
    example baked in; the max residual included."""
    torch.manual_seed(0)
    aggr = SAP(4, heads=2, residual=residual).eval()

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.aggr = aggr

        def forward(self, x, index):
            return self.aggr(x, index, dim_size=3)

    class Ptr(Flat):
        def forward(self, x, ptr):
            return self.aggr(x, ptr=ptr)

    class Padded(Flat):
        def forward(self, x, lengths):
            return self.aggr(x, lengths=lengths)

    sorted_index = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.warns(Warning):  # jit.trace is deprecated.
        traced = {
            'index': torch.jit.trace(Flat(), (torch.randn(2, 6, 4),
                                              sorted_index)),
            'ptr': torch.jit.trace(Ptr(), (torch.randn(6, 4),
                                           torch.tensor([0, 2, 4, 6]))),
            'lengths': torch.jit.trace(Padded(), (torch.randn(3, 6, 4),
                                                  torch.tensor([6, 6, 6]))),
        }
    cases = [('index', torch.randn(2, 6, 4), torch.tensor([2, 0, 2, 1, 0, 2])),
             ('ptr', torch.randn(9, 4), torch.tensor([0, 0, 4, 9])),
             ('lengths', torch.randn(3, 6, 4), torch.tensor([2, 5, 0]))]
    for name, x, batch in cases:
        got_x = x.clone().requires_grad_()
        got = traced[name](got_x, batch)
        want_x = x.clone().requires_grad_()
        want = {'index': Flat(), 'ptr': Ptr(),
                'lengths': Padded()}[name](want_x, batch)
        torch.testing.assert_close(got, want)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(got_x.grad, want_x.grad)


def test_the_path_named_is_the_path_run(sap_backend):
    """The autograd graph holds the function of the path named, and the
    path is recorded for the run's provenance."""
    aggr = SAP(8, heads=2)
    x, index, ptr, num_graphs = make_batch(SIZES)
    expected = {'native': 'SAPNativeFunctionBackward',
                'torch': 'SAPPoolFunctionBackward'}
    for call in (dict(index=index), dict(ptr=ptr),
                 dict(index=index.flip(0))):
        path = dispatch.choose_path(x, aggr.score_weight(),
                                    dim_size=num_graphs, **call)
        out = aggr(x.requires_grad_(), dim_size=num_graphs, **call)
        assert core_functions(out) == {expected[path]}
        assert path in dispatch.paths_used()


def present_as_cuda(monkeypatch, triton_supports=True, checked=False):
    """CPU tensors look like CUDA tensors to the dispatch, of a GPU whose
    architecture has passed the GPU check or not (:obj:`checked`); a
    stand-in for the Triton module says whether it supports the inputs (no
    Triton or GPU is needed)."""
    monkeypatch.setattr(dispatch, 'device_type', lambda x: 'cuda')
    monkeypatch.setattr(dispatch, 'triton_checked', lambda x: checked)
    fake = types.SimpleNamespace(supports=lambda x, w: triton_supports)
    monkeypatch.setattr(sap_graph.ops, 'triton', fake, raising=False)
    monkeypatch.setattr(dispatch.importlib.util, 'find_spec',
                        lambda name: object())


def test_unchecked_gpu_takes_the_torch_path_without_the_switch(
        monkeypatch):
    """A (presented) CUDA batch on a GPU whose architecture has not passed
    the GPU check takes the PyTorch path unless ``SAP_GRAPH_TRITON=1``,
    and gives the reference's values and gradients."""
    present_as_cuda(monkeypatch)
    monkeypatch.delenv('SAP_GRAPH_TRITON', raising=False)
    torch.manual_seed(3)
    aggr = SAP(8, heads=2, residual='max')
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = aggr.score_weight()
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'torch'
    out = aggr(x.requires_grad_(), index, ptr, dim_size=num_graphs)
    assert core_functions(out) == {'SAPPoolFunctionBackward'}
    assert_matches_reference(aggr, x, index, num_graphs,
                             call=dict(index=index, ptr=ptr,
                                       dim_size=num_graphs))
    monkeypatch.setenv('SAP_GRAPH_TRITON', '0')
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'torch'


def test_checked_gpu_takes_triton_by_default(monkeypatch):
    """On a GPU of a checked architecture the Triton path is the default
    (switch unset or ``auto``); ``SAP_GRAPH_TRITON=0`` turns it off."""
    present_as_cuda(monkeypatch, checked=True)
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = torch.randn(2, 8)
    monkeypatch.delenv('SAP_GRAPH_TRITON', raising=False)
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'triton'
    monkeypatch.setenv('SAP_GRAPH_TRITON', 'auto')
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'triton'
    monkeypatch.setenv('SAP_GRAPH_TRITON', '0')
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'torch'


@pytest.mark.parametrize('capability,checked', [((9, 0), True),
                                                ((8, 0), False),
                                                ((8, 9), False),
                                                ((10, 0), False)])
def test_checked_architectures(monkeypatch, capability, checked):
    """Only the compute capabilities of :data:`TRITON_CHECKED` (9.0, where
    the GPU check passed) count as checked; CPU tensors never."""
    monkeypatch.setattr(dispatch, '_capability', lambda index: capability)
    monkeypatch.setattr(dispatch, 'triton_version', lambda: (3, 6, 0))
    x = torch.randn(3, 4)
    assert not dispatch.triton_checked(x)
    monkeypatch.setattr(torch.Tensor, 'is_cuda', property(lambda t: True))
    assert dispatch.triton_checked(x) == checked
    # Not on ROCm, whose MI200 also reports (9, 0).
    monkeypatch.setattr(torch.version, 'hip', '6.2.0')
    assert not dispatch.triton_checked(x)
    monkeypatch.setattr(torch.version, 'hip', None)
    # Older or unknown Triton releases: not checked either.
    for version in ((3, 5, 1), (2, 3), None):
        monkeypatch.setattr(dispatch, 'triton_version',
                            lambda version=version: version)
        assert not dispatch.triton_checked(x)


@pytest.mark.parametrize('text,version', [('3.6.0', (3, 6, 0)),
                                          ('3.7.0+git1234', (3, 7, 0)),
                                          ('3.6.0rc1', (3, 6, 0)),
                                          ('3.10', (3, 10))])
def test_triton_version_from_metadata(monkeypatch, text, version):
    from importlib import metadata
    dispatch.triton_version.cache_clear()
    monkeypatch.setattr(metadata, 'version', lambda name: text)
    try:
        assert dispatch.triton_version() == version
    finally:
        dispatch.triton_version.cache_clear()


def test_cuda_tensor_takes_triton_only_when_asked(monkeypatch):
    present_as_cuda(monkeypatch)
    x, index, ptr, num_graphs = make_batch(SIZES)
    w = torch.randn(2, 8)
    monkeypatch.setenv('SAP_GRAPH_TRITON', '1')
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'triton'
    # Not for unsorted batches (no sync to find out on a GPU: an index
    # alone counts as unsorted there), dropout, the gate, or inputs the
    # kernels do not support.
    monkeypatch.setattr(dispatch.Segments, '__init__', _unsorted_segments)
    assert dispatch.choose_path(x, w, index, None, num_graphs) == 'torch'
    monkeypatch.undo()
    present_as_cuda(monkeypatch, triton_supports=False)
    monkeypatch.setenv('SAP_GRAPH_TRITON', '1')
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'torch'
    present_as_cuda(monkeypatch)
    assert dispatch.choose_path(x, w, index, ptr, num_graphs,
                                dropout=0.1) == 'torch'
    assert dispatch.choose_path(x, w, index, ptr, num_graphs,
                                gated=True) == 'torch'
    # Triton not installed: the PyTorch path, whatever the switch.
    monkeypatch.setattr(dispatch.importlib.util, 'find_spec',
                        lambda name: None)
    assert dispatch.choose_path(x, w, index, ptr, num_graphs) == 'torch'


_original_init = dispatch.Segments.__init__


def _unsorted_segments(self, index, ptr, dim_size, heads):
    _original_init(self, index, ptr, dim_size, heads)
    if ptr is None:
        self.sorted = False  # As on a GPU.
