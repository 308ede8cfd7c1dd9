r"""The comparison engine: a plan of runs (every fold or seed of the
dataset's protocol x readout variant x learning rate), each trained by
:func:`~sap_graph.experiments.train.runs.run_split` and written to the
cache folder as soon as it finishes, so that an interrupted comparison
resumes where it stopped, and so that several processes (:obj:`workers`)
or cluster nodes (:obj:`shard`) share the work through one folder.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import os.path as osp
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from sap_graph.experiments.compare.records import read_record, write_record
from sap_graph.experiments.compare.variants import Variant
from sap_graph.experiments.data import GraphTask
from sap_graph.experiments.data.task import tensor_digest
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.files import (
    LockedError,
    OutputError,
    release,
    try_lock,
)
from sap_graph.experiments.readouts import readout_options
from sap_graph.experiments.signals import (
    exit_with_parent,
    handling,
    holding_back,
    raise_interrupt,
)
from sap_graph.experiments.train.config import TrainConfig, resolve_device
from sap_graph.experiments.train.protocols import readout_arguments
from sap_graph.experiments.train.runs import Split

#: The :class:`TrainConfig` fields that make two runs different (the
#: model and training budget); the rest (paths, progress, ...) do not.
BUDGET_FIELDS = ('heads', 'concat', 'readout_kwargs', 'readout', 'conv',
                 'hidden_channels', 'num_layers', 'jk', 'dropout',
                 'layer_dropout', 'batch_size', 'lr', 'lr_step', 'lr_gamma',
                 'weight_decay', 'epochs', 'val_ratio')


@dataclass(frozen=True)
class Run:
    r"""One training run of a comparison."""
    variant: str
    lr: float
    unit: str
    split: int  # Position in the plan's splits.
    key: str  # Its cache file name (without .json).


def task_fingerprint(task: GraphTask) -> Dict[str, Any]:
    r"""What identifies the data of :obj:`task` in cache keys: its
    statistics and a digest of its labels and structure."""
    stats = task.stats()
    data = getattr(task.dataset, '_data', None)
    values = [getattr(data, key, None)
              for key in ('y', 'edge_index', 'x', 'edge_attr')]
    digest = tensor_digest(*(v for v in values if v is not None))
    keep = ('name', 'kind', 'num_graphs', 'num_classes', 'num_features',
            'num_edge_features', 'metric', 'task_type', 'num_nodes',
            'num_directed_edges')
    return {**{k: stats.get(k) for k in keep}, 'digest': digest}


def run_config(base: TrainConfig, variant: Variant, lr: float) -> TrainConfig:
    r"""The configuration of one run: the resolved :obj:`base`, the
    variant's readout options and the learning rate."""
    return replace(base, **variant.config(), lr=lr, out=None,
                   checkpoint=None, state=None, resume=False,
                   progress=False, verbose=False)


class RunPlan:
    r"""Every run of a comparison, in fold/seed-major order (all readouts
    finish a fold before the next starts, so a partial comparison still
    pairs).

    Args:
        task (GraphTask): The dataset.
        base (TrainConfig): The resolved configuration shared by all runs.
        variants (list of Variant): The readouts.
        lrs (list of float): The learning rates, chosen per fold/seed on
            validation.
        splits (list of Split): The folds or seeds.
    """

    def __init__(self, task: GraphTask, base: TrainConfig,
                 variants: Sequence[Variant], lrs: Sequence[float],
                 splits: Sequence[Split]) -> None:
        self.task, self.base = task, base
        self.variants = {v.name: v for v in variants}
        self.lrs, self.splits = list(lrs), list(splits)
        self.fingerprint = task_fingerprint(task)
        self.runs: List[Run] = []
        for i, split in enumerate(self.splits):
            for v in variants:
                for lr in self.lrs:
                    self.runs.append(Run(v.name, lr, split.unit, i,
                                         self._key(v, lr, split)))
        same: Dict[str, str] = {}
        for run in self.runs[:len(self.variants) * len(self.lrs)]:
            first = same.setdefault(_digest(run), run.variant)
            if first != run.variant:
                raise ConfigError('readouts', f"'{first}' and "
                                  f"'{run.variant}' are the same readout "
                                  f"(the same options, defaults filled "
                                  f"in); give it once")

    def config(self, run: Run) -> TrainConfig:
        return run_config(self.base, self.variants[run.variant], run.lr)

    def _key(self, variant: Variant, lr: float, split: Split) -> str:
        config = run_config(self.base, variant, lr)
        cfg = asdict(config)
        ident = {
            'data': self.fingerprint,
            'config': {k: cfg[k] for k in BUDGET_FIELDS
                       if k not in ('heads', 'concat', 'readout_kwargs')},
            # The options the readout gets, defaults filled in: spelling a
            # default out is the same run; a run of the layer's old
            # default is not a run of its new one.
            'readout': readout_options(config.readout,
                                       **readout_arguments(config)),
            'unit': split.unit, 'seed': split.seed,
            'split': [split.index[k].tolist() for k in ('train', 'val',
                                                        'test')],
        }
        text = json.dumps(ident, sort_keys=True, default=str)
        slug = ''.join(c if c.isalnum() or c in '-_.' else '_'
                       for c in variant.name)[:40]
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f'{slug}-lr{lr:g}-{split.unit}-{digest}'


