r"""The resumable state of a run (:class:`TrainState`), and the checks
of a resumption, written once (:func:`check_resume`).
"""
from __future__ import annotations

import os.path as osp
import time
from dataclasses import asdict
from typing import (
    Any,
    Dict,
    List,
    Optional,
)

import torch
from torch import Tensor
from tqdm.auto import tqdm

import sap_graph
from sap_graph.experiments import distributed
from sap_graph.experiments.checkpoint import (
    CheckpointError,
    atomic_save,
    safe_load,
)
from sap_graph.experiments.data import GraphTask
from sap_graph.experiments.files import (
    release,
    try_lock,
)
from sap_graph.experiments.train.config import ConfigError, TrainConfig

# Resumable state ##########################################################

def check_resume(cfg: TrainConfig) -> None:
    r"""The checks of :obj:`cfg.state` and :obj:`cfg.resume`, before any
    data is loaded: resuming needs a state file, and an existing state file
    is only ever continued, never overwritten.

    Raises:
        ConfigError: Naming the field to change.
    """
    if cfg.resume and not cfg.state:
        raise ConfigError('resume', "resuming needs the training state "
                          "file of the interrupted run ('state')")
    if cfg.state and not cfg.resume and osp.exists(cfg.state):
        raise ConfigError('state', f"training state '{cfg.state}' exists: "
                          f"resume it, or delete it to start over")


#: Config fields that may change between a run and its resumption.
RESUME_FREE_FIELDS = frozenset({
    'root', 'download', 'device', 'progress', 'verbose', 'out',
    'checkpoint', 'state', 'resume'})


