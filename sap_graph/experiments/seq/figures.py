"""The figures of the sequence and fusion examples: SAP attention over
SMILES tokens (by token class, along example molecules) and over the
modality tokens (by class, by scaffold and with one modality dropped)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

COLORS = ('#4c72b0', '#dd8452', '#55a868')


def _stacked(ax, labels: List[str], parts: Tensor,
             modalities: Sequence[str], legend: bool = False) -> None:
    left = torch.zeros(parts.size(0))
    for m, name in enumerate(modalities):
        ax.barh(labels, parts[:, m].tolist(), left=left.tolist(),
                color=COLORS[m % len(COLORS)], label=name)
        left += parts[:, m]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    if legend:
        ax.legend(loc='lower right', fontsize=7, framealpha=0.9)


def plot_fusion_attention(path: str, alpha: Tensor, y: Tensor,
                          groups: List[str],
                          dropped: Dict[str, Dict[str, Any]],
                          modalities: Sequence[str],
                          group_name: str = 'scaffolds',
                          top_groups: int = 8,
                          group_alpha: Optional[Tensor] = None) -> None:
    r"""Writes the figure: (a) mean attention per modality by class with
    the spread over molecules, (b) by the most frequent scaffolds (by
    molecule size quartile without scaffolds), (c) mean attention and
    ROC-AUC with each modality masked out at test time.

    Args:
        alpha (torch.Tensor): Attention :obj:`[n, M]` of the test molecules
            with every modality present.
        y (torch.Tensor): Their labels :obj:`[n]`.
        groups (list): Scaffold SMILES (or another grouping) of the
            molecules of :obj:`group_alpha` (default: of the test ones).
        group_alpha (torch.Tensor, optional): Attention :obj:`[n', M]` of
            the molecules of panel (b): with a scaffold split the test
            scaffolds are nearly all distinct, so pass all molecules.
        dropped (dict): :func:`~.multimodal.evaluate_fusion`'s result.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2),
                             gridspec_kw={'width_ratios': [1, 1.4, 1.2]})
    ax = axes[0]
    width = 0.38
    for c, label in enumerate(('inactive', 'active')):
        sel = alpha[y == c]
        if sel.numel() == 0:
            continue
        pos = [m + (c - 0.5) * width for m in range(len(modalities))]
        ax.bar(pos, sel.mean(0).tolist(), width,
               yerr=sel.std(0).nan_to_num().tolist(), capsize=3,
               label=f'{label} (n={sel.size(0)})',
               color='#999999' if c == 0 else '#c44e52')
    ax.set_xticks(range(len(modalities)), modalities)
    ax.set_ylabel('attention weight (mean ± std over molecules)')
    ax.set_title('(a) by class (test)')
    ax.legend(fontsize=8)

    ax = axes[1]
    names = ['acyclic' if s == '' else s for s in groups]
    common = [s for s, _ in Counter(names).most_common(top_groups)]
    sets = [torch.tensor([n == s for n in names]) for s in common]
    labels = [(s if len(s) <= 28 else s[:25] + '...') +
              f' (n={int(g.sum())})' for s, g in zip(common, sets,
                                                     strict=True)]
    group_alpha = alpha if group_alpha is None else group_alpha
    title = f'(b) the {len(common)} most frequent {group_name}'
    parts = torch.stack([group_alpha[g].mean(0) for g in sets])
    _stacked(ax, labels, parts, modalities, legend=True)
    ax.tick_params(axis='y', labelsize=7)
    ax.set_xlabel('mean attention weight')
    ax.set_title(title)

    ax = axes[2]
    cases = list(dropped)
    labels = [('all present' if c == 'all' else f'{c} masked') +
              f"\nROC-AUC {dropped[c]['rocauc']:.3f}" for c in cases]
    parts = torch.stack([dropped[c]['alpha'].mean(0) for c in cases])
    _stacked(ax, labels, parts, modalities)
    ax.tick_params(axis='y', labelsize=8)
    ax.set_xlabel('mean attention weight (test)')
    ax.set_title('(c) one modality masked at test time')
    fig.suptitle('SAP fusion over the modality tokens [B, 3, C] '
                 '(ogbg-molhiv, seed 0)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def size_groups(num_atoms: Tensor) -> List[str]:
    """Molecule size quartile labels (a stand-in for scaffolds)."""
    q = torch.quantile(num_atoms.float(), torch.tensor([0.25, 0.5, 0.75]))
    out = []
    for n in num_atoms.tolist():
        k = int((torch.tensor(float(n)) > q).sum())
        out.append(f'size quartile {k + 1}')
    return out


def plot_token_attention(path: str, by_class: Dict[str, Dict[str, Any]],
                         examples: Sequence[Tuple[List[str], List[float],
                                                  str]]) -> None:
    """Two panels: (a) attention relative to uniform per SMILES token class,
    inactive vs active molecules; (b) the relative weight of every token
    of a few example molecules ``(tokens, weights, title)``, as colour."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    classes = [c for c, v in by_class.items() if v['count'] > 0]
    fig = plt.figure(figsize=(15, 1.2 + 0.75 * max(4, len(examples))))
    ax = fig.add_axes([0.05, 0.22, 0.27, 0.68])
    pos = torch.arange(len(classes), dtype=torch.float)
    for k, (label, color) in enumerate((('inactive', '#999999'),
                                        ('active', '#c44e52'))):
        ax.bar((pos + (k - 0.5) * 0.4).tolist(),
               [by_class[c][label] for c in classes], 0.4, color=color,
               label=f'{label} molecules')
    ax.axhline(1.0, color='k', lw=0.8, ls='--')
    ax.set_xticks(pos.tolist())
    ax.set_xticklabels([f"{c}\n({by_class[c]['count']:,})" for c in classes],
                       rotation=45, ha='right', fontsize=7)
    ax.set_ylabel('attention x tokens (1 = uniform)')
    ax.set_title('(a) by token class (test)', fontsize=10)
    ax.legend(fontsize=7)

    ax = fig.add_axes([0.36, 0.05, 0.62, 0.85])
    ax.set_axis_off()
    ax.set_title('(b) attention along example test molecules '
                 '(darker = more weight)', fontsize=10)
    cmap = plt.get_cmap('Reds')
    top = max(max(w) for _, w, _ in examples) if examples else 1.0
    rows = max(1, len(examples))
    for r, (tokens, weights, title) in enumerate(examples):
        y = 1 - (r + 0.5) / rows
        ax.text(0, y + 0.32 / rows, title, fontsize=7, color='#444444')
        x = 0.0
        width = 1.0 / max(sum(len(t) for t in tokens) + len(tokens), 60)
        for tok, w in zip(tokens, weights, strict=True):
            ax.text(x, y, tok, fontsize=8, family='monospace',
                    va='center', bbox=dict(boxstyle='square,pad=0.15',
                                           fc=cmap(0.85 * w / top), ec='none'))
            x += width * (len(tok) + 1)
    fig.savefig(path, dpi=110)
    plt.close(fig)
