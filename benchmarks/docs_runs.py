"""The training runs whose figures ``docs/training.md`` and
``docs/explain.md`` quote, rerun from one table (:data:`RUNS`), so that
every accuracy, time, attention statistic and figure there comes from a
kept record.

    SAP_GRAPH_DATA=../shared/data python -m benchmarks.docs_runs   # ~6 min
    python -m benchmarks.docs_runs --render                        # the page
    python -m benchmarks.docs_runs --only synthetic_sap --force    # rerun one

Each run is ``sap-graph train ARGS --out ... --checkpoint
runs/docs/NAME.pt`` in a fresh process with one thread
(``OMP_NUM_THREADS=1``), timed; for a SAP readout the attention of the
selected model is then summarised per head over every graph of the
dataset (:func:`~sap_graph.experiments.explain.attention_sharpness`, the
numbers of ``benchmarks/attention_sharpness.py``), and where the docs show
a figure of the run ``sap-graph explain`` redraws it. The record
``results/docs_runs/NAME.json`` keeps the commands, date, commit, wall
minutes, the result summary and the statistics; the page
``results/docs_runs.md`` is rendered from the records alone.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
RECORDS = osp.join(HERE, 'results', 'docs_runs')
PAGE = osp.join(HERE, 'results', 'docs_runs.md')


@dataclass(frozen=True)
class DocRun:
    """One run of the docs: its ``sap-graph train`` flags, the pages that
    quote it and, where they show one, the ``sap-graph explain`` flags of
    its figure (paths from the repository root)."""
    name: str
    train: List[str]
    quoted_in: str
    explain: List[str] = field(default_factory=list)


MUTAG = ['--dataset', 'MUTAG', '--readout', 'sap', '--heads', '4',
         '--folds', '10', '--epochs', '100']
PRE_02 = '{"concat": true, "residual": null, "query_init": "normal"}'

#: Every run the docs quote, in page order.
RUNS: Dict[str, DocRun] = {r.name: r for r in (
    DocRun('synthetic_sap', [], 'docs/training.md, docs/explain.md'),
    DocRun('synthetic_mean', ['--readout', 'mean'], 'docs/training.md'),
    DocRun('synthetic_sum', ['--readout', 'sum'], 'docs/training.md'),
    DocRun('mutag_sap', MUTAG, 'docs/explain.md', [
        '--dataset', 'MUTAG', '--index', '21', '--out',
        'docs/img/mutag_attention.png', '--stats',
        'docs/img/mutag_attention_stats.png']),
    DocRun('mutag_sap_entropy', MUTAG + ['--entropy', '0.01'],
           'docs/explain.md'),
    DocRun('mutag_sap_pre02', MUTAG + ['--readout_kwargs', PRE_02],
           'docs/explain.md', [
               '--dataset', 'MUTAG', '--index', '21', '--out',
               'docs/img/mutag_attention_pre02.png']),
    DocRun('proteins_sap_10_epochs', [
        '--dataset', 'PROTEINS', '--readout', 'sap', '--heads', '4',
        '--folds', '10', '--epochs', '10'], 'docs/explain.md'),
)}


def _commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def sharpness(checkpoint: str) -> List[Dict[str, float]]:
    """Per head, how sharp the attention of a checkpoint is over every
    graph of its dataset."""
    from sap_graph.experiments.explain import (
        attention_sharpness,
        attention_statistics,
        load_explained,
    )
    model, task = load_explained(checkpoint)
    return attention_sharpness(attention_statistics(model, task.dataset))


def run_one(run: DocRun, checkpoints: str) -> Dict[str, Any]:
    """Trains :obj:`run` (then measures and draws), returns its record."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    checkpoint = osp.join(checkpoints, f'{run.name}.pt')
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'result.json')
        train = ['sap-graph', 'train', *run.train, '--no_progress',
                 '--checkpoint', checkpoint, '--out', out]
        start = time.perf_counter()
        subprocess.run([sys.executable, '-m', 'sap_graph', *train[1:]],
                       cwd=ROOT, env=env, check=True)
        minutes = (time.perf_counter() - start) / 60
        with open(out) as f:
            result = json.load(f)
    record = {
        'name': run.name, 'quoted_in': run.quoted_in,
        'date': datetime.date.today().isoformat(), 'commit': _commit(),
        'train_command': 'OMP_NUM_THREADS=1 ' + shlex.join(
            [*train[:-4], '--checkpoint', f'runs/docs/{run.name}.pt',
             '--out', f'runs/docs/{run.name}.json']),
        'wall_minutes': minutes,
        'result': {k: result.get(k) for k in (
            'metric', 'protocol', 'test_mean', 'test_std', 'val_mean',
            'val_std', 'epoch_time_median', 'total_time')},
        'selected': _selected(checkpoint),
    }
    if (result.get('config') or {}).get('readout') == 'sap':
        record['sharpness'] = sharpness(checkpoint)
    if run.explain:
        explain = ['sap-graph', 'explain', '--checkpoint', checkpoint,
                   *run.explain]
        shown = subprocess.run([sys.executable, '-m', 'sap_graph',
                                *explain[1:]], cwd=ROOT, env=env,
                               check=True, capture_output=True, text=True)
        record['explain_command'] = shlex.join(
            [*explain[:3], f'runs/docs/{run.name}.pt', *explain[4:]])
        record['explain_output'] = shown.stdout.strip().splitlines()
    return record


