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
states the measured time). A flag value that makes no run (a count or
width below 1, --max_length below 2, --dropout outside [0, 1), a --limit
below 10), a --out or --figure that cannot be written and a --root
without ogbg_molhiv/ are refused with one error line before any data is
read.

    python examples/smiles_sequence.py --out docs/sequences.md \\
        --figure docs/img/smiles_attention.png
    python examples/smiles_sequence.py --limit 200 --epochs 1   # smoke test
"""
import dataclasses
import os.path as osp
import statistics
import time
from typing import Optional

import torch

from sap_graph.experiments.seq import cli
from sap_graph.experiments.seq.figures import plot_token_attention
from sap_graph.experiments.seq.loop import markdown_table, mean_std
from sap_graph.experiments.seq.models import READOUTS
from sap_graph.experiments.seq.sequences import (
    SequenceConfig,
    attention_by_class,
    attention_rows,
    run_sequence,
    split_attention,
    top_actives,
)
from sap_graph.experiments.seq.smiles import load_smiles_task


def main() -> None:
    parser = cli.example_parser(
        __doc__, SequenceConfig, [0, 1], 'one run per seed and readout',
        "draw the 'sap' readout's attention over the tokens (seed 0, test "
        'molecules) here')
    parser.add_argument('--readouts', nargs='+', default=list(READOUTS),
                        choices=READOUTS, help='readouts over tokens '
                        f'(default: {" ".join(READOUTS)})')
    args, cfg = cli.parse_example(parser, SequenceConfig, 'readouts',
                                  'hidden_channels')

    task = load_smiles_task(osp.join(cli.ogb_root(args), 'ogbg_molhiv'),
                            cfg.max_length, args.limit)
    sizes = {k: len(v) for k, v in task.split_idx.items()}
    used = torch.cat(list(task.split_idx.values()))  # --limit: a subset.
    print(f'ogbg-molhiv SMILES: vocabulary {len(task.vocab)}, split {sizes}, '
          f'mean length {task.lengths[used].float().mean():.1f} tokens')

    start = time.perf_counter()
    rows, results = [], {}
    for readout in args.readouts:
        runs = []
        for seed in args.seeds:
            print(f'Readout: {readout}, seed: {seed}')
            runs.append(run_sequence(
                task, dataclasses.replace(cfg, readout=readout), seed))
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
        text = report(args, cfg, table, total, sizes, len(task.vocab),
                      attention)
        cli.write_example_report(args.out, text)


def attention_report(task, model, figure: Optional[str]) -> str:
    """Table of the SAP readout's attention by token class (test
    molecules); draws the figure when :obj:`figure` is given."""
    ids, alphas, logits = split_attention(model, task, 'test')
    by_class = attention_by_class(task, ids, alphas)
    table = markdown_table(['token class', 'test tokens', 'inactive',
                            'active'], attention_rows(by_class))
    if figure:
        plot_token_attention(cli.make_folder(figure), by_class,
                             top_actives(task, ids, alphas, logits))
        print(f'Wrote {figure}')
    return table


def report(args, cfg: SequenceConfig, table: str, total: float,
           sizes: dict, vocab: int, attention: Optional[str]) -> str:
    """The markdown report: setup, results :obj:`table` and the
    :obj:`attention` table (with the figure when drawn)."""
    text = (
        cli.report_header('SMILES sequences: readouts over tokens '
                          '(ogbg-molhiv)')
        + f'SMILES of ogbg-molhiv (`mapping/mol.csv.gz`) as regex tokens '
        f'(vocabulary {vocab} from the training molecules, a [CLS] token '
        f'first, cut at {cfg.max_length} tokens), official scaffold split '
        f'{sizes}. Encoder: {cfg.encoder}, {cfg.num_layers} layers, '
        f'{cfg.hidden_channels} channels; readout over the tokens of the '
        f'padded batch (`sap`: `SAPAggregation` with {cfg.heads} heads and '
        'the padding mask, pooled in place; `cls`: the encoding of the '
        'first token); MLP head. Adam, lr '
        f'{cfg.lr}, batch {cfg.batch_size}, {cfg.epochs} epochs, seeds '
        f'{" ".join(map(str, args.seeds))}. ROC-AUC from '
        "`ogb.graphproppred.Evaluator('ogbg-molhiv')`, validation and "
        'test at the best validation epoch, mean ± std over seeds.\n\n'
        + table + cli.time_note(total, args.threads))
    if attention:
        text += ('\n## Where the SAP readout looks (seed 0, test)\n\n'
                 'Mean attention weight x number of tokens of the molecule '
                 '(averaged over heads; 1 = uniform), per token class.\n\n'
                 + attention)
    if attention and args.figure:
        text += (f'\n![SAP attention over SMILES tokens]'
                 f'({cli.figure_link(args.figure, args.out)})\n\n'
                 '(a) attention relative to uniform by token class, '
                 'inactive vs active test molecules; (b) the weight of '
                 'every token of the four active test molecules of at '
                 'most 40 tokens that the model scores highest.\n')
    return text


if __name__ == '__main__':
    main()
