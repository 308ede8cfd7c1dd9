"""Library pieces of the sequence example
(:mod:`sap_graph.experiments.seq`) on synthetic inputs: SMILES tokens and
batches, the sequence classifier and its token readouts, and the attention
per molecule and token class. :mod:`tests.test_seq_fusion` has the pieces
of the fusion example."""
import math

import pytest
import torch

from sap_graph.experiments.seq.fusion import FusionHead
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
