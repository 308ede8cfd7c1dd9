"""How sharp the attention of a trained SAP readout is, per head, over
every graph of its dataset (``docs/explain.md``).

    python -m benchmarks.attention_sharpness --checkpoint runs/mutag_sap.pt

Prints one Markdown row per head: the mean graph size n, the mean effective
number of attended nodes exp(H) (n for uniform attention, 1 for one node),
the mean of H / log n (1 = uniform), the median and largest peak weight
against the median uniform weight 1/n, and the share of graphs whose peak
weight is above 0.5. Graphs with one node are left out.

:func:`checkpoint_sharpness` keeps the same per head for
``benchmarks/attention_control.py``, with the checkpoint's training
command and design (a readout of
:data:`~sap_graph.experiments.compare.variants.CONTROLS`).
"""
import argparse
import json
import os.path as osp
import shlex
from typing import Any, Dict, List

from sap_graph.experiments.compare.variants import CONTROLS
from sap_graph.experiments.data.kinds import kind_of
from sap_graph.experiments.explain import (
    attention_sharpness,
    attention_statistics,
    load_explained,
)


def checkpoint_sharpness(checkpoint: str) -> Dict[str, Any]:
    """Per head, how sharp the attention of a ``sap-graph train
    --checkpoint`` model is over every graph of its dataset, with the
    model's training budget and its design (a key or value of
    :data:`~sap_graph.experiments.compare.variants.CONTROLS`)."""
    from sap_graph.experiments.checkpoint import read_checkpoint
    state = read_checkpoint(checkpoint)
    train = state['config'].get('train') or {}
    design = design_of(train)
    model, task = load_explained(checkpoint)
    rows = attention_sharpness(attention_statistics(model, task.dataset))
    selected = state['config'].get('selected') or {}
    keep = ('dataset', 'readout', 'heads', 'readout_kwargs', 'epochs', 'lr',
            'lr_step', 'folds', 'seeds', 'seed', 'hidden_channels',
            'num_layers', 'smiles_column', 'targets', 'metric')
    return {'dataset': task.name, 'design': design, 'heads': rows,
            'train': {k: train.get(k) for k in keep},
            'selected': {k: selected.get(k) for k in (
                'fold', 'unit', 'best_epoch', f'val_{task.metric}',
                f'test_{task.metric}')}}


def design_of(train: Dict[str, Any]) -> str:
    """The design or control (a key or value of
    :data:`~sap_graph.experiments.compare.variants.CONTROLS`) a
    checkpoint's training options build (compared with the defaults
    filled in)."""
    from sap_graph.experiments.compare import parse_variant
    from sap_graph.experiments.readouts import readout_options
    kwargs = train.get('readout_kwargs') or {}
    if train.get('readout') == 'sap':
        mine = readout_options('sap', **kwargs)
        for design in dict.fromkeys((*CONTROLS, *CONTROLS.values())):
            variant = parse_variant(design).config()
            if mine == readout_options('sap', **variant['readout_kwargs']):
                return design
    raise ValueError(f"a checkpoint of readout {train.get('readout')!r} "
                     f"with options {kwargs} is none of the designs "
                     f"{', '.join(CONTROLS)}")


def train_command(s: Dict[str, Any]) -> str:
    t = s['train']
    args = ['sap-graph', 'train', '--dataset', t['dataset'], '--readout',
            t['readout']]
    if t.get('readout_kwargs'):
        args += ['--readout_kwargs', json.dumps(t['readout_kwargs'])]
    if t.get('targets'):
        args += ['--smiles_column', t.get('smiles_column') or 'smiles',
                 '--target', *t['targets']]
        if t.get('metric'):
            args += ['--metric', t['metric']]
    defaults = kind_of(t['dataset']).defaults
    for name in ('hidden_channels', 'num_layers'):  # Where not the kind's.
        if t.get(name) is not None and t[name] != defaults.get(name):
            args += [f'--{name}', t[name]]
    args += ['--epochs', t['epochs'], '--lr', t['lr']]
    if t.get('lr_step'):
        args += ['--lr_step', t['lr_step']]
    if t.get('folds') is None:  # Seeds: a scaffold or an official split.
        args += ['--seeds', *(t.get('seeds') or [t.get('seed', 0)])]
    else:
        args += ['--folds', t['folds']]
    args += ['--checkpoint', f"<{s.get('name', s['dataset'])}-"
                             f"{s['design']}.pt>"]
    return ' '.join(shlex.quote(str(a)) for a in args)


