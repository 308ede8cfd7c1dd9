r""":func:`compare`: which readout for this dataset? The fair protocol of
the dataset's kind, the same model and budget for every readout, the
learning rate chosen per fold/seed on validation, paired tests, and a
report; :obj:`sap-graph compare` is this function.
"""
from __future__ import annotations

import os
import os.path as osp
import shlex
import sys
from dataclasses import asdict, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from sap_graph.experiments.compare.engine import (
    RunPlan,
    execute,
    load_finished,
)
from sap_graph.experiments.compare.report import (
    ComparisonResult,
    summarise,
)
from sap_graph.experiments.compare.variants import (
    DEFAULT_READOUTS,
    Variant,
    parse_variants,
)
from sap_graph.experiments.data import (
    DatasetFormatError,
    GraphTask,
    check_task,
    load_configured,
    with_metric,
)
from sap_graph.experiments.data.kinds import protocol_of
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.files import (
    OutputError,
    atomic_write,
    check_writable,
)
from sap_graph.experiments.train.config import (
    check_data_options,
    check_learning_rate,
)

#: The learning rates tried per fold/seed unless told otherwise.
DEFAULT_LRS = (0.01, 0.001)


def _check_arguments(lrs: Sequence[float], workers: int, threads: int,
                     shard: Tuple[int, int], switches: Dict[str, Any],
                     command: Any) -> None:
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence):
        raise ConfigError('lrs', f"'lrs' must be a list of learning rates "
                          f"(got {lrs!r})")
    if not lrs:
        raise ConfigError('lrs', "'lrs' must not be empty")
    for lr in lrs:
        check_learning_rate('lrs', lr)
    if len(set(lrs)) != len(lrs):
        raise ConfigError('lrs', f"learning rates given twice: {list(lrs)}")
    for name, value in (('workers', workers), ('threads', threads)):
        if not isinstance(value, int) or isinstance(value, bool) or \
                value < 1:
            raise ConfigError(name, f"'{name}' must be a positive integer "
                              f"(got {value!r})")
    if not (isinstance(shard, tuple) and len(shard) == 2):
        raise ConfigError('shard', f"'shard' must be a pair (i, n) (got "
                          f"{shard!r})")
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
        raise ConfigError('shard', f"'shard' must be i/n with 0 <= i < n "
                          f"(got {i}/{n})")
    for name, value in switches.items():
        if not isinstance(value, bool):
            raise ConfigError(name, f"'{name}' must be True or False (got "
                              f"{value!r})")
    if command is not None and not isinstance(command, str):
        raise ConfigError('command', f"'command' must be a string (got "
                          f"{command!r})")


def _check_out(out: str) -> None:
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ConfigError('out', f"'out' must name a folder (got {out!r})")
    for folder in (out, osp.join(out, 'runs')):
        if osp.exists(folder) and not osp.isdir(folder):
            raise ConfigError('out', f"'{folder}' is a file (expected the "
                              f"output folder)")
    check_writable(osp.join(out, 'report.md'), 'report')


def _check_labels(task: GraphTask) -> None:
    if task.task_type == 'multiclass':
        classes = int(task.labels.long().unique().numel())
        if classes < 2:
            raise DatasetFormatError(
                f"Dataset '{task.name}' has one class only: there is "
                f"nothing to classify")


def _load(dataset: Any, base: Any) -> GraphTask:
    if isinstance(dataset, str):
        return load_configured(base)
    from sap_graph.experiments.data.graphs import task_from_graphs
    return with_metric(task_from_graphs(dataset), base.metric)


