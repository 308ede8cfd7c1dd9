import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn.aggr import MeanAggregation, SortAggregation

from sap_graph import SAPAggregation
from sap_graph.experiments.models import GraphClassifier, load_checkpoint
from sap_graph.experiments.readouts import (
    READOUTS,
    UnknownReadoutError,
    readout_output_channels,
    resolve_readout,
)
from sap_graph.experiments.train import compute_loss, save_checkpoint


def make_batch(num_graphs=6, channels=8, edge_dim=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    data_list = []
    for i in range(num_graphs):
        n = 3 + i % 4
        src = torch.arange(n)
        dst = (src + 1) % n
        edge_index = torch.cat([torch.stack([src, dst]),
                                torch.stack([dst, src])], dim=1)
        data = Data(x=torch.randn(n, channels, generator=gen),
                    edge_index=edge_index, y=torch.tensor([i % 2]))
        if edge_dim is not None:
            data.edge_attr = torch.randn(edge_index.size(1), edge_dim,
                                         generator=gen)
        data_list.append(data)
    return Batch.from_data_list(data_list), data_list


def forward(model, batch):
    return model(batch.x, batch.edge_index, batch.batch,
                 edge_attr=getattr(batch, 'edge_attr', None), ptr=batch.ptr,
                 num_graphs=batch.num_graphs)


@pytest.mark.parametrize('name', list(READOUTS))
def test_every_readout_builds_and_trains_one_step(name):
    torch.manual_seed(0)
    batch, _ = make_batch()
    kwargs = {'heads': 2} if 'heads' in READOUTS[name].params else {}
    model = GraphClassifier(8, 16, 2, num_layers=2, readout=name,
                            readout_kwargs=kwargs)
    readout, width = resolve_readout(name, 16, **kwargs)
    assert model.readout_channels == width
    assert model.lin1.in_features == width  # The head reads the width.

    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    out = forward(model, batch)
    assert out.shape == (6, 2)
    loss = compute_loss(out, batch.y, 'multiclass')
    loss.backward()
    assert torch.isfinite(loss)
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith('readout.') for k in changed) or \
        not any(True for _ in model.readout.parameters())
    assert any(k.startswith('lin2.') for k in changed)


def test_readout_widths():
    assert resolve_readout('sum', 16)[1] == 16
    assert resolve_readout('mean', 16)[1] == 16
    assert resolve_readout('max', 16)[1] == 16
    assert resolve_readout('attention', 16)[1] == 16
    assert resolve_readout('set2set', 16)[1] == 32
    assert resolve_readout('sort', 16, k=5)[1] == 80
    assert resolve_readout('gmt', 16, heads=4)[1] == 16
    assert resolve_readout('set_transformer', 16, num_seed_points=2)[1] == 32
    sap, width = resolve_readout('sap', 16)  # 4 averaged heads keep 16.
    assert isinstance(sap, SAPAggregation) and width == 16
    assert resolve_readout('sap', 16, heads=4, concat=True)[1] == 64
    assert resolve_readout('sap', 16, heads=3, out_channels=5,
                           concat=True)[1] == 15
    # Names are case and dash insensitive.
    assert resolve_readout('Set-Transformer', 16)[1] == 16


def test_readout_instances_report_their_width():
    sap = SAPAggregation(16, out_channels=8, heads=3, concat=True)
    module, width = resolve_readout(sap, 16)
    assert module is sap and width == 24
    assert readout_output_channels(MeanAggregation(), 16) == 16
    # No width attribute: measured on a tiny input.
    assert readout_output_channels(SortAggregation(k=3), 16) == 48

    model = GraphClassifier(8, 16, 2, num_layers=2,
                            readout=SortAggregation(k=3))
    batch, _ = make_batch()
    assert model.lin1.in_features == 48
    assert forward(model, batch).shape == (6, 2)
    assert model.config is None  # Not plain data: cannot be checkpointed.


def test_readout_errors():
    with pytest.raises(UnknownReadoutError, match="'nope'.*sap"):
        resolve_readout('nope', 16)
    with pytest.raises(ValueError, match='does not take'):
        resolve_readout('mean', 16, heads=2)
    with pytest.raises(ValueError, match='cannot be applied'):
        resolve_readout(MeanAggregation(), 16, heads=2)
    with pytest.raises(UnknownReadoutError):
        GraphClassifier(8, 16, 2, readout='nope')
    with pytest.raises(ValueError, match='edge_dim'):
        GraphClassifier(8, 16, 2, conv='gine')
    with pytest.raises(ValueError, match='Unknown conv'):
        GraphClassifier(8, 16, 2, conv='gat')


