"""Distributed data parallel training (gloo on CPU) reproduces the
single-process run."""
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
from torch_geometric.loader import DataLoader

import sap_graph.experiments.train as train_mod
from sap_graph.experiments import distributed
from sap_graph.experiments.cli import main
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.distributed import (
    DistContext,
    DistributedBatchNorm1d,
)
from sap_graph.experiments.train import (
    ShardedLoader,
    TrainConfig,
    resolve_config,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def single_rank_group(tmp_path):
    """A real gloo process group of one rank (no ports: a file store)."""
    dist.init_process_group('gloo', init_method=f"file://{tmp_path / 'pg'}",
                            rank=0, world_size=1)
    distributed._CTX = DistContext(0, 1, 0, 'gloo', torch.device('cpu'))
    yield
    distributed._CTX = None
    dist.destroy_process_group()


def test_shards_make_up_the_single_process_batches(monkeypatch):
    data = [d.clone() for d in load_synthetic(num_graphs=45).dataset]
    for i, d in enumerate(data):
        d.gid = torch.tensor([i])
    single = [b.gid.tolist() for b in DataLoader(
        data, batch_size=8, shuffle=True,
        generator=torch.Generator().manual_seed(3))]
    shards = []
    for rank in range(3):  # 45 = 5 * 8 + 5: the last batch is uneven.
        monkeypatch.setattr(distributed, '_CTX',
                            DistContext(rank, 3, rank, 'gloo',
                                        torch.device('cpu')))
        loader = ShardedLoader(data, 8, torch.Generator().manual_seed(3))
        shards.append([b.gid.tolist() for b in loader])
    assert all(len(s) == len(single) for s in shards)
    for step, batch in enumerate(single):
        for rank in range(3):
            assert shards[rank][step] == batch[rank::3]


def test_distributed_batchnorm_matches_batchnorm(single_rank_group,
                                                 monkeypatch):
    monkeypatch.setattr(dist, 'get_world_size', lambda *args, **kwargs: 2)
    torch.manual_seed(0)
    ref, sync = torch.nn.BatchNorm1d(5), DistributedBatchNorm1d(5)
    x = (torch.randn(40, 5) * 3 + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    upstream = torch.randn(40, 5)
    (ref(x) * upstream).sum().backward()
    (sync(x2) * upstream).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sync.running_mean, ref.running_mean)
    torch.testing.assert_close(sync.running_var, ref.running_var)
    for name in ('weight', 'bias'):
        torch.testing.assert_close(getattr(sync, name).grad,
                                   getattr(ref, name).grad, rtol=1e-5,
                                   atol=1e-5)


def test_one_rank_reproduces_the_single_process_run(single_rank_group):
    """DDP, the sharded loader, the loss scaling and the gathered
    evaluation are exact with one rank."""
    task = load_synthetic(num_graphs=120, min_pairs=3, max_pairs=6)
    cfg = resolve_config(TrainConfig(
        heads=2, hidden_channels=8, num_layers=2, epochs=2, folds=2,
        batch_size=16, progress=False, verbose=False), 'synthetic')
    ctx, distributed._CTX = distributed._CTX, None
    ref = train_mod.cross_validate(task, cfg)
    distributed._CTX = ctx
    res = train_mod.cross_validate(task, cfg)
    for a, b in zip(ref['folds'], res['folds'], strict=True):
        for key in ('best_epoch', 'val_acc', 'val_loss', 'test_acc',
                    'test_loss'):
            assert a[key] == b[key], key
        assert a['final_train_loss'] == pytest.approx(b['final_train_loss'],
                                                      rel=1e-6)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_one(tmp_path, capsys):
    """Two gloo processes with half the batch each against one process.

    Tolerance: training, validation and test losses agree to 1e-4
    (relative; only the float summation order differs: the gradient
    all-reduce, the split batch norm statistics); accuracies agree up to
    one graph of the split, for a prediction whose two logits are equal up
    to that rounding. (With a bias on the Linear layers in front of
    BatchNorm, as in an earlier version, the rounding noise in those
    redundant biases' gradient was rescaled by Adam into real steps and the
    metrics differed by up to 0.08.)
    """
    flags = ['train', '--dataset', 'synthetic', '--epochs', '2', '--folds',
             '2', '--hidden_channels', '8', '--heads', '2', '--batch_size',
             '32', '--dropout', '0', '--device', 'cpu', '--no-progress']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    out, ckpt = tmp_path / 'ddp.json', tmp_path / 'ddp.pt'
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_addr=127.0.0.1', f'--master_port={free_port()}',
         '-m', 'sap_graph', *flags, '--out', str(out), '--checkpoint',
         str(ckpt)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('synthetic readout=sap') == 1  # Rank 0 only.
    assert proc.stdout.count('Fold: 01') == 1
    assert not list(tmp_path.glob('.tmp-*'))

    ref_out = tmp_path / 'single.json'
    assert main(flags + ['--quiet', '--out', str(ref_out)]) == 0
    capsys.readouterr()
    ddp, ref = json.loads(out.read_text()), json.loads(ref_out.read_text())
    assert ddp['distributed'] == {'world_size': 2, 'backend': 'gloo',
                                  'per_rank_batch_size': 16}
    assert 'distributed' not in ref
    for a, b in zip(ref['folds'], ddp['folds'], strict=True):
        assert a['train_size'] == b['train_size']
        assert a['test_size'] == b['test_size']
        for key in ('final_train_loss', 'val_loss', 'test_loss'):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
        for key in ('val', 'test'):
            assert b[f'{key}_acc'] == pytest.approx(
                a[f'{key}_acc'], abs=1.0 / a[f'{key}_size'] + 1e-6), key
    one_graph = max(1.0 / f['test_size'] for f in ref['folds']) + 1e-6
    assert ddp['test_mean'] == pytest.approx(ref['test_mean'], abs=one_graph)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert 'norms.0.running_mean' in state  # Plain BatchNorm keys.


def test_torchrun_resume_restores_every_ranks_generators(tmp_path):
    """Two gloo processes with node dropout (the ranks' generators drift
    apart), interrupted after epoch 2 and resumed in scrambled processes:
    the records equal the uninterrupted run's exactly (with rank 0's
    generators restored on every rank, fold 0 differed)."""
    out = tmp_path / 'resume.json'
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_addr=127.0.0.1', f'--master_port={free_port()}',
         os.path.join(ROOT, 'tests', 'distributed_resume_case.py'),
         str(tmp_path / 'state.pt'), str(out)], cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['resumed'] and result['world_size'] == 2
    assert result['res'] == result['ref']
    saved = torch.load(tmp_path / 'state.pt', weights_only=True)
    assert saved['world_size'] == 2