def _selected(checkpoint: str) -> Dict[str, Any]:
    from sap_graph.experiments.checkpoint import read_checkpoint
    selected = read_checkpoint(checkpoint)['config'].get('selected') or {}
    return {k: v for k, v in selected.items()
            if isinstance(v, (int, float, str)) or v is None}


def render(records: Dict[str, Dict[str, Any]]) -> str:
    """The page of the kept records (in :data:`RUNS` order)."""
    lines = ['# The runs the docs quote', '',
             'Generated by `python -m benchmarks.docs_runs --render` from '
             '`results/docs_runs/*.json`; each run was trained by the '
             'command shown (one thread, in a fresh process) with '
             '`SAP_GRAPH_DATA` pointing at the data.', '',
             '| run | quoted in | test | val | wall min | date, commit |',
             '| --- | --- | ---: | ---: | ---: | --- |']
    for name in RUNS:
        r = records.get(name)
        if r is None:
            lines.append(f'| `{name}` | {RUNS[name].quoted_in} | not run '
                         f'| | | |')
            continue
        res = r['result']
        lines.append(
            f"| `{name}` | {r['quoted_in']} | {res['test_mean']:.3f} ± "
            f"{res['test_std']:.3f} | {res['val_mean']:.3f} | "
            f"{r['wall_minutes']:.1f} | {r['date']}, `{r['commit']}` |")
    for name in RUNS:
        r = records.get(name)
        if r is None:
            continue
        sel = r.get('selected') or {}
        lines += ['', f'## `{name}`', '', '```bash', r['train_command']]
        if r.get('explain_command'):
            lines.append(r['explain_command'])
        metric = r['result']['metric']
        lines += ['```', '', f"Selected model (the checkpoint): fold "
                  f"{sel.get('fold')}, best epoch {sel.get('best_epoch')}, "
                  f"test {metric} of that fold "
                  f"{sel.get(f'test_{metric}', float('nan')):.3f}."]
        if r.get('sharpness'):
            h0 = r['sharpness'][0]
            lines += ['', f"Attention of the selected model over the "
                      f"{h0['graphs']} graphs with more than one node "
                      f"(mean size {h0['nodes']:.1f}; uniform: exp(H) = "
                      f"n, H / log n = 1, median 1/n "
                      f"{h0['uniform_median']:.3f}):", '',
                      '| head | attended exp(H) | H / log n | peak weight, '
                      'median | peak weight, max | graphs with peak > 0.5 |',
                      '| --- | ---: | ---: | ---: | ---: | ---: |']
            for h, s in enumerate(r['sharpness'], 1):
                lines.append(
                    f"| {h} | {s['attended']:.1f} of {s['nodes']:.1f} | "
                    f"{s['entropy_ratio']:.3f} | {s['peak_median']:.3f} | "
                    f"{s['peak_max']:.3f} | {100 * s['sharp_share']:.0f}% |")
        if r.get('explain_output'):
            lines += ['', '`sap-graph explain` printed:', '', '```text',
                      *r['explain_output'], '```']
    return '\n'.join(lines) + '\n'


def read_records(folder: str = RECORDS) -> Dict[str, Dict[str, Any]]:
    out = {}
    for name in RUNS:
        path = osp.join(folder, f'{name}.json')
        if osp.exists(path):
            with open(path) as f:
                out[name] = json.load(f)
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', choices=list(RUNS),
                        help='these runs (default: all)')
    parser.add_argument('--force', action='store_true',
                        help='rerun runs that have a record')
    parser.add_argument('--render', action='store_true',
                        help='only render the page from the records')
    parser.add_argument('--records', default=RECORDS,
                        help='folder of the records (default: %(default)s)')
    parser.add_argument('--checkpoints', default=osp.join('runs', 'docs'),
                        help='folder of the checkpoints (default: '
                        '%(default)s)')
    parser.add_argument('--page', default=PAGE,
                        help='the page to write (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.render:
        os.makedirs(args.records, exist_ok=True)
        os.makedirs(args.checkpoints, exist_ok=True)
        for name in args.only or list(RUNS):
            path = osp.join(args.records, f'{name}.json')
            if osp.exists(path) and not args.force:
                continue
            print(f'{name}: {shlex.join(RUNS[name].train)}', flush=True)
            record = run_one(RUNS[name], osp.abspath(args.checkpoints))
            with open(path + '.tmp', 'w') as f:
                json.dump(record, f, indent=1)
            os.replace(path + '.tmp', path)
    with open(args.page, 'w') as f:
        f.write(render(read_records(args.records)))
    print(f'Wrote {args.page}')


if __name__ == '__main__':
    main()
