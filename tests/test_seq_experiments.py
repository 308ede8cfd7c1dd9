"""Library pieces of the sequence and fusion examples
(:mod:`sap_graph.experiments.seq`) on synthetic inputs."""
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
from sap_graph.experiments.seq.models import (
    READOUTS,
    SequenceClassifier,
    TokenReadout,
)
from sap_graph.experiments.seq.sequences import (
    attention_by_class,
    attention_rows,
    split_attention,
    token_class,
    top_actives,
)
from sap_graph.experiments.seq.smiles import (
    SmilesTask,
    Vocabulary,
    length_batches,
    limit_split,
    tokenize,
)


def test_tokenize_round_trip():
    smiles = 'CC(=O)Oc1ccccc1C(=O)[O-].[Na+]Br%12Cl'
    tokens = tokenize(smiles)
    assert ''.join(tokens) == smiles
    assert '[O-]' in tokens and 'Br' in tokens and '%12' in tokens
    assert 'Cl' in tokens and '[Na+]' in tokens
    vocab = Vocabulary.build([tokens])
    ids = vocab.encode(tokens + ['[Xx]'])
    assert ids[0] == 1 and ids[-1] == 2  # [CLS] first, unknown token.


def test_length_batches_cover_split_once():
    lengths = torch.randint(1, 50, (100, ))
    index = torch.arange(10, 90)
    batches = list(length_batches(lengths, index, 16, shuffle=True, pool=2))
    assert sorted(torch.cat(batches).tolist()) == index.tolist()
    split = limit_split({'train': torch.arange(100), 'valid':
                         torch.arange(20), 'test': torch.arange(20)}, 50)
    assert [len(v) for v in split.values()] == [40, 5, 5]


@pytest.mark.parametrize('encoder', ['conv', 'transformer'])
@pytest.mark.parametrize('readout', READOUTS)
def test_sequence_classifier_ignores_padding(encoder, readout):
    torch.manual_seed(0)
    model = SequenceClassifier(20, 16, readout, encoder=encoder,
                               max_length=12).eval()
    tokens = torch.randint(3, 20, (4, 12))
    lengths = torch.tensor([12, 5, 1, 8])
    tokens[torch.arange(12) >= lengths.unsqueeze(1)] = 0
    out = model(tokens, lengths)
    assert out.shape == (4, )
    garbage = tokens.clone()  # Other tokens behind the padding mask.
    garbage[torch.arange(12) >= lengths.unsqueeze(1)] = 7
    assert torch.allclose(model(garbage, lengths), out, atol=1e-5)
    model.train()
    model(tokens, lengths).sum().backward()
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


def test_token_readout_sap_attention_sums_to_one():
    readout = TokenReadout('sap', 8, heads=2)
    h = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]],
                        dtype=torch.bool)
    out, alpha = readout(h, mask, return_attention_weights=True)
    assert out.shape == (3, 8)
    assert torch.allclose(alpha.sum(1)[:2], torch.ones(2, 2))
    assert torch.equal(alpha[2], torch.zeros(5, 2))
    assert torch.equal(out[2], torch.zeros(8))