def read_sharpness(folder: str) -> Dict[str, Dict[str, Any]]:
    """The measured sharpness of each design in a dataset folder."""
    out = {}
    for design in (*CONTROLS, *CONTROLS.values()):
        path = osp.join(folder, f'sharpness-{design}.json')
        if osp.exists(path):
            with open(path) as f:
                out[design] = json.load(f)
    return out


def mean_head(sharp: Dict[str, Any], key: str) -> float:
    return sum(r[key] for r in sharp['heads']) / len(sharp['heads'])


def sharpness_table(sharp: Dict[str, Any]) -> List[str]:
    h0 = sharp['heads'][0]
    sel = sharp['selected']
    seeds = sharp['train'].get('seeds') or []
    unit = sel.get('unit') or (
        f"fold_{sel['fold']}" if sel.get('fold') is not None else
        f"seed_{sel['seed']}" if sel.get('seed') is not None else
        f'seed_{seeds[0]}' if len(seeds) == 1 else 'seed not recorded')
    design = sharp['design']
    out = [f"Attention of one trained `{design}` model over all "
           f"{h0['graphs']} graphs with more than one node (mean size "
           f"{h0['nodes']:.1f} nodes; uniform attention: exp(H) = n, "
           f"H / log n = 1, peak weight 1/n, median "
           f"{h0['uniform_median']:.3f}). The model is the "
           f"{'fold' if 'fold' in str(unit) else 'seed'} chosen on "
           f"validation ({unit}, epoch {sel.get('best_epoch')}) of", '',
           '```bash', train_command(sharp), '```', '',
           '| head | attended exp(H) | H / log n | peak weight, median |'
           ' peak weight, max | graphs with peak > 0.5 |',
           '| --- | --- | --- | --- | --- | --- |']
    for h, r in enumerate(sharp['heads'], 1):
        out.append(f"| {h} | {r['attended']:.1f} of {r['nodes']:.1f} | "
                   f"{r['entropy_ratio']:.3f} | {r['peak_median']:.3f} | "
                   f"{r['peak_max']:.3f} | {100 * r['sharp_share']:.0f}% |")
    return out + ['']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True,
                        help='a sap-graph train --checkpoint file')
    parser.add_argument('--dataset', default=None,
                        help="dataset name (default: the checkpoint's)")
    parser.add_argument('--root', default=None,
                        help="data root (default: the checkpoint's)")
    args = parser.parse_args(argv)
    model, task = load_explained(args.checkpoint, args.dataset, args.root)
    rows = attention_sharpness(attention_statistics(model, task.dataset))
    print(f'{task.name}, {rows[0]["graphs"]} graphs, mean size '
          f'{rows[0]["nodes"]:.1f} nodes, median uniform weight '
          f'{rows[0]["uniform_median"]:.3f} ({args.checkpoint})\n')
    print('| head | attended exp(H) | H / log n | peak weight, median | '
          'peak weight, max | graphs with peak > 0.5 |')
    print('| --- | --- | --- | --- | --- | --- |')
    for h, r in enumerate(rows, 1):
        print(f"| {h} | {r['attended']:.1f} of {r['nodes']:.1f} | "
              f"{r['entropy_ratio']:.3f} | {r['peak_median']:.3f} | "
              f"{r['peak_max']:.3f} | {100 * r['sharp_share']:.0f}% |")


if __name__ == '__main__':
    main()