class TrainState:
    r"""The resumable state of a cross-validation or multi-seed run, kept
    in :obj:`cfg.state` and rewritten atomically after every epoch: the
    records (and the best selected weights) of the finished folds/seeds,
    and a :func:`fit` snapshot of the interrupted one (under
    :obj:`torchrun` with the random generator states of every rank; rank 0
    writes the file, each rank restores its own states from it). Tensors
    and plain containers only, loaded with :obj:`weights_only=True`.

    Args:
        cfg (TrainConfig): The resolved configuration; :obj:`cfg.state`
            is the file (:obj:`None` keeps nothing), :obj:`cfg.resume`
            continues it.
        task (GraphTask): The dataset.
        protocol (str): :obj:`'folds'` or :obj:`'seeds'`.
        splits (list of dict, optional): The splits, stored to check that
            a resumed run uses the same. (default: :obj:`None`)
    """

    FORMAT = 'sap_graph.train_state'
    #: 2: the dataset fingerprint holds :attr:`GraphTask.digest`; the
    #: random generator states of every rank (:obj:`'world_size'` of them).
    VERSION = 2

    def __init__(self, cfg: TrainConfig, task: GraphTask, protocol: str,
                 splits: Optional[List[Dict[str, Tensor]]] = None) -> None:
        self.path = cfg.state
        self.verbose = cfg.verbose
        self.resumed = False
        #: Seconds of the protocol before this process (those of the state
        #: resumed, up to its last save).
        self.elapsed_before = 0.0
        self._clock = time.perf_counter()
        self._lock: Optional[int] = None
        self.data: Dict[str, Any] = {
            'format': self.FORMAT, 'version': self.VERSION,
            'sap_graph_version': sap_graph.__version__,
            'config': asdict(cfg), 'protocol': protocol,
            'world_size': _world_size(),
            # Only a state file needs it (the digest reads all the data).
            'dataset': _fingerprint(task) if self.path else None,
            'splits': [{k: v.clone() for k, v in s.items()}
                       for s in splits or []],
            'runs': [], 'best': None, 'current': None,
        }
        check_resume(cfg)
        if not self.path:
            return
        if distributed.is_main():  # One live writer per state file,
            # whatever its spelling (a symlink to it is the same file).
            self._lock = try_lock(osp.realpath(self.path) + '.lock',
                                  f"training state '{self.path}'")
        if not osp.exists(self.path):
            return
        try:
            check_resume(cfg)  # Again: it may have appeared meanwhile.
            saved = safe_load(self.path, 'training state')
            self._check(saved)
        except BaseException:
            self.close()
            raise
        self.data = saved
        self.data['config'] = asdict(cfg)
        self.elapsed_before = float(saved.get('elapsed', 0.0))
        self.resumed = True

    def _check(self, saved: Any) -> None:
        if (not isinstance(saved, dict)
                or saved.get('format') != self.FORMAT):
            raise CheckpointError(f"'{self.path}' is not a sap-graph "
                                  f"training state file")
        version = saved.get('version')
        if version != self.VERSION:
            old = isinstance(version, int) and version < self.VERSION
            raise CheckpointError(
                f"'{self.path}' has state format version {version} "
                f"(expected {self.VERSION})" + (
                    ": it was written by an older sap-graph "
                    f"({saved.get('sap_graph_version')}) without a digest "
                    "of the data, so resuming it could mix data; delete "
                    "it to start over" if old else
                    f": it was written by a newer sap-graph "
                    f"({saved.get('sap_graph_version')}); resume it with "
                    f"that one" if isinstance(version, int) else ""))
        if saved.get('protocol') != self.data['protocol']:
            raise ValueError(f"'{self.path}' holds a '{saved['protocol']}' "
                             f"run (expected '{self.data['protocol']}')")
        if saved.get('world_size') != self.data['world_size']:
            raise ValueError(
                f"cannot resume '{self.path}': it was written by a run of "
                f"{saved.get('world_size')} process(es), this one has "
                f"{self.data['world_size']}; each keeps its own random "
                f"generators, so resume with as many (the same torchrun "
                f"command)")
        mine, theirs = self.data['config'], saved.get('config', {})
        diff = [f'{k}={theirs.get(k)!r} (now {v!r})'
                for k, v in mine.items()
                if k not in RESUME_FREE_FIELDS and theirs.get(k) != v]
        if diff:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"with {', '.join(diff)}")
        theirs_data = dict(saved.get('dataset') or {})
        mine_data = dict(self.data['dataset'])
        theirs_digest = theirs_data.pop('digest', None)
        mine_digest = mine_data.pop('digest')
        if theirs_data != mine_data:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"for another dataset ({theirs_data})")
        if theirs_digest != mine_digest:
            raise ValueError(
                f"cannot resume '{self.path}': the data of dataset "
                f"'{mine_data.get('name')}' changed since it was written "
                f"(content digest {str(theirs_digest)[:12]}, now "
                f"{mine_digest[:12]}); delete it to start over")
        splits = saved.get('splits', [])
        same = len(splits) == len(self.data['splits']) and all(
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            for a, b in zip(splits, self.data['splits'], strict=True))
        if not same:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"with other splits")

    @property
    def runs(self) -> List[Dict[str, Any]]:
        r"""Records of the finished folds or seeds."""
        return self.data['runs']

    @property
    def best(self) -> Optional[Dict[str, Any]]:
        r"""The best selected model so far (:obj:`'key'`,
        :obj:`'state_dict'`, :obj:`'record'`)."""
        best = self.data['best']
        if best is not None:
            best = dict(best, key=tuple(best['key']))
        return best

    def snapshot(self, run: int) -> Optional[Dict[str, Any]]:
        r"""The :func:`fit` snapshot of run :obj:`run`, if interrupted."""
        current = self.data['current']
        if current is not None and current['run'] == run:
            if self.verbose and distributed.is_main():
                tqdm.write(f'Resuming run {run + 1} after epoch '
                           f"{current['fit']['epoch']:03d}")
            return current['fit']
        return None

    def epoch_done(self, run: int, snapshot: Dict[str, Any]) -> None:
        r"""Stores the snapshot of run :obj:`run` after an epoch."""
        self.data['current'] = {'run': run, 'fit': snapshot}
        self.save()

    def run_done(self, record: Dict[str, Any],
                 best: Optional[Dict[str, Any]]) -> None:
        r"""Stores a finished run and the best selected model so far."""
        self.data['runs'].append(record)
        if best is not None:
            best = dict(best, key=list(best['key']))
        self.data['best'] = best
        self.data['current'] = None
        self.save()

    def save(self) -> None:
        r"""Writes the state atomically (nothing without a path, and only
        on rank 0 under :obj:`torchrun`).

        Raises:
            OutputError: If it cannot be written (disk full, ...); the
                state written last is kept whole.
        """
        if self.path and distributed.is_main():
            self.data['elapsed'] = (self.elapsed_before + time.perf_counter()
                                    - self._clock)
            # Through a symlink to the file it names (kept a link).
            atomic_save(self.data, osp.realpath(self.path),
                        'training state')

    def close(self) -> None:
        r"""Releases the lock on the state file."""
        release(self._lock)
        self._lock = None


def _world_size() -> int:
    ctx = distributed.context()
    return 1 if ctx is None else ctx.world_size


def _fingerprint(task: GraphTask) -> Dict[str, Any]:
    stats = task.stats()
    out = {k: stats.get(k) for k in ('name', 'num_graphs', 'num_classes',
                                     'num_features', 'num_nodes',
                                     'num_directed_edges', 'class_counts')}
    out['digest'] = task.digest  # The content, not only its size.
    return out
