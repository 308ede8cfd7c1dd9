"""Multimodal fusion on ogbg-molhiv: three modality vectors per molecule
(a GIN graph embedding, a SMILES sequence embedding and a fingerprint MLP
embedding) fused by self-attention pooling (SAP) over the three modality
tokens [B, 3, C], against concatenation and mean fusion. Reports
validation/test ROC-AUC (OGB Evaluator, best validation epoch, mean ± std
over seeds), the per-molecule attention over modalities by class and by
scaffold, and what happens when one modality is masked at test time.

Stage 1 trains each modality encoder alone (linear probe, seed 0) and
embeds every molecule once; stage 2 trains the fusion heads on the frozen
embeddings over seeds, with modality dropout. Fingerprints: RDKit Morgan
(radius 2, 1024 bits) when RDKit imports (`pip install rdkit`), else
hashed atom-environment counts computed from the PyG graphs. With
--embeddings FILE, stage 1 is read back from FILE when FILE records the
same stage 1 settings, molecules, split and fingerprints, and computed
again (FILE replaced) when it does not.

Data: --root holding ogbg_molhiv/ (read only), else $SAP_GRAPH_DATA/ogb,
else ./data/ogb. Default budget (stage 1: 2 epochs per encoder; stage 2:
3 fusions x 3 seeds x 15 epochs): 2.4 minutes on one thread of a 2-core
machine (2026-12-03; the report states the measured time). A flag value
that makes no run (a count or width below 1, a learning rate that is not
positive, --modality_dropout outside [0, 1), a --limit below 10), a
--out or --figure that cannot be written and a --root without
ogbg_molhiv/ are refused with one error line before any data is read.

    python examples/multimodal_fusion.py --out docs/fusion.md \\
        --figure docs/img/fusion_attention.png
    python examples/multimodal_fusion.py --limit 200 --epochs 1  # smoke test
"""
import os.path as osp
import time
from typing import Optional

import torch

from sap_graph.experiments.data import DatasetNotFoundError, load_ogbg
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.flags import refuse
from sap_graph.experiments.seq import cli
from sap_graph.experiments.seq.embeddings import (
    cached_encoders,
    check_cache_path,
)
from sap_graph.experiments.seq.figures import plot_fusion_attention
from sap_graph.experiments.seq.fusion import (
    FUSIONS,
    MODALITIES,
    dataset_fingerprints,
)
from sap_graph.experiments.seq.loop import markdown_table, mean_std
from sap_graph.experiments.seq.multimodal import (
    FusionConfig,
    attention_groups,
    evaluate_fusion,
    fusion_attention_rows,
    run_fusion,
)
from sap_graph.experiments.seq.smiles import load_smiles_task


def main() -> None:
    parser = cli.example_parser(__doc__, FusionConfig, [0, 1, 2],
                                'stage 2 seeds',
                                'write the attention figure here')
    parser.add_argument('--fingerprint', default='auto',
                        choices=['auto', 'morgan', 'graph'],
                        help='morgan (RDKit), graph (hashed atom '
                        'environments from the PyG graph) or auto (morgan '
                        'when RDKit imports) (default: auto)')
    parser.add_argument('--fusions', nargs='+', default=list(FUSIONS),
                        choices=FUSIONS,
                        help=f'fusions (default: {" ".join(FUSIONS)})')
    parser.add_argument('--embeddings', default=None,
                        help='cache of the stage 1 embeddings: read back '
                        'when the file holds those of the same stage 1 '
                        'settings, data and split, else computed and '
                        'written there (default: none)')
    args, cfg = cli.parse_example(parser, FusionConfig, 'fusions', 'channels')
    try:
        check_cache_path(args.embeddings)
    except ConfigError as e:
        refuse(parser, e)
    if args.limit:  # A smoke test: stage 1 as short as stage 2.
        cfg.encoder_epochs = cfg.fusion_epochs
    start = time.perf_counter()

    root = cli.ogb_root(args)
    task = load_smiles_task(osp.join(root, 'ogbg_molhiv'), limit=args.limit)
    try:  # The PyG graphs need OGB's raw/ files besides the SMILES.
        graphs = load_ogbg('ogbg-molhiv', root=root, download=False).dataset
    except DatasetNotFoundError as e:
        refuse(parser, e)
    fp, fp_kind = dataset_fingerprints(
        graphs, task.smiles, args.fingerprint,
        index=torch.cat(list(task.split_idx.values())))
    sizes = {k: len(v) for k, v in task.split_idx.items()}
    print(f'ogbg-molhiv: split {sizes}, fingerprints: {fp_kind}')

    try:  # Read back only when made with this run's settings.
        stage1 = cached_encoders(graphs, task, fp, fp_kind, cfg,
                                 args.embeddings)
    except ConfigError as e:
        refuse(parser, e)
    emb = stage1['embeddings']

    test = task.split_idx['test']
    rows, drop_rows, sap_eval, sap_model = [], [], None, None
    for fusion in args.fusions:
        runs, evals = [], []
        for seed in args.seeds:
            result = run_fusion(emb, task, fusion, cfg, seed)
            runs.append(result)
            evals.append(evaluate_fusion(result['model'], emb, task))
            print(f"Fusion: {fusion}, seed: {seed}, Val: "
                  f"{result['val']:.4f}, Test: {result['test']:.4f}")
        if fusion == 'sap':
            sap_eval, sap_model = evals[0], runs[0]['model']
        rows.append([fusion, mean_std([r['val'] for r in runs]),
                     mean_std([r['test'] for r in runs])])
        drop_rows.append([fusion] + [
            mean_std([e[c]['rocauc'] for e in evals])
            for c in ('all', *MODALITIES)
        ])
    for name, r in stage1['unimodal'].items():
        rows.append([f'{name} alone (probe, seed 0)', f"{r['val']:.4f}",
                     f"{r['test']:.4f}"])

    table = markdown_table(['fusion', 'val ROC-AUC', 'test ROC-AUC'], rows)
    drop_table = markdown_table(
        ['fusion', 'all present'] + [f'{m} masked' for m in MODALITIES],
        drop_rows)
    attention_table = None
    if sap_eval is not None:
        attention_table = markdown_table(
            ['test molecules', *MODALITIES, 'ROC-AUC'],
            fusion_attention_rows(sap_eval, task.y[test]))
    total = time.perf_counter() - start
    print(table)
    print(drop_table)
    if attention_table:
        print(attention_table)
    print(f'Total time: {total:.0f}s')

    if args.figure and sap_eval is not None:
        alpha_all, groups, group_name = attention_groups(sap_model, emb,
                                                         task)
        plot_fusion_attention(cli.make_folder(args.figure),
                              sap_eval['all']['alpha'],
                              task.y[test], groups, sap_eval, MODALITIES,
                              group_name, group_alpha=alpha_all)
        print(f'Wrote {args.figure}')
    if args.out:
        text = report(args, cfg, fp_kind, sizes, table, drop_table,
                      attention_table, total)
        cli.write_example_report(args.out, text)


