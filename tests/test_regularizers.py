import math

import torch

from sap_graph import attention_entropy, diversity_penalty


def dense_reference(alpha, index, num_graphs):
    """Per-graph dense A (heads x n_b) and entropy, by the definitions."""
    penalties, entropies = [], []
    heads = alpha.size(1)
    for b in range(num_graphs):
        a = alpha[index == b].t().double()  # [H, n_b]
        if a.size(1) == 0:
            continue
        penalties.append(((a @ a.t() - torch.eye(heads,
                                                 dtype=a.dtype))**2).sum())
        for h in range(heads):
            p = a[h][a[h] > 0]
            entropies.append(-(p * p.log()).sum())
    return torch.stack(penalties).mean(), torch.stack(entropies).mean()


def random_alpha(sizes, heads, seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    logits = torch.randn(index.numel(), heads, generator=gen) * 2
    alpha = torch.empty_like(logits)
    for b in range(len(sizes)):
        alpha[index == b] = torch.softmax(logits[index == b], dim=0)
    return alpha, index


def test_penalties_match_dense_reference():
    sizes = [4, 0, 7, 1, 12]
    alpha, index = random_alpha(sizes, heads=3)
    pen, ent = dense_reference(alpha, index, len(sizes))
    assert torch.allclose(diversity_penalty(alpha, index, len(sizes)).double(),
                          pen, atol=1e-6)
    assert torch.allclose(attention_entropy(alpha, index, len(sizes)).double(),
                          ent, atol=1e-6)
    # Unsorted nodes and a graph count inferred from the index:
    perm = torch.randperm(index.numel())
    assert torch.allclose(diversity_penalty(alpha[perm], index[perm]).double(),
                          pen, atol=1e-6)


def test_penalty_extremes():
    # Two heads on two different single nodes: A A^T = I, penalty 0.
    alpha = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    index = torch.zeros(3, dtype=torch.long)
    assert diversity_penalty(alpha, index, 1).item() == 0.0
    assert attention_entropy(alpha, index, 1).item() == 0.0
    # Both heads uniform over n nodes: A A^T = 1/n everywhere.
    n = 4
    alpha = torch.full((n, 2), 1.0 / n)
    index = torch.zeros(n, dtype=torch.long)
    expected = 2 * (1 / n - 1)**2 + 2 * (1 / n)**2
    assert math.isclose(diversity_penalty(alpha, index, 1).item(), expected,
                        rel_tol=1e-6)
    assert math.isclose(attention_entropy(alpha, index, 1).item(),
                        math.log(n), rel_tol=1e-6)


def test_penalty_gradient_matches_dense():
    alpha, index = random_alpha([5, 3, 9], heads=4, seed=1)
    alpha = alpha.double().requires_grad_()
    diversity_penalty(alpha, index, 3).backward()
    ref = alpha.detach().clone().requires_grad_()
    dense_reference(ref, index, 3)[0].backward()
    assert torch.allclose(alpha.grad, ref.grad, atol=1e-8)
