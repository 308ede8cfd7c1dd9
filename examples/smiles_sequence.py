"""ogbg-molhiv as SMILES token sequences: embedding, a small encoder (1-D
convolutions by default, or a 2-layer Transformer) and a readout over the
tokens of the padded batch: self-attention pooling (SAP, pooled in place
with the padding mask) against mean, max and the first ([CLS]) token.
Official scaffold split, OGB Evaluator (ROC-AUC), validation and test at
the best validation epoch, mean ± std over seeds.

Data: --root holding ogbg_molhiv/ (read only), else
$SAP_GRAPH_DATA/ogb, else ./data/ogb. Default budget (conv encoder, 32
channels, 3 epochs, seeds 0 1, four readouts: 24 epochs of ~10-12 s):
6.2 minutes on one thread of a 2-core machine (2026-12-02; the report
states the measured time).

    python examples/smiles_sequence.py --out docs/sequences.md \\
        --figure docs/img/smiles_attention.png
    python examples/smiles_sequence.py --limit 200 --epochs 1   # smoke test
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time
from typing import Optional

import torch

from sap_graph.experiments.seq.figures import plot_token_attention
from sap_graph.experiments.seq.loop import markdown_table, mean_std
from sap_graph.experiments.seq.models import READOUTS, check_heads
from sap_graph.experiments.seq.sequences import (
    SequenceConfig,
    attention_by_class,
    attention_rows,
    run_sequence,
    split_attention,
    top_actives,
)
from sap_graph.experiments.seq.smiles import load_smiles_task


def default_root() -> str:
    base = os.environ.get('SAP_GRAPH_DATA')
    return osp.join(base, 'ogb') if base else osp.join('data', 'ogb')


def main() -> None:
    d = SequenceConfig()
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default=None,
                        help='OGB root holding ogbg_molhiv/ (default: '
                        '$SAP_GRAPH_DATA/ogb or ./data/ogb)')
    parser.add_argument('--readouts', nargs='+', default=list(READOUTS),
                        choices=READOUTS,
                        help='readouts over tokens (default: sap mean max '
                        'cls)')
    parser.add_argument('--encoder', default=d.encoder,
                        choices=['conv', 'transformer'],
                        help=f'token encoder (default: {d.encoder}; the '
                        'transformer is ~6x slower on CPU)')
    parser.add_argument('--hidden_channels', type=int,
                        default=d.hidden_channels,
                        help=f'token width (default: {d.hidden_channels})')
    parser.add_argument('--num_layers', type=int, default=d.num_layers,
                        help=f'encoder layers (default: {d.num_layers})')
    parser.add_argument('--heads', type=int, default=d.heads,
                        help=f'SAP heads (default: {d.heads})')
    parser.add_argument('--dropout', type=float, default=d.dropout,
                        help=f'dropout (default: {d.dropout})')
    parser.add_argument('--max_length', type=int, default=d.max_length,
                        help='tokens kept per SMILES, [CLS] included '
                        f'(default: {d.max_length})')
    parser.add_argument('--batch_size', type=int, default=d.batch_size,
                        help=f'batch size (default: {d.batch_size})')
    parser.add_argument('--lr', type=float, default=d.lr,
                        help=f'learning rate (default: {d.lr})')
    parser.add_argument('--epochs', type=int, default=d.epochs,
                        help=f'epochs per run (default: {d.epochs})')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1],
                        help='one run per seed and readout (default: 0 1)')
    parser.add_argument('--limit', type=int, default=None,
                        help='use the first N molecules of the split only '
                        '(80/10/10; default: all)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default: 1)')
    parser.add_argument('--out', default=None,
                        help='write the results table (markdown) here '
                        '(default: none)')
    parser.add_argument('--figure', default=None,
                        help="draw the 'sap' readout's attention over the "
                        'tokens (seed 0, test molecules) here (PNG; '
                        'needs matplotlib; default: none)')
    args = parser.parse_args()
    if 'sap' in args.readouts:
        try:
            check_heads(args.heads, args.hidden_channels)
        except ValueError as e:
            parser.exit(2, f'error: --heads: {e}\n')
    torch.set_num_threads(args.threads)

    root = args.root or default_root()
    task = load_smiles_task(osp.join(root, 'ogbg_molhiv'), args.max_length,
                            args.limit)
    sizes = {k: len(v) for k, v in task.split_idx.items()}
    print(f'ogbg-molhiv SMILES: vocabulary {len(task.vocab)}, split {sizes}, '
          f'mean length {task.lengths.float().mean():.1f} tokens')

    start = time.perf_counter()
    rows, results = [], {}
    for readout in args.readouts:
        cfg = SequenceConfig(
            readout=readout, encoder=args.encoder,
            hidden_channels=args.hidden_channels, num_layers=args.num_layers,
            heads=args.heads, dropout=args.dropout,
            batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
            max_length=args.max_length)
        runs = []
        for seed in args.seeds:
            print(f'Readout: {readout}, seed: {seed}')
            runs.append(run_sequence(task, cfg, seed))
        results[readout] = runs
        rows.append([
            readout, mean_std([r['val'] for r in runs]),
            mean_std([r['test'] for r in runs]),
            ' '.join(str(r['best_epoch']) for r in runs),
            f"{runs[0]['num_parameters']:,}",
            f"{statistics.median(r['epoch_time'] for r in runs):.1f}"
        ])
        print(f'{readout}: Val: {rows[-1][1]}, Test: {rows[-1][2]}')
    total = time.perf_counter() - start

    table = markdown_table(
        ['readout', 'val ROC-AUC', 'test ROC-AUC', 'best epochs',
         'parameters', 'epoch time (s)'], rows)
    print(table)
    print(f'Total time: {total:.0f}s')
    attention = None
    if 'sap' in results:
        attention = attention_report(task, results['sap'][0]['model'],
                                     args.figure)
        print(attention)
    if args.out:
        write_report(args, table, total, sizes, len(task.vocab), attention)


def attention_report(task, model, figure: Optional[str]) -> str:
    """Table of the SAP readout's attention by token class (test
    molecules); draws the figure when :obj:`figure` is given."""
    ids, alphas, logits = split_attention(model, task, 'test')
    by_class = attention_by_class(task, ids, alphas)
    table = markdown_table(['token class', 'test tokens', 'inactive',
                            'active'], attention_rows(by_class))
    if figure:
        os.makedirs(osp.dirname(osp.abspath(figure)), exist_ok=True)
        plot_token_attention(figure, by_class,
                             top_actives(task, ids, alphas, logits))
        print(f'Wrote {figure}')
    return table


def write_report(args: argparse.Namespace, table: str, total: float,
                 sizes: dict, vocab: int, attention: Optional[str]) -> None:
    command = 'python examples/smiles_sequence.py ' + ' '.join(sys.argv[1:])
    text = (
        '# SMILES sequences: readouts over tokens (ogbg-molhiv)\n\n'
        f'Regenerate with `{command}` '
        '(`SAP_GRAPH_DATA` pointing at the folder holding '
        '`ogb/ogbg_molhiv/`).\n\n'
        f'SMILES of ogbg-molhiv (`mapping/mol.csv.gz`) as regex tokens '
        f'(vocabulary {vocab} from the training molecules, a [CLS] token '
        f'first, cut at {args.max_length} tokens), official scaffold split '
        f'{sizes}. Encoder: {args.encoder}, {args.num_layers} layers, '
        f'{args.hidden_channels} channels; readout over the tokens of the '
        f'padded batch (`sap`: `SAPAggregation` with {args.heads} heads and '
        'the padding mask, pooled in place; `cls`: the encoding of the '
        'first token); MLP head. Adam, lr '
        f'{args.lr}, batch {args.batch_size}, {args.epochs} epochs, seeds '
        f'{" ".join(map(str, args.seeds))}. ROC-AUC from '
        "`ogb.graphproppred.Evaluator('ogbg-molhiv')`, validation and "
        'test at the best validation epoch, mean ± std over seeds.\n\n'
        + table +
        f'\nTotal time {total / 60:.1f} min on {args.threads} CPU thread(s) '
        '(a shared 2-core machine).\n')
    if attention:
        text += ('\n## Where the SAP readout looks (seed 0, test)\n\n'
                 'Mean attention weight x number of tokens of the molecule '
                 '(averaged over heads; 1 = uniform), per token class.\n\n'
                 + attention)
    if attention and args.figure:
        image = osp.relpath(osp.abspath(args.figure),
                            osp.dirname(osp.abspath(args.out)))
        text += (f'\n![SAP attention over SMILES tokens]({image})\n\n'
                 '(a) attention relative to uniform by token class, '
                 'inactive vs active test molecules; (b) the weight of '
                 'every token of the four active test molecules of at '
                 'most 40 tokens that the model scores highest.\n')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