def prepare(dataset: Any, readouts: Sequence[Union[str, Variant]],
            lrs: Sequence[float], config: Dict[str, Any],
            out: str, render: bool = False
            ) -> Tuple[GraphTask, RunPlan, List[Variant]]:
    r"""Checks everything and builds the plan of a comparison, in this
    order, so that bad input fails before any data is loaded where it
    can, and always before any training or output: readouts, options and
    the output folder (with :obj:`render`, that it holds finished runs);
    then the data, its labels and the splits; then one model per
    readout."""
    from sap_graph.experiments.train.config import (
        TrainConfig,
        resolve_config,
        validate_config,
    )
    from sap_graph.experiments.train.protocols import (
        build_model,
        check_readout,
    )
    from sap_graph.experiments.train.runs import plan_splits
    if isinstance(readouts, (str, Variant)):
        raise ConfigError('readouts', f"'readouts' must be a list of "
                          f"readouts (got {readouts!r})")
    variants = parse_variants(readouts)
    unknown = sorted(set(config) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(unknown[0], f"unknown option(s) "
                          f"{', '.join(unknown)}")
    base = TrainConfig(**{**config, 'dataset': dataset
                          if isinstance(dataset, str) else 'graphs'})
    if not isinstance(dataset, str):  # Not loaded by name: no data root,
        check_data_options(base, 'graphs')  # columns or TU features.
    # A loaded task's protocol is its kind's (seeds for molecules, OGB).
    validate_config(base, dataset.kind if isinstance(dataset, GraphTask)
                    else None)
    for v in variants:
        check_readout(replace(base, **v.config()))
    _check_out(out)
    if render and not osp.isdir(osp.join(out, 'runs')):
        raise ConfigError('out', f"no finished run of this comparison is "
                          f"in '{out}' (it has no runs/ folder): nothing "
                          f"to render; is it the comparison's output "
                          f"folder?")
    task = _load(dataset, base)
    check_task(task)
    _check_labels(task)
    base = resolve_config(base, task.kind)
    try:
        splits = plan_splits(task, base)
    except ValueError as e:
        if isinstance(e, (ConfigError, DatasetFormatError)):
            raise
        raise ConfigError('folds', str(e)) from None
    for v in variants:
        build_model(replace(base, **v.config()), task)
    return task, RunPlan(task, base, variants, lrs, splits), variants


def compare(
    dataset: Any,
    readouts: Sequence[Union[str, Variant]] = DEFAULT_READOUTS,
    out: str = 'compare',
    lrs: Sequence[float] = DEFAULT_LRS,
    workers: int = 1,
    threads: int = 1,
    shard: Tuple[int, int] = (0, 1),
    train: bool = True,
    write: bool = True,
    progress: bool = True,
    command: Optional[str] = None,
    **config: Any,
) -> ComparisonResult:
    r"""Compares readouts on one dataset and writes
    :obj:`out/report.md`, :obj:`out/results.csv` (one row per run) and
    :obj:`out/compare.png` (with matplotlib); finished runs are kept in
    :obj:`out/runs/`, so that calling it again trains only what is
    missing, and gives the same results.

    Args:
        dataset (str or Dataset or list of Data): A dataset name or CSV
            file of molecules (see
            :func:`~sap_graph.experiments.data.load_dataset`), or graphs
            with labels (see
            :func:`~sap_graph.experiments.data.graphs.task_from_graphs`).
        readouts (list, optional): Variants of
            :data:`~sap_graph.experiments.compare.variants.VARIANTS`,
            registered readouts, or readouts with JSON options
            (:obj:`'sap{"rezero": true}'`).
            (default: :data:`DEFAULT_READOUTS`)
        out (str, optional): The output folder. (default: :obj:`'compare'`)
        lrs (list of float, optional): Learning rates, chosen per
            fold/seed on validation. (default: :obj:`(0.01, 0.001)`)
        workers (int, optional): Local worker processes.
            (default: :obj:`1`)
        threads (int, optional): Torch threads per worker.
            (default: :obj:`1`)
        shard (tuple, optional): :obj:`(i, n)`: train only every
            :obj:`n`-th run from the :obj:`i`-th (cluster job arrays).
            (default: :obj:`(0, 1)`)
        train (bool, optional): :obj:`False` only renders the finished
            runs; with none of this plan in :obj:`out`, it raises a
            :class:`ConfigError` and writes nothing. (default:
            :obj:`True`)
        write (bool, optional): :obj:`False` returns the result without
            writing the report files. (default: :obj:`True`)
        progress (bool, optional): Show a progress bar.
        command (str, optional): The command line, for the report.
        **config: :class:`~sap_graph.experiments.train.TrainConfig` fields
            (:obj:`epochs`, :obj:`hidden_channels`, :obj:`seeds`,
            :obj:`folds`, :obj:`smiles_column`, :obj:`targets`,
            :obj:`metric` (:obj:`'mae'` for regression), ...);
            unset ones take the defaults of the dataset's kind.

    Returns:
        ComparisonResult: The table, runs and tests (also when partial).
    """
    _check_arguments(lrs, workers, threads, shard, dict(
        train=train, write=write, progress=progress), command)
    lrs = [float(lr) for lr in lrs]
    if config.get('lr') is not None:
        raise ConfigError('lr', "compare chooses the learning rate per "
                          "fold/seed on validation among 'lrs'; pass "
                          "lrs=[...] instead of lr")
    config.pop('lr', None)
    cache = osp.join(out, 'runs')
    task, plan, variants = prepare(dataset, readouts, lrs, config, out,
                                   render=not train)
    if train:
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError as e:
            raise OutputError(f"output folder '{out}' cannot be made "
                              f"({e.strerror or e})") from None
        for _ in execute(plan, cache, workers, shard, threads, progress):
            pass
    finished = load_finished(plan, cache)
    records = [finished[r] for r in plan.runs if r in finished]
    if not train and not records:  # Rendering nothing would overwrite.
        raise ConfigError('out', f"no finished run of this comparison is "
                          f"in '{cache}' ({len(plan.runs)} planned): "
                          f"nothing to render; the options (readouts, "
                          f"learning rates, budget, seeds, folds, data) "
                          f"may differ from those the runs were trained "
                          f"with")
    base = asdict(plan.base)
    base['lrs'] = list(lrs)
    base['command'] = command or _python_call(dataset, variants, lrs,
                                              config, out)
    result = summarise(records, variants, [s.unit for s in plan.splits],
                       task.stats(), task.metric, task.higher_is_better,
                       protocol_of(task, plan.base.folds), base,
                       len(plan.runs))
    if write and (shard == (0, 1) or not result.missing):
        write_report(result, out)
    return result


def write_report(result: ComparisonResult, out: str) -> None:
    r"""Writes :obj:`report.md`, :obj:`results.csv` and (with matplotlib)
    :obj:`compare.png` into :obj:`out`, each atomically.

    Raises:
        OutputError: Naming the first file that cannot be written (the
            finished runs stay in the cache: render again with
            :obj:`train=False` once the folder is writable).
    """
    path = osp.join(out, 'report.md')
    try:
        text = result.markdown()
        atomic_write(path, lambda f: f.write(text.encode()))
        path = osp.join(out, 'results.csv')
        table = result.csv()
        atomic_write(path, lambda f: f.write(table.encode()))
        path = osp.join(out, 'compare.png')
        try:
            from sap_graph.experiments.compare.render import figure
        except ImportError:
            print("compare.png skipped: drawing needs matplotlib (pip "
                  "install 'sap-graph[plot]')", file=sys.stderr)
            return
        figure(result, path)
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write '{path}' ({e.strerror or e}); the "
                          f"finished runs are kept: render them again once "
                          f"it can be written") from None


