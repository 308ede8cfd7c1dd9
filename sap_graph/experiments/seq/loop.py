r"""Training loop of the sequence and fusion examples: binary
classification with :class:`~torch.nn.BCEWithLogitsLoss`, ROC-AUC from
OGB's :class:`~ogb.graphproppred.Evaluator`, and the validation and test
scores of the epoch with the best validation score."""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

import torch
from torch import Tensor

#: A batch: the model's inputs and the labels :obj:`[B]`.
Batch = Tuple[Tuple[Any, ...], Tensor]


def rocauc(y_true: Tensor, y_pred: Tensor,
           name: str = 'ogbg-molhiv') -> float:
    """OGB's ROC-AUC; :obj:`nan` when a slice holds one class only (a
    :obj:`--limit` run) or the scores are not finite (a diverged run)."""
    from ogb.graphproppred import Evaluator
    try:
        return float(Evaluator(name).eval({
            'y_true': y_true.view(-1, 1).numpy(),
            'y_pred': y_pred.view(-1, 1).numpy()
        })['rocauc'])
    except (RuntimeError, ValueError):  # One class only; NaN scores of
        return math.nan                 # a diverged run (sklearn).


@torch.no_grad()
def predict_sequences(model: torch.nn.Module,
            batches: Iterable[Batch]) -> Tuple[Tensor, Tensor]:
    """Logits and labels of every batch, concatenated."""
    model.eval()
    preds, ys = [], []
    for inputs, y in batches:
        preds.append(model(*inputs).float())
        ys.append(y)
    return torch.cat(preds), torch.cat(ys)


def fit_sequences(model: torch.nn.Module, train: Callable[[], Iterable[Batch]],
        evals: Dict[str, Callable[[], Iterable[Batch]]], epochs: int,
        lr: float = 1e-3, weight_decay: float = 0.0,
        log: bool = True) -> Dict[str, Any]:
    r"""Trains :obj:`model` for :obj:`epochs` with Adam and keeps the state
    of the best validation epoch.

    Args:
        model (torch.nn.Module): Returns one logit per example.
        train (callable): Returns the (shuffled) training batches of one
            epoch.
        evals (dict): :obj:`'valid'` and :obj:`'test'` batch factories.
        epochs (int): Training epochs.
        lr (float, optional): Learning rate. (default: :obj:`1e-3`)
        weight_decay (float, optional): Adam weight decay.
            (default: :obj:`0.0`)
        log (bool, optional): Print one line per epoch.
            (default: :obj:`True`)

    Returns:
        A dict with :obj:`'val'`, :obj:`'test'` (ROC-AUC at the best
        validation epoch), :obj:`'best_epoch'`, :obj:`'history'` and
        :obj:`'epoch_time'` (median seconds), and the model holds the
        best validation state.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr,
                                 weight_decay=weight_decay)
    criterion = torch.nn.BCEWithLogitsLoss()
    best: Dict[str, Any] = {'val': -math.inf, 'test': math.nan,
                            'best_epoch': 0}
    best_state = None
    history: List[Dict[str, float]] = []
    times = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for inputs, y in train():
            optimizer.zero_grad()
            loss = criterion(model(*inputs), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * y.numel()
            count += y.numel()
        times.append(time.perf_counter() - start)
        scores = {k: rocauc(*reversed(predict_sequences(model, f())))
                  for k, f in evals.items()}
        history.append({'epoch': epoch, 'loss': total / max(count, 1),
                        **scores})
        if log:
            print(f'Epoch: {epoch:03d}, Loss: {total / max(count, 1):.4f}, '
                  f"Val: {scores['valid']:.4f}, Test: {scores['test']:.4f}",
                  flush=True)
        val = scores['valid']
        if best_state is None or val > best['val']:
            best = {'val': val, 'test': scores['test'], 'best_epoch': epoch}
            best_state = {k: v.detach().clone()
                          for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return {**best, 'history': history,
            'epoch_time': statistics.median(times) if times else 0.0}


def mean_std(values: List[float]) -> str:
    """:obj:`'0.7712 ± 0.0123'` (:obj:`nan` entries skipped; one value
    alone, without a spread)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return 'n/a'
    if len(values) == 1:
        return f'{values[0]:.4f}'
    return f'{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}'


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    """A GitHub markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'