@pytest.mark.parametrize('readout', ['sap', 'mean', 'set2set', 'gmt'])
def test_batched_equals_per_graph_and_ptr_path(readout):
    torch.manual_seed(0)
    batch, data_list = make_batch()
    model = GraphClassifier(8, 16, 2, num_layers=2, readout=readout).eval()
    out = forward(model, batch)
    without_ptr = model(batch.x, batch.edge_index, batch.batch)
    assert torch.allclose(out, without_ptr, atol=1e-5)
    for i, data in enumerate(data_list):
        single = model(data.x, data.edge_index)
        assert torch.allclose(out[i], single[0], atol=1e-5)


@pytest.mark.parametrize('readout', ['sap', 'sum', 'mean', 'set2set'])
def test_ptr_without_batch(readout):
    """``ptr`` alone (no ``batch`` vector) gives the graph of each node:
    the logits equal those with ``batch`` given, also with an empty graph
    (ptr alone failed: the readout took the whole batch for one graph); a
    ``ptr`` that does not fit the nodes is the layer's ValueError."""
    torch.manual_seed(1)
    batch, _ = make_batch()
    model = GraphClassifier(8, 16, 2, num_layers=2, readout=readout).eval()
    sizes = batch.ptr.diff().tolist()
    ptr = torch.tensor([0, *torch.tensor(sizes[:2] + [0] + sizes[2:])
                        .cumsum(0).tolist()])  # Graph 2 is empty.
    index = torch.arange(ptr.numel() - 1).repeat_interleave(ptr.diff())
    for p, b in ((batch.ptr, batch.batch), (ptr, index)):
        want = model(batch.x, batch.edge_index, b, ptr=p,
                     num_graphs=p.numel() - 1)
        got = model(batch.x, batch.edge_index, ptr=p)
        assert got.shape == (p.numel() - 1, 2)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(model(batch.x, batch.edge_index, ptr=p,
                                         num_graphs=p.numel() - 1), want)
    with pytest.raises(ValueError, match="'ptr' to run from 0 to"):
        model(batch.x, batch.edge_index, ptr=batch.ptr[:-1])


def test_node_permutation_invariance():
    torch.manual_seed(0)
    _, data_list = make_batch(num_graphs=1)
    data = data_list[0]
    model = GraphClassifier(8, 16, 2, num_layers=3, readout='sap',
                            readout_kwargs={'heads': 4}).eval()
    perm = torch.randperm(data.num_nodes)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(data.num_nodes)
    out = model(data.x, data.edge_index)
    out_perm = model(data.x[perm], inv[data.edge_index])
    assert torch.allclose(out, out_perm, atol=1e-5)


@pytest.mark.parametrize('conv,jk', [('gcn', 'last'), ('gin', 'cat'),
                                     ('gine', 'max')])
def test_convs_and_jumping_knowledge(conv, jk):
    torch.manual_seed(0)
    batch, _ = make_batch(edge_dim=3)
    model = GraphClassifier(8, 16, 3, num_layers=3, conv=conv, jk=jk,
                            readout='sap', edge_dim=3 if conv == 'gine'
                            else None)
    expected = 3 * 16 if jk == 'cat' else 16
    assert model.readout.in_channels == expected
    out = forward(model, batch)
    assert out.shape == (6, 3)
    assert torch.isfinite(out).all()
    if conv == 'gine':  # Edge features matter.
        model.eval()
        out1 = forward(model, batch)
        batch.edge_attr = batch.edge_attr + 1.0
        assert not torch.allclose(out1, forward(model, batch))


def test_ogb_encoders():
    pytest.importorskip('ogb')
    from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims
    torch.manual_seed(0)
    batch, _ = make_batch(edge_dim=3)
    atom_dims, bond_dims = get_atom_feature_dims(), get_bond_feature_dims()
    batch.x = torch.stack([torch.randint(0, d, (batch.num_nodes, ))
                           for d in atom_dims], dim=1)
    batch.edge_attr = torch.stack([
        torch.randint(0, d, (batch.edge_index.size(1), )) for d in bond_dims
    ], dim=1)
    model = GraphClassifier(9, 16, 1, num_layers=2, conv='gine',
                            node_encoder='atom', edge_encoder='bond',
                            readout='sap', readout_kwargs={'heads': 2})
    out = forward(model, batch)
    assert out.shape == (6, 1)
    loss = compute_loss(out, batch.y.float().view(-1, 1),
                        'binary classification')
    loss.backward()
    assert model.convs[0].bond_encoder.bond_embedding_list[0].weight.grad \
        is not None


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    batch, _ = make_batch()
    model = GraphClassifier(8, 16, 2, num_layers=2, readout='sap',
                            readout_kwargs={'heads': 2}).eval()
    path = tmp_path / 'model.pt'
    save_checkpoint(str(path), model, model.state_dict(), {'note': 'x'})
    state = torch.load(path, weights_only=True)  # Plain data only.
    assert state['config']['model']['readout'] == 'sap'
    assert state['config']['note'] == 'x'
    loaded = load_checkpoint(str(path))
    assert not loaded.training
    assert torch.allclose(forward(model, batch), forward(loaded, batch))
