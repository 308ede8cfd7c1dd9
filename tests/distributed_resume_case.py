"""Run by ``tests/test_distributed.py`` under ``torchrun`` (2 gloo
processes): an uninterrupted cross-validation, the same run interrupted
after its second epoch (every rank at once, after the state was saved),
and its resumption in processes whose random generators were scrambled,
as in new processes. Rank 0 writes the records of both to ``argv[2]``.

Usage: ``torchrun --nproc_per_node=2 tests/distributed_resume_case.py
STATE OUT``.
"""
import json
import random
import sys

import numpy as np
import torch

from sap_graph.experiments import distributed
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.train import (
    TrainConfig,
    TrainState,
    cross_validate,
    resolve_config,
)

#: The values of a fold record that an interruption must not change.
EXACT_KEYS = ('best_epoch', 'val_acc', 'val_loss', 'test_acc', 'test_loss',
              'final_train_loss')


class Killed(Exception):
    """Stands in for the kill of every rank after a state write."""


def config(**kwargs):
    # Dropout draws from each rank's own torch generator; node dropout
    # (layer_dropout) draws as many numbers as the rank's share has nodes,
    # so the ranks' generators drift apart.
    return resolve_config(TrainConfig(
        heads=2, hidden_channels=8, num_layers=2, epochs=4, folds=2,
        batch_size=16, dropout=0.5, layer_dropout=0.3, progress=False,
        verbose=False, device='cpu', **kwargs), 'synthetic')


def main(state: str, out: str) -> None:
    ctx = distributed.init('cpu')
    task = load_synthetic(num_graphs=90, min_pairs=3, max_pairs=6)
    ref = cross_validate(task, config())

    original, calls = TrainState.epoch_done, []

    def epoch_done(self, run, snapshot):
        original(self, run, snapshot)
        calls.append(run)
        if len(calls) == 2:  # Epoch 2 of fold 0.
            raise Killed

    TrainState.epoch_done = epoch_done
    try:
        cross_validate(task, config(state=state))
    except Killed:
        pass
    TrainState.epoch_done = original
    # Killed processes restart once all are gone: none reads the state
    # before rank 0 has written it.
    torch.distributed.barrier()
    torch.manual_seed(1000 + ctx.rank)  # A new process's generators.
    random.seed(2000 + ctx.rank)
    np.random.seed(3000 + ctx.rank)
    res = cross_validate(task, config(state=state, resume=True))
    if ctx.rank == 0:
        with open(out, 'w') as f:
            json.dump({'resumed': res['resumed'], 'world_size':
                       ctx.world_size, 'ref': [
                           {k: r[k] for k in EXACT_KEYS}
                           for r in ref['folds']], 'res': [
                               {k: r[k] for k in EXACT_KEYS}
                               for r in res['folds']]}, f)
    distributed.shutdown()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
