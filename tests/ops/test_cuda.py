"""The GPU path: everything a user runs on CUDA against the same computation
in float64 on the CPU (and against the independent reference of
:mod:`tests.reference`).

Runs only where CUDA is available (CI has no GPU; the README says where
these were last run). On CUDA the SAP core takes the Triton kernels of
:mod:`sap_graph.ops.triton` for sorted batches (``ptr`` given) without
attention dropout or gate when Triton is installed, by default on GPUs of
compute capability 9.0 (H100/H200, where this module passed) and on any
GPU with ``SAP_GRAPH_TRITON=1`` (``benchmarks/gpu_check.sh`` sets it); the
pure-PyTorch
:class:`~sap_graph.ops.torch.SAPPoolFunction` otherwise (the fused C++
kernels are CPU-only). :mod:`tests.ops.test_cuda_triton` checks the Triton
kernels themselves; ``benchmarks/gpu_check.sh`` runs both modules.
"""
import copy
from functools import partial

import pytest
import torch

from sap_graph.experiments.models import GraphClassifier
from sap_graph.ops import native as _native
from sap_graph.ops import torch as _ops
from sap_graph.ops.compiled import pool_compiled
from sap_graph.regularizers import attention_entropy, diversity_penalty
from tests import helpers
from tests.helpers import SAP
from tests.reference import sap_reference

make_batch = partial(helpers.make_batch, channels=16)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')

SIZES = [3, 0, 5, 1, 7, 0, 40, 2, 0]


def grads(module, x, out, seed=3):
    gen = torch.Generator().manual_seed(seed)
    cot = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (out * cot.to(out.device, out.dtype)).sum().backward()
    return {'x': x.grad.double().cpu(),
            **{n: p.grad.double().cpu()
               for n, p in module.named_parameters()}}


@pytest.mark.parametrize('kwargs', [
    dict(heads=1),
    dict(heads=4, concat=True),
    dict(heads=4, concat=False, residual='mean', out_channels=16),
    dict(heads=3, gated=True, learn_temperature=True),
    dict(heads=8, key_channels=4, temperature=0.5),
])
@pytest.mark.parametrize('layout', ['ptr', 'sorted index', 'shuffled'])
def test_forward_backward_match_cpu(kwargs, layout):
    shuffle, with_ptr = layout == 'shuffled', layout == 'ptr'
    torch.manual_seed(0)
    x, index, ptr, num_graphs = make_batch(SIZES, shuffle=shuffle)
    aggr = SAP(16, **{'out_channels': 8, **kwargs})
    ref = copy.deepcopy(aggr).double()
    ref_out, ref_alpha = sap_reference(aggr, x, index, num_graphs)

    gpu = aggr.cuda()
    xg = x.detach().cuda().requires_grad_()
    out, alpha = gpu(xg, index.cuda(), ptr.cuda() if with_ptr else None,
                     dim_size=num_graphs, return_attention_weights=True)
    assert out.device.type == 'cuda' and out.dtype == torch.float32
    torch.testing.assert_close(out.double().cpu(), ref_out, rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(alpha.double().cpu(), ref_alpha, rtol=1e-4,
                               atol=1e-6)
    # Empty graphs pool to exact zeros (the residual adds no mean there).
    empty = torch.tensor(SIZES) == 0
    assert (out[empty.cuda()] == 0).all()

    xc = x.detach().double().requires_grad_()
    ref_grads = grads(ref, xc, ref(xc, index, dim_size=num_graphs))
    gpu_grads = grads(gpu, xg, out)
    assert ref_grads.keys() == gpu_grads.keys()
    for name, g in gpu_grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4,
                                   atol=1e-5, msg=name)


