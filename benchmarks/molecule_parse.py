"""Parse time of the MoleculeNet CSVs with ``load_molecule_csv``.

Each file is loaded twice into a fresh temporary cache: once cold (read,
RDKit, OGB features, scaffolds, cache write) and once from the cache.
Wall and CPU seconds are both given, as the machine may be shared.

Usage::

    SAP_GRAPH_DATA=../shared/data python -m benchmarks.molecule_parse
    SAP_GRAPH_DATA=../shared/data python -m benchmarks.molecule_parse bbbp

Writes ``benchmarks/results/molecule_parse.md`` unless ``--no-save``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import platform
import tempfile
import time
import warnings

import pandas as pd

from sap_graph.experiments.data import load_molecule_csv

# File (under moleculenet/) -> target columns (None: every column but
# the SMILES); the task columns of shared/data/README.md.
TOX21 = ('NR-AR NR-AR-LBD NR-AhR NR-Aromatase NR-ER NR-ER-LBD '
         'NR-PPAR-gamma SR-ARE SR-ATAD5 SR-HSE SR-MMP SR-p53').split()
FILES = {
    'esol/delaney-processed.csv':
        ['measured log solubility in mols per litre'],
    'freesolv/SAMPL.csv': ['expt'],
    'lipophilicity/Lipophilicity.csv': ['exp'],
    'bbbp/BBBP.csv': ['p_np'],
    'tox21/tox21.csv': TOX21,
    'sider/sider.csv': None,
    'clintox/clintox.csv': ['FDA_APPROVED', 'CT_TOX'],
    'qm8/qm8.csv.gz': None,
    'HIV.csv': ['HIV_active'],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('only', nargs='*',
                        help='substrings of the files to run (default: all)')
    parser.add_argument('--no-save', action='store_true',
                        help='print only (default: also write the table)')
    args = parser.parse_args()
    root = osp.join(os.environ.get('SAP_GRAPH_DATA', 'data'), 'moleculenet')
    lines = ['| file | rows | valid | invalid | parse s (wall) | '
             'parse s (CPU) | cached load s | task type | tasks |',
             '|---|---|---|---|---|---|---|---|---|']
    for file, targets in FILES.items():
        if args.only and not any(o in file for o in args.only):
            continue
        path = osp.join(root, file)
        if targets is None:
            targets = [c for c in pd.read_csv(path, nrows=0).columns
                       if c != 'smiles']
        rows = len(pd.read_csv(path, usecols=['smiles']))
        with tempfile.TemporaryDirectory() as cache, \
                warnings.catch_warnings():
            warnings.simplefilter('ignore')
            wall, cpu = time.perf_counter(), time.process_time()
            task = load_molecule_csv(path, targets=targets, cache=cache)
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            cached = time.perf_counter()
            load_molecule_csv(path, targets=targets, cache=cache)
            cached = time.perf_counter() - cached
        valid = len(task.dataset)
        lines.append(f'| `{file}` | {rows} | {valid} | {rows - valid} | '
                     f'{wall:.1f} | {cpu:.1f} | {cached:.2f} | '
                     f'{task.task_type} | {task.num_classes} |')
        print(lines[-1], flush=True)
    import ogb
    import rdkit
    import torch
    footer = (f'\nrdkit {rdkit.__version__}, ogb {ogb.__version__}, torch '
              f'{torch.__version__}, {platform.processor() or "cpu"}, '
              f'{os.cpu_count()} cores, OMP_NUM_THREADS='
              f'{os.environ.get("OMP_NUM_THREADS")}, load average at the '
              f'end {os.getloadavg()[0]:.1f}\n')
    if not args.no_save:
        out = osp.join(osp.dirname(osp.realpath(__file__)), 'results',
                       'molecule_parse.md')
        with open(out, 'w') as f:
            f.write('# Parse time of the MoleculeNet CSVs\n\n'
                    '`python -m benchmarks.molecule_parse` (cold cache, '
                    'then cached).\n\n' + '\n'.join(lines) + '\n' + footer)
        print('wrote', out)


if __name__ == '__main__':
    main()
