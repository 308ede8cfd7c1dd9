"""Library pieces of the fusion example
(:mod:`sap_graph.experiments.seq.fusion`) on synthetic inputs: graph
fingerprints, the fusion head with missing modalities and no molecules,
the width and heads of the SAP readouts (which both examples check before
loading data), the GIN encoder, the training loop and the seeded stage 1
of the encoders."""
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Batch, Data

from sap_graph.experiments.seq.fusion import (
    FusionHead,
    GINEncoder,
    graph_fingerprints,
    modality_dropout,
)
from sap_graph.experiments.seq.loop import (
    fit_sequences,
    markdown_table,
    mean_std,
)
from sap_graph.experiments.seq.models import TokenReadout
from tests.test_seq_experiments import tiny_task


def test_graph_fingerprints_are_permutation_invariant():
    x = torch.randint(0, 5, (5, 3))
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4],
                               [1, 0, 2, 1, 3, 2, 4, 3]])
    edge_attr = torch.randint(0, 3, (8, 2))
    batch = torch.zeros(5, dtype=torch.long)
    fp = graph_fingerprints(x, edge_index, edge_attr, batch, 1, bits=64)
    assert fp.shape == (1, 64) and fp.sum() > 0
    perm = torch.tensor([4, 2, 0, 1, 3])  # New node i is old node perm[i].
    inv = torch.argsort(perm)
    fp2 = graph_fingerprints(x[perm], inv[edge_index], edge_attr, batch, 1,
                             bits=64)
    assert torch.equal(fp, fp2)


@pytest.mark.parametrize('channels,heads', [(32, 4), (30, 3), (8, 8)])
def test_sap_readouts_give_the_width_they_declare(channels, heads):
    h, mask = torch.randn(2, 5, channels), torch.ones(2, 5, dtype=torch.bool)
    readout = TokenReadout('sap', channels, heads)
    assert readout(h, mask).shape == (2, channels) == (
        2, readout.out_channels)
    head = FusionHead('sap', [8, 16, 4], channels, heads=heads)
    emb = [torch.randn(2, c) for c in (8, 16, 4)]
    assert head.fuse(emb, torch.ones(2, 3, dtype=torch.bool))[0].shape == (
        2, channels)
    assert head(emb, torch.ones(2, 3, dtype=torch.bool)).shape == (2, )


@pytest.mark.parametrize('channels,heads', [(30, 4), (32, 3), (4, 8)])
def test_sap_readouts_refuse_heads_that_do_not_divide(channels, heads):
    match = rf"'heads' \({heads}\) must be a positive integer that divides " \
        rf'the width {channels}'
    with pytest.raises(ValueError, match=match):
        TokenReadout('sap', channels, heads)
    with pytest.raises(ValueError, match=match):
        FusionHead('sap', [8, 16, 4], channels, heads=heads)
    assert TokenReadout('mean', channels, heads).out_channels == channels
    FusionHead('concat', [8, 16, 4], channels, heads=heads)  # No SAP.


@pytest.mark.parametrize('script,args', [
    ('smiles_sequence.py', ['--hidden_channels', '30']),
    ('multimodal_fusion.py', ['--heads', '3']),
])
def test_examples_refuse_heads_before_loading_data(script, args, tmp_path):
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, osp.join(root, 'examples', script), '--root',
         str(tmp_path / 'none'), *args], env=env, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith('error: --heads: ') and '\n' not in err, err
    assert 'must be a positive integer that divides the width' in err


@pytest.mark.parametrize('fusion', ['sap', 'concat', 'mean'])
def test_fusion_head_masks_missing_modality(fusion):
    torch.manual_seed(1)
    head = FusionHead(fusion, [4, 6, 5], 8).eval()
    emb = [torch.randn(3, c) for c in (4, 6, 5)]
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1]],
                           dtype=torch.bool)
    out = head(emb, present)
    assert out.shape == (3, )
    changed = [emb[0], torch.randn(3, 6) * 100, emb[2]]  # Masked in 1, 2.
    out2 = head(changed, present)
    assert torch.allclose(out[1:], out2[1:], atol=1e-5)
    fused, alpha = head.fuse(emb, present)
    if fusion == 'sap':
        assert alpha.shape == (3, 3)
        assert torch.allclose(alpha.sum(1), torch.ones(3), atol=1e-6)
        assert torch.equal(alpha[~present], torch.zeros(3))
    else:
        assert alpha is None


@pytest.mark.parametrize('fusion', ['sap', 'concat', 'mean'])
@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_a_missing_modality_holding_nan_takes_no_part(fusion, bad):
    """NaN or inf in a missing modality's embedding reached the concat and
    mean fusions' outputs (0 * nan) and every fusion's adapter gradients
    (the adapter ran before the mask): now the same outputs as with
    zeros there, and finite gradients."""
    torch.manual_seed(2)
    head = FusionHead(fusion, [4, 6, 5], 8).eval()
    emb = [torch.randn(3, c) for c in (4, 6, 5)]
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]],
                           dtype=torch.bool)
    clean = [e.masked_fill(~present[:, m, None], 0.0)
             for m, e in enumerate(emb)]
    dirty = [e.masked_fill(~present[:, m, None], bad)
             for m, e in enumerate(emb)]
    out = head(dirty, present)
    torch.testing.assert_close(out, head(clean, present), rtol=0, atol=0)
    out.sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_cls_readout_takes_the_first_kept_token():
    """Left padding gave zeros (the token at position 0 is padding)."""
    h = torch.randn(3, 4, 5)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]],
                        dtype=torch.bool)
    expected = torch.stack([h[0, 2], h[1, 0], torch.zeros(5)])
    assert torch.equal(TokenReadout('cls', 5)(h, mask), expected)