@pytest.mark.parametrize('gather', [True, False])
@pytest.mark.parametrize('heads,channels', [(1, 5), (4, 37)])
def test_core_matches_autograd(monkeypatch, gather, heads, channels):
    """The hand-written backward of the SAP core on the GPU, with either
    sampled product, against plain autograd on the CPU in float64."""
    from tests.helpers import core_batch as batch
    from tests.helpers import outputs_and_grads
    monkeypatch.setattr(_ops, 'GATHER_SAMPLED_ON_GPU', gather)
    sizes = [0, 3, 1, 0, 40, 7, 0, 1, 0]
    x, w, index, ptr, num_graphs = batch(sizes, channels, heads)
    ref = outputs_and_grads(
        lambda x, w: pool_compiled(x, w, index, num_graphs), x, w)
    for sorted_ in (True, False):
        seg = _ops.Segments(index.cuda(), ptr.cuda() if sorted_ else None,
                            num_graphs, heads)
        assert seg.sorted == sorted_  # No sync to find out on the GPU.
        got = outputs_and_grads(
            lambda x, w, seg=seg: _ops.SAPPoolFunction.apply(
                x, w, None, seg, 0.0),
            x.cuda(), w.cuda())
        for a, b in zip(got, ref, strict=True):
            assert a.is_cuda
            torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-10)


def test_no_host_sync_in_forward_backward():
    """A forward and backward with ``ptr`` and ``dim_size`` never waits
    for the GPU (PyG's own aggregations do not either)."""
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(16, heads=4).cuda()
    xg = x.cuda().requires_grad_()
    ig, pg = index.cuda(), ptr.cuda()
    aggr(xg, ig, pg, dim_size=num_graphs).sum().backward()  # Warm-up.
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        aggr(xg, ig, pg, dim_size=num_graphs).sum().backward()
        aggr(xg, ig, dim_size=num_graphs).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')


def test_cuda_uses_pure_pytorch_path(monkeypatch):
    calls = []
    monkeypatch.setattr(_native.SAPNativeFunction, 'apply',
                        lambda *a: calls.append(a))
    x, index, ptr, num_graphs = make_batch([4, 6, 9])
    aggr = SAP(16, heads=2).cuda()
    out = aggr(x.cuda(), index.cuda(), ptr.cuda(), dim_size=num_graphs)
    assert calls == [] and out.is_cuda


@pytest.mark.parametrize('given', ['lengths', 'mask', 'scattered mask'])
def test_padded_batch_with_cpu_lengths_or_mask(given):
    """A padded CUDA batch with its lengths or mask on the CPU (as
    pack_padded_sequence wants lengths) pools as the same batch on the CPU,
    NaN padding included."""
    torch.manual_seed(4)
    aggr = SAP(16, heads=2)
    x = torch.randn(3, 5, 16)
    lengths = torch.tensor([2, 5, 0])
    mask = torch.arange(5) < lengths[:, None]
    if given == 'scattered mask':
        mask = torch.tensor([[1, 0, 1, 0, 1], [1] * 5, [0] * 5]).bool()
    x[~mask] = float('nan')
    call = dict(lengths=lengths) if given == 'lengths' else dict(mask=mask)
    ref = aggr(x, **call)
    out = aggr.cuda()(x.cuda(), **call)
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-5)


def test_attention_dropout_on_cuda():
    """Dropout on the attention weights in training mode: outputs vary from
    call to call, their mean is the eval-mode output (kept weights are
    rescaled by 1 / (1 - p)), and eval mode matches the reference."""
    torch.manual_seed(0)
    x, index, ptr, num_graphs = make_batch([30, 50, 0, 12])
    aggr = SAP(16, heads=4, dropout=0.3).cuda()
    xg, ig = x.cuda(), index.cuda()
    aggr.eval()
    out_eval = aggr(xg, ig, dim_size=num_graphs)
    ref, _ = sap_reference(aggr.cpu(), x, index, num_graphs)
    torch.testing.assert_close(out_eval.double().cpu(), ref, rtol=1e-4,
                               atol=1e-5)
    aggr.cuda().train()
    with torch.no_grad():
        runs = torch.stack([aggr(xg, ig, dim_size=num_graphs)
                            for _ in range(2000)])
    assert (runs[0] != runs[1]).any()
    assert (runs[:, 2] == 0).all()  # The empty graph stays zero.
    err = (runs.mean(0) - out_eval).abs().max() / out_eval.abs().max()
    assert err < 0.05, err


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_half_precision(dtype):
    torch.manual_seed(0)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(16, 8, heads=4).cuda()
    ref, _ = sap_reference(aggr.cpu(), x, index, num_graphs)
    aggr.cuda()
    with torch.autocast('cuda', dtype=dtype):
        out = aggr(x.cuda(), index.cuda(), ptr.cuda(), dim_size=num_graphs)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double().cpu(), ref, rtol=0.05,
                               atol=0.05)
    # Raw half inputs (no autocast) are promoted inside and come back in
    # their own dtype.
    out = aggr.to(dtype)(x.cuda().to(dtype), index.cuda(),
                         dim_size=num_graphs)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double().cpu(), ref, rtol=0.05,
                               atol=0.05)


