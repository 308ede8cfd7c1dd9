r"""The configuration of a training run (:class:`TrainConfig`), its
per-dataset defaults, validation and device.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Tuple,
)

import torch
import torch_geometric

from sap_graph.experiments import distributed
from sap_graph.experiments.errors import ConfigError


@dataclass
class TrainConfig:
    r"""Everything a training run needs. :obj:`None` fields get a default
    that depends on the dataset (see :func:`resolve_config`)."""
    dataset: str = 'synthetic'
    root: Optional[str] = None
    readout: str = 'sap'
    heads: int = 4
    concat: Optional[bool] = None  # None: the readout's own default.
    readout_kwargs: Dict[str, Any] = field(default_factory=dict)
    conv: Optional[str] = None
    hidden_channels: Optional[int] = None
    num_layers: Optional[int] = None
    jk: str = 'last'
    dropout: Optional[float] = None
    layer_dropout: Optional[float] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    lr_step: Optional[int] = None
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    epochs: Optional[int] = None
    folds: Optional[int] = None
    val_ratio: float = 0.1
    seeds: Optional[List[int]] = None
    seed: int = 0
    node_features: str = 'auto'
    use_node_attr: bool = False
    download: bool = True
    device: str = 'auto'
    progress: bool = True
    verbose: bool = True
    out: Optional[str] = None
    checkpoint: Optional[str] = None
    state: Optional[str] = None
    resume: bool = False


#: Defaults per dataset kind, applied to the :obj:`None` fields.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    # Xu et al. (2019) GIN: hidden 64, 5 layers, batch 32, Adam 0.01 halved
    # every 50 epochs, dropout 0.5 before the last layer.
    'tu': dict(conv='gin', hidden_channels=64, num_layers=5, dropout=0.5,
               layer_dropout=0.0, batch_size=32, lr=0.01, lr_step=50,
               epochs=100, folds=10),
    'synthetic': dict(conv='gin', hidden_channels=32, num_layers=2,
                      dropout=0.5, layer_dropout=0.0, batch_size=32,
                      lr=0.01, lr_step=50, epochs=40, folds=5),
    # OGB's reference GIN: emb_dim 300, 5 layers, drop_ratio 0.5, batch 32,
    # Adam 0.001 without decay, 100 epochs.
    'ogb': dict(conv='gine', hidden_channels=300, num_layers=5, dropout=0.0,
                layer_dropout=0.5, batch_size=32, lr=0.001, lr_step=0,
                epochs=100, seeds=[0, 1, 2]),
}


#: Lower bounds of the numeric fields: (bound, inclusive).
_BOUNDS: Dict[str, Tuple[float, bool]] = {
    'heads': (1, True), 'hidden_channels': (1, True),
    'num_layers': (1, True), 'batch_size': (1, True), 'lr': (0, False),
    'lr_step': (0, True), 'weight_decay': (0, True), 'epochs': (1, True),
    'folds': (2, True), 'val_ratio': (0, False), 'dropout': (0, True),
    'layer_dropout': (0, True)}


def validate_config(cfg: TrainConfig) -> None:
    r"""Checks the set fields of :obj:`cfg` (before any data is loaded).

    Raises:
        ConfigError: For the first invalid field.
    """
    for name, (low, inclusive) in _BOUNDS.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(name, f"'{name}' must be a number (got "
                              f"{value!r})")
        if value < low or (value == low and not inclusive):
            op = '>=' if inclusive else '>'
            raise ConfigError(name, f"'{name}' must be {op} {low} (got "
                              f"{value})")
    for name in ('val_ratio', 'dropout', 'layer_dropout'):
        value = getattr(cfg, name)
        if value is not None and value >= 1:
            raise ConfigError(name, f"'{name}' must be < 1 (got {value})")
    if cfg.seeds is not None and not cfg.seeds:
        raise ConfigError('seeds', "'seeds' must not be empty")


def resolve_config(cfg: TrainConfig, kind: str) -> TrainConfig:
    r"""Returns a copy of :obj:`cfg` with dataset defaults filled in."""
    cfg = copy.deepcopy(cfg)
    for key, value in DEFAULTS[kind].items():
        if getattr(cfg, key, None) is None:
            setattr(cfg, key, copy.deepcopy(value))
    if cfg.seeds is None:
        cfg.seeds = [cfg.seed]
    return cfg


def seed_everything(seed: int) -> None:
    r"""Seeds :mod:`random`, :mod:`numpy` and :mod:`torch`."""
    torch_geometric.seed_everything(seed)


def resolve_device(device: str = 'auto') -> torch.device:
    r"""Maps :obj:`'auto'` to CUDA when available, else CPU (under
    :obj:`torchrun`, the device of this rank)."""
    ctx = distributed.context()
    if ctx is not None:
        return ctx.device
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError('device', f"unknown device '{device}' (expected "
                          f"'cpu', 'cuda', 'cuda:N' or 'auto')") from None
    if dev.type not in ('cpu', 'cuda'):
        raise ConfigError('device', f"unsupported device '{device}' "
                          f"(expected 'cpu', 'cuda', 'cuda:N' or 'auto')")
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device', f"device '{device}' requested but CUDA "
                          f"is not available (use 'cpu')")
    return dev