# Running ##################################################################


def _digest(run: Run) -> str:
    return run.key.rsplit('-', 1)[1]


def _run_path(cache: str, run: Run) -> str:
    r"""The record of :obj:`run`: its own file, else a finished run with
    the same digest (the same model under another spelling of the
    readout, e.g. :obj:`'sap{"residual": "max"}'` for :obj:`sap`)."""
    path = osp.join(cache, f'{run.key}.json')
    if not osp.exists(path):
        same = glob.glob(osp.join(glob.escape(cache), f'*-{_digest(run)}'
                                  f'.json'))
        return same[0] if same else path
    return path


def load_finished(plan: RunPlan, cache: str) -> Dict[Run, Dict[str, Any]]:
    r"""The records of the runs of :obj:`plan` found in :obj:`cache`; a
    damaged one is left out with a warning (see
    :func:`~sap_graph.experiments.compare.records.read_record`)."""
    out = {}
    for run in plan.runs:
        record = read_record(_run_path(cache, run), warn='left out of the '
                             'report; rerun to train that run again')
        if record is not None:
            out[run] = dict(record, readout=run.variant)
    return out


#: The dataset and plan of a worker process (set by :func:`_init`).
_WORKER: Dict[str, Any] = {}


def _init(plan: RunPlan, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER['plan'] = plan


#: Seconds the workers get to stop after Ctrl-C before they are killed.
STOP_GRACE = 10.0


def _stop(pool: Any) -> None:
    r"""Stops the workers of :obj:`pool` now; runs they were training
    are not written (each record is written atomically when done). A
    worker that has not exited :data:`STOP_GRACE` seconds later (stuck in
    a long operation) is killed, so that Ctrl-C never waits on it; a
    second Ctrl-C meanwhile is ignored (it would cancel the kill)."""
    with handling(signal.SIGINT, signal.SIG_IGN):
        _stop_workers(pool)


def _stop_workers(pool: Any) -> None:
    stop = getattr(signal, 'SIGUSR1', signal.SIGTERM)  # Windows: kill.
    processes = list((getattr(pool, '_processes', None) or {}).values())
    for process in processes:
        try:
            os.kill(process.pid, stop)
        except OSError:  # Already gone.
            pass
    manager = getattr(pool, '_executor_manager_thread', None)
    pool.shutdown(wait=False, cancel_futures=True)  # Sends them home.
    deadline = time.monotonic() + STOP_GRACE
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    if manager is not None:
        manager.join()


def _interrupted(signum: int, frame: Any) -> None:
    _WORKER['stopped'] = True  # The runs queued to it are skipped.
    if _WORKER.get('busy'):  # End the run in hand; its error goes back to
        raise_interrupt(signum, frame)  # the parent, which ignores it.
    # Idle (waiting for work, or starting): nothing to end; the pool's
    # shutdown then lets it exit quietly, without a KeyboardInterrupt
    # traceback from inside the pool's queue.


def _init_worker(plan: RunPlan, threads: int, parent: int) -> None:
    # A parent killed outright (SIGKILL, OOM killer) cannot stop its
    # workers: they end with it instead of training on unseen.
    exit_with_parent(parent)
    # _stop's signal ends the run in hand (its record is not written);
    # the worker then exits as a pool worker does, cleaning up after
    # itself.
    if hasattr(signal, 'SIGUSR1'):
        signal.signal(signal.SIGUSR1, _interrupted)
    _init(plan, threads)


def execute_run(plan: RunPlan, run: Run) -> Dict[str, Any]:
    r"""Trains one run and returns its record."""
    from sap_graph.experiments.train.provenance import versions
    from sap_graph.experiments.train.runs import run_split
    cfg = plan.config(run)
    split = plan.splits[run.split]
    start = time.perf_counter()
    record, _ = run_split(plan.task, cfg, split.index, split.seed,
                          resolve_device(cfg.device))
    metric = plan.task.metric
    record.update(
        readout=run.variant, lr=run.lr, unit=run.unit,
        val=record[f'val_{metric}'], test=record[f'test_{metric}'],
        metric=metric, wall_time=time.perf_counter() - start,
        threads=torch.get_num_threads(),
        versions=versions(record.pop('sap_graph_paths')),
        config={k: getattr(cfg, k) for k in BUDGET_FIELDS})
    return record


def _work(run: Run, path: str) -> Optional[Dict[str, Any]]:
    r"""Runs :obj:`run` in this process unless another process holds it;
    writes its record atomically to :obj:`path`."""
    if _WORKER.get('stopped'):
        return None
    lock_path = osp.join(osp.dirname(path), '.locks',
                         osp.basename(path) + '.lock')
    try:
        lock = try_lock(lock_path, 'run')
    except LockedError:
        return None  # Another process trains it.
    except OSError as e:
        raise OutputError(f"cannot lock run record '{path}' (lock "
                          f"'{lock_path}': {e.strerror or e})") from None
    try:
        _WORKER['busy'] = True  # _interrupted may stop it from now on.
        if _WORKER.get('stopped'):
            return None
        record = read_record(path)  # Finished meanwhile (not damaged)?
        if record is None:
            record = execute_run(_WORKER['plan'], run)
            write_record(path, record)
        return record
    finally:
        _WORKER['busy'] = False
        release(lock)


def pending(plan: RunPlan, cache: str,
            shard: Tuple[int, int] = (0, 1)) -> List[Run]:
    r"""The runs of shard :obj:`i` of :obj:`n` (every :obj:`n`-th run of
    the plan, from the :obj:`i`-th) that are not in :obj:`cache` yet, or
    whose record there is damaged (with a warning naming the file: it is
    trained again and replaced)."""
    return [r for r in _shard_runs(plan, shard) if read_record(
        _run_path(cache, r), warn='training that run again') is None]


def _shard_runs(plan: RunPlan, shard: Tuple[int, int]) -> List[Run]:
    i, n = shard  # Every n-th run of the plan, from the i-th.
    return plan.runs[i::n]


def execute(plan: RunPlan, cache: str, workers: int = 1,
            shard: Tuple[int, int] = (0, 1), threads: int = 1,
            progress: bool = True) -> Iterator[Tuple[Run, Dict[str, Any]]]:
    r"""Trains the pending runs of :obj:`plan` (see :func:`pending`) in
    :obj:`workers` processes of :obj:`threads` threads each, writing each
    record to :obj:`cache` as it finishes; yields :obj:`(run, record)`
    for each. Runs another process holds (a lock per run) are skipped."""
    from tqdm.auto import tqdm
    if workers < 1 or threads < 1:
        raise ConfigError('workers', "'workers' and 'threads' must be >= 1")
    todo = pending(plan, cache, shard)
    mine = len(_shard_runs(plan, shard))
    if progress and todo and len(todo) < mine:
        print(f'Resuming: {mine - len(todo)} of {mine} runs are in '
              f'{cache}; {len(todo)} to train', file=sys.stderr)
    elif progress and not todo and mine:
        print(f'All {mine} runs are in {cache}; nothing to train',
              file=sys.stderr)
    if not todo:
        return
    try:
        os.makedirs(osp.join(cache, '.locks'), exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot make the run locks folder "
                          f"'{osp.join(cache, '.locks')}' "
                          f"({e.strerror or e})") from None
    bar = tqdm(total=len(todo), desc='Runs', unit='run', disable=not
               progress, dynamic_ncols=True, smoothing=0.05)
    try:
        if workers == 1:
            previous = torch.get_num_threads()
            _init(plan, threads)
            try:
                for run in todo:
                    record = _work(run, _run_path(cache, run))
                    bar.update()
                    if record is not None:
                        yield run, record
            finally:
                torch.set_num_threads(previous)
            return
        import multiprocessing
        ctx = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(workers, mp_context=ctx,
                                 initializer=_init_worker,
                                 initargs=(plan, threads,
                                           os.getpid())) as pool:
            # Ctrl-C reaches the whole process group: the parent alone
            # answers it (and stops the workers), so that it is one line,
            # not a traceback per worker. Workers started here (submitting
            # starts them) inherit SIGINT blocked; a Ctrl-C meanwhile
            # raises in the parent inside the try (at once, or when the
            # block ends).
            futures: Dict[Any, Run] = {}
            try:
                with holding_back(signal.SIGINT):
                    for run in todo:
                        futures[pool.submit(
                            _work, run, _run_path(cache, run))] = run
                for future in as_completed(futures):
                    record = future.result()
                    bar.update()
                    if record is not None:
                        yield futures[future], record
            except BaseException:
                _stop(pool)
                raise
    finally:
        bar.close()


__all__ = ['BUDGET_FIELDS', 'RunPlan', 'Run', 'execute', 'execute_run',
           'load_finished', 'pending', 'run_config', 'task_fingerprint']