def _python_call(dataset: Any, variants: Sequence[Variant],
                 lrs: Sequence[float], config: Dict[str, Any],
                 out: str) -> str:
    args = [repr(dataset if isinstance(dataset, str) else '<graphs>'),
            repr([v.name for v in variants]), f'out={out!r}',
            f'lrs={list(lrs)!r}']
    args += [f'{k}={v!r}' for k, v in sorted(config.items())]
    return ('from sap_graph.experiments.compare import compare\n'
            f"compare({', '.join(args)})")


#: The flags of :obj:`sap-graph compare` that say how this process
#: runs, not what the comparison is (they are not in the runs' cache
#: keys): the flag's name without dashes -> whether it takes a value.
HOW_TO_RUN = {'shard': True, 'workers': True, 'threads': True,
              'render_only': False, 'no_progress': False,
              'no_download': False}


def _how_to_run(arg: str) -> Optional[str]:
    r"""The :data:`HOW_TO_RUN` flag :obj:`arg` (:obj:`--workers`,
    :obj:`--render-only`, :obj:`--shard=0/2`, or an abbreviation argparse
    took) names, else :obj:`None`."""
    if not arg.startswith('--') or arg == '--':
        return None
    name = arg.split('=', 1)[0][2:].replace('-', '_')
    if name in HOW_TO_RUN:
        return name
    longer = [f for f in HOW_TO_RUN if f.startswith(name)]
    return longer[0] if len(longer) == 1 else None


def command_line(argv: Sequence[str]) -> str:
    r"""The shell command that reproduces the whole comparison
    :obj:`sap-graph` was run with: :obj:`argv` without the flags of
    :data:`HOW_TO_RUN` (:obj:`--shard`, :obj:`--render_only`,
    :obj:`--workers`, ...), which do not change the results."""
    kept: List[str] = []
    value = False  # The next argument is the value of a left-out flag.
    for arg in argv:
        if value:
            value = False
            continue
        flag = _how_to_run(arg)
        if flag is None:
            kept.append(arg)
        else:
            value = HOW_TO_RUN[flag] and '=' not in arg
    return 'sap-graph ' + ' '.join(shlex.quote(a) for a in kept)


__all__ = ['DEFAULT_LRS', 'HOW_TO_RUN', 'command_line', 'compare', 'prepare',
           'write_report']