def test_regularizers_match_cpu():
    torch.manual_seed(0)
    x, index, _, num_graphs = make_batch(SIZES)
    aggr = SAP(16, heads=4)
    _, alpha = aggr(x, index, dim_size=num_graphs,
                    return_attention_weights=True)
    for fn in (diversity_penalty, attention_entropy):
        cpu = fn(alpha.double(), index, num_graphs)
        gpu = fn(alpha.cuda(), index.cuda(), num_graphs)
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.double().cpu(), cpu, rtol=1e-4,
                                   atol=1e-6)


@pytest.mark.parametrize('readout,kwargs', [
    ('sum', {}), ('mean', {}), ('max', {}), ('attention', {}),
    ('set2set', {}), ('set_transformer', {'heads': 4}),
    ('gmt', {'heads': 4}), ('sap', {'heads': 4}),
    ('sap', {'heads': 4, 'concat': True, 'residual': 'mean'}),
])
def test_models_match_cpu(readout, kwargs):
    """Every readout inside the GIN classifier gives the same logits and
    gradients on CUDA as in float64 on the CPU."""
    from torch_geometric.data import Batch, Data
    torch.manual_seed(0)
    graphs = []
    for n in [5, 9, 1, 14, 7]:
        edge_index = torch.randint(0, n, (2, 3 * n))
        graphs.append(Data(x=torch.randn(n, 7), edge_index=edge_index))
    batch = Batch.from_data_list(graphs)
    # Training mode (cuDNN's LSTM in set2set has no backward in eval mode)
    # without dropout: batch statistics are the same on both devices.
    model = GraphClassifier(7, 32, 3, num_layers=3, readout=readout,
                            readout_kwargs=kwargs, dropout=0.0).train()
    ref = copy.deepcopy(model).double()
    out_ref = ref(batch.x.double(), batch.edge_index, batch.batch,
                  num_graphs=batch.num_graphs)
    out_ref.square().sum().backward()
    gpu = model.cuda()
    b = batch.cuda()
    out = gpu(b.x, b.edge_index, b.batch, num_graphs=b.num_graphs)
    out.square().sum().backward()
    torch.testing.assert_close(out.double().cpu(), out_ref, rtol=1e-3,
                               atol=1e-4)
    for (name, p), (_, q) in zip(gpu.named_parameters(),
                                 ref.named_parameters(), strict=True):
        if q.grad is None:
            assert p.grad is None or (p.grad == 0).all(), name
            continue
        torch.testing.assert_close(p.grad.double().cpu(), q.grad,
                                   rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.compile
def test_compile_matches_eager_on_cuda():
    torch.manual_seed(0)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(16, 8, heads=4).cuda()
    xg, ig = x.cuda(), index.cuda()
    eager = aggr(xg, ig, dim_size=num_graphs)
    compiled = torch.compile(aggr, fullgraph=True)
    out = compiled(xg, ig, dim_size=num_graphs)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)


def test_training_on_cuda(small_task, tmp_path):
    """A short cross-validation run on the GPU learns the synthetic task and
    records the device it ran on."""
    from sap_graph.experiments.train import TrainConfig, run
    cfg = TrainConfig(dataset='synthetic', device='cuda', epochs=40,
                      folds=2, heads=4, progress=False, verbose=False,
                      out=str(tmp_path / 'result.json'))
    result = run(cfg, task=small_task)
    assert result['device']['type'] == 'cuda'
    assert result['device']['gpu'] == torch.cuda.get_device_name()
    assert result['test_mean'] > 0.85  # 0.93-0.95 on the CPU (3 seeds).
