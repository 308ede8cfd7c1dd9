"""RegularizedSAP (the harness's attention regularisers) on every call form
of the layer: its penalty equals the regularisers of each set's kept
weights, computed set by set, and a set whose nodes are all masked is
empty (it neither halves the entropy nor adds ||0 - I||^2)."""
import pytest
import torch

from sap_graph import attention_entropy, diversity_penalty
from sap_graph.experiments.regularized import RegularizedSAP, aux_loss

DIVERSITY, ENTROPY = 0.7, -0.3


def per_set(sets):
    """The penalty averaged as the regularisers do: each term over the
    non-empty sets, from each set's kept weights [n, H] alone."""
    sets = [a for a in sets if a.size(0) > 0]
    one = [torch.zeros(a.size(0), dtype=torch.long) for a in sets]
    div = sum(diversity_penalty(a, i, 1) for a, i in zip(sets, one,
                                                          strict=True))
    ent = sum(attention_entropy(a, i, 1) for a, i in zip(sets, one,
                                                          strict=True))
    return (DIVERSITY * div + ENTROPY * ent) / len(sets)


@pytest.fixture()
def layer():
    torch.manual_seed(0)
    return RegularizedSAP(4, diversity=DIVERSITY, entropy=ENTROPY, heads=3,
                          query_init='normal').train()


def test_padded_rows_with_lengths_and_mask(layer):
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 0, 3])
    _, alpha = layer(x, lengths=lengths, return_attention_weights=True)
    expected = per_set([alpha[b, :n] for b, n in enumerate(lengths)])
    torch.testing.assert_close(aux_loss(layer), expected)
    mask = torch.tensor([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0],
                         [1, 1, 0, 0, 1]]).bool()
    _, alpha = layer(x, mask=mask, return_attention_weights=True)
    expected = per_set([alpha[b][mask[b]] for b in range(3)])
    torch.testing.assert_close(aux_loss(layer), expected)


def test_a_fully_masked_graph_is_empty(layer):
    x, index = torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1])
    mask = torch.tensor([True, True, False, False, False])
    _, alpha = layer(x, index, dim_size=2, mask=mask,
                     return_attention_weights=True)
    torch.testing.assert_close(aux_loss(layer), per_set([alpha[:2]]))


def test_leading_dimensions_are_independent_sets(layer):
    x, index = torch.randn(2, 5, 4), torch.tensor([0, 0, 1, 1, 1])
    _, alpha = layer(x, index, dim_size=2, return_attention_weights=True)
    expected = per_set([alpha[c][index == b] for c in range(2)
                        for b in range(2)])
    torch.testing.assert_close(aux_loss(layer), expected)


def test_nodes_first_messages_of_multi_head_convolutions(layer):
    """Messages [E, H, C] pooled over dim=0 (GATConv): each message head
    and graph is a set, and the layer's forward runs once per call."""
    x, index = torch.randn(5, 2, 4), torch.tensor([0, 0, 1, 1, 1])
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]]).bool()
    _, alpha = layer(x, index, dim_size=2, dim=0, mask=mask,
                     return_attention_weights=True)
    assert alpha.shape == (5, 2, 3)
    expected = per_set([alpha[:, h][(index == b) & mask[:, h]]
                        for h in range(2) for b in range(2)])
    torch.testing.assert_close(aux_loss(layer), expected)


def test_signature_follows_the_layer():
    """The second positional argument is out_channels, as for the layer;
    the weights are keyword-only, and the repr builds the same layer."""
    layer = RegularizedSAP(4, 3, heads=2, diversity=0.5)
    assert (layer.out_channels, layer.diversity_weight) == (3, 0.5)
    again = eval(repr(layer))
    assert repr(again) == repr(layer)
    with pytest.raises(TypeError):
        RegularizedSAP(4, 3, 0.5)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), True, 'abc',
                                   None, torch.ones(2)])
@pytest.mark.parametrize('name', ['diversity', 'entropy'])
def test_weights_must_be_finite_numbers(name, value):
    with pytest.raises(ValueError, match=f"'{name}' must be a finite"):
        RegularizedSAP(4, **{name: value})


def test_forward_called_directly_keeps_the_penalty(layer):
    x, index = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 1, 1])
    out = layer.forward(x, index)
    penalty = aux_loss(layer)
    torch.testing.assert_close(out, layer(x, index))
    torch.testing.assert_close(penalty, aux_loss(layer))