@pytest.mark.parametrize('fusion,heads', [('sap', 1), ('sap', 2),
                                          ('concat', 1), ('mean', 1)])
def test_fusion_head_of_no_molecules(fusion, heads):
    """A batch of zero molecules gives zero rows of the fused width (SAP
    over zero sets with concatenated heads once failed to reshape)."""
    head = FusionHead(fusion, [4, 6, 5], 8, heads=heads)
    emb = [torch.randn(0, c) for c in (4, 6, 5)]
    present = torch.zeros(0, 3, dtype=torch.bool)
    fused, _ = head.fuse(emb, present)
    assert fused.shape == (0, 24 if fusion == 'concat' else 8)
    assert head(emb, present).shape == (0, )


def test_modality_dropout_keeps_one():
    present = modality_dropout(1000, 3, 0.9,
                               torch.Generator().manual_seed(0))
    assert present.any(1).all()
    assert 0.05 < present.float().mean() < 0.6


def test_gin_encoder_and_fit_on_a_toy_task():
    torch.manual_seed(2)
    graphs = []
    for i in range(40):
        n = 3 + i % 5
        graphs.append(Data(
            x=torch.randint(0, 2, (n, 9)),
            edge_index=torch.stack([torch.arange(n - 1),
                                    torch.arange(1, n)]),
            edge_attr=torch.randint(0, 2, (n - 1, 3)),
            y=torch.tensor([float(i % 2)])))
    batch = Batch.from_data_list(graphs)
    encoder = GINEncoder(8, num_layers=2)
    assert encoder(batch).shape == (40, 8)

    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).float()
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))

    def batches(rows):
        return lambda: [((x[r], ), y[r]) for r in rows.split(16)]

    result = fit_sequences(model, batches(torch.arange(48)),
                 {'valid': batches(torch.arange(48, 56)),
                  'test': batches(torch.arange(56, 64))}, epochs=3,
                 lr=0.05, log=False)
    assert result['best_epoch'] in (1, 2, 3)
    assert 0.0 <= result['val'] <= 1.0 or math.isnan(result['val'])
    assert len(result['history']) == 3
    assert mean_std([0.5, 0.7]) == '0.6000 ± 0.1414'
    assert mean_std([math.nan]) == 'n/a'
    assert mean_std([0.5, math.nan]) == '0.5000'  # One value: no spread.
    assert markdown_table(['a'], [['1']]) == '| a |\n|---|\n| 1 |\n'


def test_stage_one_is_fixed_by_its_seed():
    """The fusion example's encoders start from the seed they are given:
    the same seed gives the same embeddings, another seed others."""
    from sap_graph.experiments.seq.multimodal import (
        FusionConfig,
        train_encoders,
    )
    task = tiny_task(['CCO', 'c1ccccc1O', 'C(=O)[O-]', 'CN', 'c1ccncc1C#N',
                      'CCN', 'OCC=O', 'c1ccccc1'])
    graphs = [Data(x=torch.randint(0, 2, (n, 9)),
                   edge_index=torch.stack([torch.arange(n - 1),
                                           torch.arange(1, n)]),
                   edge_attr=torch.randint(0, 2, (n - 1, 3)),
                   y=task.y[i:i + 1])
              for i, n in enumerate(task.lengths.tolist())]
    fp = torch.randint(0, 2, (len(graphs), 16)).float()
    cfg = FusionConfig(graph_channels=8, graph_layers=1, sequence_channels=8,
                       fingerprint_channels=8, encoder_epochs=1, batch_size=4)

    def embeddings(seed, state):
        torch.manual_seed(state)  # The global state before: no effect.
        out = train_encoders(graphs, task, fp, cfg, seed=seed, log=False)
        return out['embeddings']

    first, again, other = (embeddings(0, 1), embeddings(0, 2),
                           embeddings(1, 1))
    for a, b, c in zip(first, again, other, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, c)


@pytest.mark.parametrize('encoder', ['conv', 'transformer'])
@pytest.mark.parametrize('readout', ['sap', 'mean', 'cls'])
def test_sequence_models_take_empty_sequences_and_empty_batches(encoder,
                                                                readout):
    """Only empty sequences (a conv kernel longer than its input) and a
    batch of none (torch's attention, max() of nothing) crashed."""
    from sap_graph.experiments.seq.models import SequenceClassifier
    from sap_graph.experiments.seq.multimodal import SequenceEmbedding
    torch.manual_seed(0)
    model = SequenceClassifier(10, 8, readout, encoder=encoder).eval()
    tokens = torch.randint(1, 10, (3, 6))
    out = model(tokens, torch.zeros(3, dtype=torch.long))
    assert out.shape == (3, ) and torch.isfinite(out).all()
    # An empty sequence is pooled to zeros: every row gives the same.
    assert torch.allclose(out, out[:1].expand(3))
    assert model(tokens[:0], torch.zeros(0, dtype=torch.long)).shape == (0, )
    embed = SequenceEmbedding(10, 8).eval()
    assert embed(tokens[:0], torch.zeros(0, dtype=torch.long)).shape == (0,
                                                                         8)