def report(args, cfg: FusionConfig, fp_kind: str, sizes: dict, table: str,
           drop_table: str, attention_table: Optional[str],
           total: float) -> str:
    """The markdown report: setup, ROC-AUC :obj:`table`, the
    masked-modality :obj:`drop_table` and the SAP attention (with the
    figure when asked for)."""
    fp_text = ('RDKit Morgan fingerprints (radius 2, 1024 bits; RDKit '
               'installed from PyPI with `pip install rdkit`)'
               if fp_kind == 'morgan' else
               'hashed atom-environment counts from the PyG graphs '
               '(ECFP-like, radius 2, 1024 bits; RDKit was not importable)')
    text = (
        cli.report_header('Multimodal fusion with SAP over modality tokens '
                      '(ogbg-molhiv)') +
        f'Official scaffold split {sizes}. Three modality vectors per '
        f'molecule, each from an encoder trained alone with a linear probe '
        f'(stage 1, seed 0, {cfg.encoder_epochs} epochs, best validation '
        f'epoch): a GIN ({cfg.graph_layers} GINE layers, '
        f'{cfg.graph_channels} channels, OGB atom/bond encoders, mean '
        f'pooling), the SMILES sequence (regex tokens, 2 conv layers, '
        f'{cfg.sequence_channels} channels, mean over tokens) and {fp_text} '
        f'through a 2-layer MLP ({cfg.fingerprint_channels} channels). '
        'Stage 2 fuses the frozen vectors: a linear adapter per modality to '
        f'{cfg.channels} channels, then `sap` (`SAPAggregation` over the '
        f'modality tokens `[B, 3, {cfg.channels}]`, {cfg.heads} head(s), a '
        'missing modality masked), `concat` (a missing one zeroed) or '
        '`mean` (over the present ones), and an MLP; Adam, lr '
        f'{cfg.fusion_lr}, batch {cfg.fusion_batch_size}, '
        f'{cfg.fusion_epochs} epochs, modality dropout '
        f'{cfg.modality_dropout} in training, seeds '
        f'{" ".join(map(str, args.seeds))}. ROC-AUC from '
        "`ogb.graphproppred.Evaluator('ogbg-molhiv')` at the best "
        'validation epoch, mean ± std over seeds.\n\n'
        '## ROC-AUC\n\n' + table +
        '\n## One modality masked at test time (test ROC-AUC)\n\n'
        + drop_table)
    if attention_table:
        text += ('\n## SAP attention over the modalities (seed 0, test)\n\n'
                 'Mean attention weight of each modality token; a masked '
                 'token gets weight 0 and the others are renormalised.\n\n'
                 + attention_table)
    if args.figure:
        text += (f'\n![SAP attention over modalities]'
                 f'({cli.figure_link(args.figure, args.out)})\n\n'
                 'Per-molecule attention over the three modality tokens '
                 '(SAP fusion, seed 0): (a) by class (test molecules), '
                 '(b) by Bemis-Murcko scaffold (the most frequent scaffolds '
                 'of all molecules), (c) with one modality masked at test '
                 'time (test molecules).\n')
    return text + cli.time_note(total, args.threads)

if __name__ == '__main__':
    main()
