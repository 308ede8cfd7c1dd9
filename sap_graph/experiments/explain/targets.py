r"""The targets of graphs and what a model predicts for them, per task:
class labels, binary tasks (several at once, labels may be missing) and
regression targets, shown in the units of the data. No
:obj:`matplotlib`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

# Labels ###################################################################


def graph_label(data: Data) -> Optional[Union[int, float]]:
    r"""The label of a graph (its first target): an :obj:`int` for a class
    label (and any whole number), a :obj:`float` for a regression target,
    or :obj:`None` when it has none (missing: NaN)."""
    y = getattr(data, 'y', None)
    if y is None or y.numel() == 0:
        return None
    value = y.view(-1)[0]
    if not value.is_floating_point():
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def first_targets(graphs: Sequence[Data]) -> Tensor:
    r"""The first target of every graph as a float :obj:`[G]`, NaN where
    there is none."""
    out = []
    for d in graphs:
        y = getattr(d, 'y', None)
        out.append(float('nan') if y is None or y.numel() == 0
                   else float(y.view(-1)[0]))
    return torch.tensor(out, dtype=torch.double)


def is_classes(graphs: Sequence[Data], first: Tensor) -> bool:
    r"""Integer labels, or floats all 0 or 1 (binary tasks), are classes;
    other float labels are regression targets."""
    ys = [d.y for d in graphs if getattr(d, 'y', None) is not None]
    if not any(y.is_floating_point() for y in ys):
        return True
    labelled = first[~first.isnan()]
    return bool(((labelled == 0) | (labelled == 1)).all())


def target_groups(values: Tensor, bins: int = 4
                  ) -> Tuple[Tensor, List[str]]:
    r"""Splits graphs by the quantiles of a regression target: returns the
    bin of every graph :obj:`[G]` (:obj:`-1` where :obj:`values` is NaN)
    and the range of each bin (*e.g.* :obj:`'-3.1 to -2.04'`). Bins have
    about the same number of graphs; tied quantiles are merged.

    Args:
        values (torch.Tensor): The target of every graph :obj:`[G]`.
        bins (int, optional): Number of quantile bins. (default: :obj:`4`)
    """
    values = values.double().view(-1)
    labelled = ~values.isnan()
    group = torch.full((values.numel(), ), -1, dtype=torch.long)
    if not bool(labelled.any()):
        return group, []
    known = values[labelled]
    edges = torch.quantile(known, torch.linspace(0, 1, max(bins, 1) + 1,
                                                 dtype=torch.double))
    edges = torch.unique(edges)  # Sorted; ties merged.
    if edges.numel() == 1:
        edges = edges.repeat(2)
    group[labelled] = torch.bucketize(known, edges[1:-1])
    names = [f'{format_value(float(lo))} to {format_value(float(hi))}'
             for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return group, names


# Predictions ##############################################################


def target_names(task_type: str, num_targets: int,
                 targets: Optional[Sequence[str]] = None) -> List[str]:
    r"""The name of every target: the CSV columns :obj:`targets`, else
    :obj:`'target 1'`, ... (one name for a multiclass label)."""
    if task_type == 'multiclass':
        return ['class']
    if targets is not None and len(targets) == num_targets:
        return list(targets)
    return [f'target {t + 1}' for t in range(num_targets)]


def graph_outcomes(
    task_type: str,
    output: Tensor,
    y: Optional[Tensor],
    names: Sequence[str],
    scale: Optional[Dict[str, List[float]]] = None,
) -> List[Dict[str, Any]]:
    r"""The label and prediction of one graph, one dict per target.

    Args:
        task_type (str): :obj:`'multiclass'` (one target: the class with
            the largest logit, :obj:`'confidence'` its probability),
            :obj:`'binary classification'` (one sigmoid per target:
            :obj:`'prediction'` 0 or 1, :obj:`'probability'` of 1 and
            :obj:`'confidence'` of the predicted class) or
            :obj:`'regression'` (the model's output in the units of the
            data, :obj:`output * std + mean`).
        output (torch.Tensor): The model's output for the graph
            :obj:`[C]`.
        y (torch.Tensor, optional): The graph's labels (NaN: missing).
        names (list of str): The targets' names (see :func:`target_names`).
        scale (dict, optional): Regression: the :obj:`'mean'` and
            :obj:`'std'` per target with which the model was trained on
            standardised targets. (default: :obj:`None`, *i.e.* the output
            as is, marked :obj:`'standardised': True`)

    Returns:
        Dicts of :obj:`'target'` (name), :obj:`'label'` (:obj:`None` if
        missing), :obj:`'prediction'` and :obj:`'confidence'`
        (:obj:`None` for regression).
    """
    output = output.detach().double().view(-1).cpu()
    labels = (y.detach().view(-1).cpu() if y is not None
              else torch.empty(0))

    def label(t: int) -> Optional[Union[int, float]]:
        if t >= labels.numel():
            return None
        value = float(labels[t])
        if not math.isfinite(value):
            return None
        if task_type == 'regression' and labels.is_floating_point():
            return value
        return int(value)

    if task_type == 'multiclass':
        probs = output.softmax(dim=-1)
        c = int(probs.argmax())
        return [{'target': names[0], 'label': label(0), 'prediction': c,
                 'confidence': float(probs[c])}]
    out = []
    for t, name in enumerate(names):
        if task_type == 'regression':
            value = float(output[t])
            if scale is not None:
                value = value * scale['std'][t] + scale['mean'][t]
            out.append({'target': name, 'label': label(t),
                        'prediction': value, 'confidence': None,
                        'standardised': scale is None})
        else:
            p = float(torch.sigmoid(output[t]))
            out.append({'target': name, 'label': label(t),
                        'prediction': int(p > 0.5), 'probability': p,
                        'confidence': max(p, 1 - p)})
    return out


def format_value(value: Union[int, float, None]) -> str:
    r"""A label or prediction as text: :obj:`'missing'`, a class, or a
    real value to four significant digits (whole numbers from 10,000)."""
    if value is None:
        return 'missing'
    if isinstance(value, int):
        return str(value)
    return f'{value:.0f}' if abs(value) >= 1e4 else f'{value:.4g}'


def outcome_text(outcome: Dict[str, Any],
                 class_name: Any = format_value) -> str:
    r"""One target's :obj:`'label ..., predicted ...'`, as printed by
    :obj:`sap-graph explain` (:obj:`class_name` shows a class)."""
    show = (class_name if outcome['confidence'] is not None
            else format_value)
    label = outcome['label']
    text = (f"label {'missing' if label is None else show(label)}, "
            f"predicted {show(outcome['prediction'])}")
    if outcome['confidence'] is not None:
        text += f" (p = {outcome['confidence']:.2f})"
    if outcome.get('standardised'):
        text += ' (standardised units)'
    return text


def outcomes_text(outcomes: Sequence[Dict[str, Any]], limit: int = 2,
                  class_name: Any = format_value) -> str:
    r"""The label and prediction of a graph in one line: one target as
    :func:`outcome_text`, several as :obj:`'name: ...; name: ...'` (the
    first :obj:`limit`, then how many more)."""
    if len(outcomes) == 1:
        return outcome_text(outcomes[0], class_name)
    parts = [f"{o['target']}: {outcome_text(o, class_name)}"
             for o in outcomes[:limit]]
    more = len(outcomes) - limit
    if more > 0:
        parts[-1] += f" (+{more} more target{'s' if more > 1 else ''})"
    return '; '.join(parts)


__all__ = ['first_targets', 'format_value', 'graph_label', 'graph_outcomes',
           'is_classes', 'outcome_text', 'outcomes_text', 'target_groups',
           'target_names']