@pytest.mark.parametrize('kind', ['mean', 'max', 'sap'])
def test_token_readout_ignores_nan_padding(kind):
    """NaN behind the padding mask changes nothing (it made 'mean' NaN);
    'mean' and 'max' against the kept tokens of each row."""
    torch.manual_seed(3)
    readout = TokenReadout(kind, 8, heads=2).eval()
    h = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]],
                        dtype=torch.bool)
    out = readout(h, mask)
    h_nan = h.clone()
    h_nan[~mask] = float('nan')
    torch.testing.assert_close(readout(h_nan, mask), out, rtol=0, atol=0)
    if kind != 'sap':
        expected = torch.stack([
            getattr(row[keep], 'amax' if kind == 'max' else kind)(0)
            for row, keep in zip(h, mask, strict=True)])
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('kind', ['mean', 'max', 'sap', 'cls'])
def test_token_readout_of_empty_sequences_is_zero(kind):
    """A row that keeps no token pools to zeros, also when the batch holds
    no tokens at all (L = 0, where 'cls' indexed past the end); 'cls' is
    the first token of every other row."""
    torch.manual_seed(4)
    readout = TokenReadout(kind, 8, heads=2).eval()
    h = torch.randn(3, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]],
                        dtype=torch.bool)
    out = readout(h, mask)
    assert torch.equal(out[1], torch.zeros(8))
    if kind == 'cls':
        torch.testing.assert_close(out[[0, 2]], h[[0, 2], 0], rtol=0, atol=0)
    empty = readout(torch.randn(2, 0, 8), torch.zeros(2, 0, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros(2, 8))


@pytest.mark.parametrize('bad', ['float', 'int', 'shape'])
def test_readouts_and_fusions_refuse_a_mask_that_is_not_boolean(bad):
    """A 0/1 float or int mask (once read as weights by 'mean', an error
    deep in torch for 'max', a silent zeroing by the 'concat' fusion) or a
    mask of another shape is refused by name, by every readout and
    fusion."""
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    wrong = {'float': mask.float(), 'int': mask.long(),
             'shape': mask[:, :2]}[bad]
    got = {'float': 'torch.float32 [2, 3]', 'int': 'torch.int64 [2, 3]',
           'shape': 'torch.bool [2, 2]'}[bad]
    tail = f'True for kept (got {got}; a 0/1 mask becomes one with ' \
        'mask.bool())'
    for kind in READOUTS:
        with pytest.raises(ValueError) as info:
            TokenReadout(kind, 4, heads=2)(torch.randn(2, 3, 4), wrong)
        assert str(info.value) == (
            f"'mask' must be a boolean tensor of shape [2, 3], {tail}")
    emb = [torch.randn(2, c) for c in (4, 6, 5)]
    for fusion in ('sap', 'concat', 'mean'):
        with pytest.raises(ValueError) as info:
            FusionHead(fusion, [4, 6, 5], 8)(emb, wrong)
        assert str(info.value) == (
            f"'present' must be a boolean tensor of shape [2, 3], {tail}")


@pytest.mark.parametrize('token,kind', [
    ('<cls>', '[CLS]'), ('c', 'aromatic atom'), ('n', 'aromatic atom'),
    ('C', 'aliphatic atom'), ('Cl', 'aliphatic atom'), ('Br', 'aliphatic atom'),
    ('[O-]', 'bracket atom'), ('[nH]', 'bracket atom'), ('1', 'ring closure'),
    ('%12', 'ring closure'), ('=', 'bond'), ('#', 'bond'), ('/', 'bond'),
    ('\\', 'bond'), ('(', 'branch'), (')', 'branch'), ('.', 'other'),
    ('<unk>', 'other'),
])
def test_token_class(token, kind):
    assert token_class(token) == kind


def tiny_task(smiles):
    toks = [tokenize(s) for s in smiles]
    vocab = Vocabulary.build(toks)
    tokens = torch.zeros(len(smiles), 16, dtype=torch.long)
    lengths = torch.zeros(len(smiles), dtype=torch.long)
    for i, seq in enumerate(toks):
        ids = vocab.encode(seq)
        tokens[i, :len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    y = torch.tensor([float(i % 2) for i in range(len(smiles))])
    index = torch.arange(len(smiles))
    return SmilesTask(list(smiles), tokens, lengths, y,
                      {'train': index, 'valid': index, 'test': index}, vocab)


def test_split_attention_and_classes():
    """Per-molecule weights in split order (they sum to one and match the
    readout on that molecule alone); an untrained SAP readout (zero
    queries) is uniform, so every token class scores exactly 1; a trained
    one puts the mass where its weights say."""
    task = tiny_task(['CCO', 'c1ccccc1O', 'C(=O)[O-]', 'CN', 'c1ccncc1C#N'])
    torch.manual_seed(0)
    model = SequenceClassifier(len(task.vocab), 8, 'sap', max_length=16)
    ids, alphas, logits = split_attention(model, task, 'test',
                                          batch_size=2)
    assert ids.tolist() == list(range(5))
    assert [a.numel() for a in alphas] == task.lengths.tolist()
    for i, alpha in enumerate(alphas):
        assert torch.allclose(alpha.sum(), torch.tensor(1.0))
        torch.testing.assert_close(alpha, torch.full_like(alpha,
                                                          1 / alpha.numel()))
        n = int(task.lengths[i])
        alone = model(task.tokens[i:i + 1, :n], task.lengths[i:i + 1])
        torch.testing.assert_close(logits[i:i + 1], alone)
    by_class = attention_by_class(task, ids, alphas)
    assert by_class['[CLS]']['count'] == 5
    assert by_class['ring closure']['count'] == 4
    present = {(token_class(task.vocab.itos[t]), int(task.y[i]))
               for i in range(5)
               for t in task.tokens[i, :int(task.lengths[i])].tolist()}
    rows = {row[0]: row for row in attention_rows(by_class)}
    for kind, value in by_class.items():
        for y, label in enumerate(('inactive', 'active')):
            if (kind, y) in present:
                assert value[label] == pytest.approx(1.0), (kind, label)
                assert rows[kind][2 + y] == '1.00'
            else:  # No token of this class: no mean, not 0.
                assert math.isnan(value[label]), (kind, label)
                if value['count']:
                    assert rows[kind][2 + y] == 'n/a'
        assert (kind in rows) == (value['count'] > 0)
    assert rows['bond'] == ['bond', '2', '1.00', 'n/a']  # = and #: inactive.
    # The examples: actives (odd ids) by logit, short ones only.
    examples = top_actives(task, ids, alphas, logits, count=1, max_tokens=5)
    assert len(examples) == 1 and examples[0][0] == ['<cls>', 'C', 'N']
    assert examples[0][1] == pytest.approx([1.0, 1.0, 1.0])
    best = max((1, 3), key=lambda i: float(logits[i]))
    assert [len(e[0]) for e in top_actives(task, ids, alphas, logits)] == (
        [int(task.lengths[best]), int(task.lengths[4 - best])])
    # Not uniform: weight 0.5 on [CLS] of a 3-token molecule -> 1.5.
    skewed = [torch.tensor([0.5, 0.25, 0.25])]
    got = attention_by_class(task, ids[:1], skewed)
    assert got['[CLS]']['inactive'] == pytest.approx(1.5)
    assert got['aliphatic atom']['inactive'] == pytest.approx(0.75)


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