def test_resume_with_another_number_of_processes_is_refused(tmp_path):
    task = load_synthetic(num_graphs=40, min_pairs=2, max_pairs=3)
    cfg = resolve_config(TrainConfig(
        hidden_channels=8, num_layers=1, epochs=1, folds=2, batch_size=16,
        progress=False, verbose=False, state=str(tmp_path / 's.pt')),
        'synthetic')
    train_mod.cross_validate(task, cfg)  # One process.
    distributed._CTX = DistContext(0, 2, 0, 'gloo', torch.device('cpu'))
    try:
        with pytest.raises(ValueError, match=r"written by a run of 1 "
                           r"process\(es\), this one has 2"):
            train_mod.TrainState(replace(cfg, resume=True), task, 'folds')
    finally:
        distributed._CTX = None


def test_batch_size_must_split_evenly(monkeypatch):
    monkeypatch.setattr(distributed, 'init', lambda device: DistContext(
        0, 3, 0, 'gloo', torch.device('cpu')))
    with pytest.raises(ValueError, match='multiple of the 3 processes'):
        train_mod.run(TrainConfig(batch_size=32, epochs=1, folds=2,
                                  progress=False),
                      task=load_synthetic(num_graphs=20))


@pytest.mark.parametrize('main_rank', [True, False])
def test_ctrl_c_is_reported_by_rank_zero_only(monkeypatch, capsys,
                                              main_rank):
    """torchrun interrupts every rank: rank 0 prints the one line, the
    others exit with the same status and print nothing."""
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, 'run', interrupted)
    monkeypatch.setattr(distributed, 'is_main', lambda: main_rank)
    status = main(['train', '--dataset', 'synthetic', '--state', 's.pt',
                   '--no_progress'])
    err = capsys.readouterr().err
    assert status == 130
    if main_rank:
        assert err == ('error: interrupted; continue with --resume --state '
                       's.pt\n')
    else:
        assert err == ''
