r"""The cache of the fusion experiment's stage 1 embeddings
(:obj:`examples/multimodal_fusion.py --embeddings PATH`).

Stage 1 (:func:`~.multimodal.train_encoders`) is the slow part of the
experiment; its result can be kept in a file and read back by a later
run. The file records the settings that made it (:func:`stage1_settings`:
the stage 1 fields of :class:`~.multimodal.FusionConfig`, the seed, the
fingerprints and a digest of the molecules and split), and
:func:`cached_encoders` reads it back only when they are this run's;
otherwise stage 1 runs again and the file is replaced (say, after a
changed :obj:`--graph_channels` or :obj:`--limit`, which once reused the
stale embeddings silently).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from sap_graph.experiments.checkpoint import atomic_save
from sap_graph.experiments.data.task import tensor_digest
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.files import OutputError, check_writable
from sap_graph.experiments.seq.multimodal import FusionConfig, train_encoders
from sap_graph.experiments.seq.smiles import SmilesTask

#: The fields of :class:`~.multimodal.FusionConfig` that stage 1 reads.
STAGE1_FIELDS = ('graph_channels', 'graph_layers', 'sequence_channels',
                 'fingerprint_channels', 'encoder_epochs', 'encoder_lr',
                 'batch_size')

#: The layout of the cache file; another one is recomputed.
CACHE_VERSION = 1


def _digest(*tensors: Tensor) -> str:
    return tensor_digest(*tensors)[:16]


def stage1_settings(cfg: FusionConfig, task: SmilesTask, fp: Tensor,
                    fingerprints: str, seed: int = 0) -> Dict[str, Any]:
    r"""Everything stage 1 depends on: the :data:`STAGE1_FIELDS` of
    :obj:`cfg`, the :obj:`seed`, the kind of :obj:`fingerprints`, the
    split sizes, and digests of the tokens, labels and split of
    :obj:`task` (a :obj:`--limit` changes the split) and of the
    fingerprints :obj:`fp`."""
    split = [task.split_idx[k] for k in ('train', 'valid', 'test')]
    return {'version': CACHE_VERSION,
            **{name: getattr(cfg, name) for name in STAGE1_FIELDS},
            'seed': seed, 'fingerprints': fingerprints,
            'molecules': len(task.smiles),
            'max_length': int(task.tokens.size(1)),
            'split_sizes': {k: int(v.numel())
                            for k, v in task.split_idx.items()},
            'data': _digest(task.tokens, task.lengths, task.y),
            'split': _digest(*split), 'fingerprint_data': _digest(fp)}


def changed_settings(cached: Optional[Dict[str, Any]],
                     settings: Dict[str, Any]) -> List[str]:
    r"""What differs between the :obj:`cached` settings and these
    :obj:`settings`, as :obj:`'name: old -> new'` (empty when none)."""
    if not isinstance(cached, dict):
        return ['no settings recorded (an older cache)']
    return [f'{name}: {cached.get(name)!r} -> {value!r}'
            for name, value in settings.items()
            if cached.get(name) != value]


def check_cache_path(embeddings: Optional[str]) -> None:
    r"""Checks before any data is read that the cache file
    :obj:`embeddings` is a file (or can be made).

    Raises:
        ConfigError: Field :obj:`'embeddings'`.
    """
    if embeddings is None:
        return
    try:
        if osp.isdir(embeddings) or not osp.exists(embeddings):
            check_writable(embeddings, 'embeddings cache')
    except OutputError as e:
        raise ConfigError('embeddings', str(e)) from None


def read_cache(embeddings: str) -> Dict[str, Any]:
    r"""The stage 1 result stored in :obj:`embeddings`.

    Raises:
        ConfigError: Field :obj:`'embeddings'`, when the file is not such
            a cache (another file is never overwritten).
    """
    try:
        cached = torch.load(embeddings, weights_only=True)
    except Exception as e:  # Any unreadable file: refused alike.
        reason = f'torch.load cannot read it: {type(e).__name__}'
    else:
        if isinstance(cached, dict) and {'embeddings', 'unimodal'} <= set(
                cached):
            return cached
        reason = 'not a dict with embeddings and unimodal results'
    raise ConfigError('embeddings', f"'{embeddings}' is not a cache of "
                      f"stage 1 embeddings ({reason}); remove it or choose "
                      f"another file")


def cached_encoders(dataset, task: SmilesTask, fp: Tensor,
                    fingerprints: str, cfg: FusionConfig,
                    embeddings: Optional[str] = None, seed: int = 0,
                    log: bool = True) -> Dict[str, Any]:
    r""":func:`~.multimodal.train_encoders`'s result, read from the cache
    file :obj:`embeddings` when it was made with this run's
    :func:`stage1_settings`, else computed (and written there, replacing
    a stale cache, when :obj:`embeddings` is given). The result holds its
    settings under :obj:`'settings'`.

    Raises:
        ConfigError: Field :obj:`'embeddings'`: the file is not a cache
            (:func:`read_cache`), or a stale one that cannot be replaced
            (before stage 1 runs).
    """
    settings = stage1_settings(cfg, task, fp, fingerprints, seed)
    if embeddings is not None and osp.exists(embeddings):
        cached = read_cache(embeddings)
        changed = changed_settings(cached.get('settings'), settings)
        if not changed:
            if log:
                print(f'Loaded stage 1 embeddings from {embeddings}')
            return cached
        if not os.access(embeddings, os.W_OK):
            raise ConfigError('embeddings', f"'{embeddings}' holds stage 1 "
                              f"embeddings of other settings "
                              f"({'; '.join(changed)}) and is not "
                              f"writable")
        if log:
            print(f"Stage 1 embeddings in {embeddings} are of other "
                  f"settings ({'; '.join(changed)}): recomputing them")
    stage1 = train_encoders(dataset, task, fp, cfg, seed=seed, log=log)
    stage1['settings'] = settings
    if embeddings is not None:
        atomic_save(stage1, embeddings, 'embeddings cache')
        if log:
            print(f'Wrote stage 1 embeddings to {embeddings}')
    return stage1
