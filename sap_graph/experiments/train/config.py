r"""The configuration of a training run (:class:`TrainConfig`), its
per-dataset defaults, validation and device.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Tuple,
)

import torch
import torch_geometric

from sap_graph.experiments import distributed
from sap_graph.experiments.data.load import REGRESSION_METRICS
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.option_types import (
    FLOAT32_MAX,
    MAX_HIDDEN_CHANNELS,
    MAX_LAYERS,
)


def _opt(default: Any, help: str, **cli: Any) -> Any:
    r"""A :class:`TrainConfig` field with its command-line help (the
    :obj:`sap-graph` flags are generated from these fields; :obj:`cli`
    holds :obj:`choices`, :obj:`flag` (another flag name),
    :obj:`invert` (a :obj:`True` default switched off by the flag) or
    :obj:`hidden` (no generated flag))."""
    kwargs: Dict[str, Any] = {'metadata': dict(cli, help=help)}
    if isinstance(default, (list, dict)):
        kwargs['default_factory'] = lambda: copy.deepcopy(default)
    else:
        kwargs['default'] = default
    return field(**kwargs)


_PER_KIND = ' (default: per dataset kind, see docs/training.md)'

#: The validation share of each training fold of k-fold CV by default.
VAL_RATIO = 0.1


@dataclass
class TrainConfig:
    r"""Everything a training run needs. :obj:`None` fields get a default
    that depends on the dataset's kind (see :func:`resolve_config` and
    :data:`~sap_graph.experiments.data.kinds.KINDS`). The command line
    flags of :obj:`sap-graph train` and :obj:`sap-graph compare` are made
    from these fields and their help texts."""
    dataset: str = _opt(
        'synthetic', "'synthetic' (built in), a TUDataset name (MUTAG, "
        "PROTEINS, NCI1, ...), an ogbg-mol* name, or a CSV file of "
        "molecules (*.csv, *.csv.gz; with --smiles_column and --target)")
    root: Optional[str] = _opt(
        None, 'PyG/OGB data root: DIR/<NAME>/raw for TU, DIR/ogbg_molhiv '
        'for OGB (default: $SAP_GRAPH_DATA/{TUDataset,ogb}, else '
        './data/{TUDataset,ogb})')
    smiles_column: str = _opt(
        'smiles', 'CSV of molecules: the column of SMILES strings')
    targets: Optional[List[str]] = _opt(
        None, 'CSV of molecules: one or more target columns; 0/1 columns '
        'are binary classification tasks, others regression; missing '
        'values are masked per task (default: none)', flag='target')
    metric: Optional[str] = _opt(
        None, 'regression targets of a CSV of molecules: score and select '
        f"by {' or '.join(REGRESSION_METRICS)} (MoleculeNet uses mae for "
        f'QM7/QM8/QM9) (default: {REGRESSION_METRICS[0]})',
        choices=list(REGRESSION_METRICS))
    readout: str = _opt('sap', 'readout', hidden=True)
    heads: int = _opt(4, 'attention heads of sap, set_transformer and gmt')
    concat: Optional[bool] = _opt(None, 'concatenate the heads',
                                  hidden=True)
    readout_kwargs: Dict[str, Any] = _opt(
        {}, 'further readout options as JSON, e.g. \'{"k": 20}\'')
    conv: Optional[str] = _opt(
        None, 'message passing layer; gine uses OGB bond encoders on '
        'molecules' + _PER_KIND, choices=['gin', 'gcn', 'gine'])
    hidden_channels: Optional[int] = _opt(None, 'hidden width' + _PER_KIND)
    num_layers: Optional[int] = _opt(None, 'message passing layers'
                                     + _PER_KIND)
    jk: str = _opt('last', 'jumping knowledge mode',
                   choices=['last', 'cat', 'max'])
    dropout: Optional[float] = _opt(None, 'dropout before the last layer'
                                    + _PER_KIND)
    layer_dropout: Optional[float] = _opt(None, 'dropout after each layer'
                                          + _PER_KIND)
    batch_size: Optional[int] = _opt(None, 'batch size' + _PER_KIND)
    lr: Optional[float] = _opt(None, 'Adam learning rate' + _PER_KIND)
    lr_step: Optional[int] = _opt(None, 'halve the learning rate every N '
                                  'epochs, 0 = never' + _PER_KIND)
    lr_gamma: float = _opt(0.5, 'learning rate decay factor', hidden=True)
    weight_decay: float = _opt(0.0, 'Adam weight decay')
    epochs: Optional[int] = _opt(None, 'epochs per fold/seed' + _PER_KIND)
    folds: Optional[int] = _opt(
        None, 'cross-validation folds (default: 10 TU, 5 synthetic; '
        'molecules from a CSV: a scaffold split per seed unless given)')
    val_ratio: float = _opt(VAL_RATIO, 'share of each training fold used for '
                            'model selection')
    seeds: Optional[List[int]] = _opt(
        None, 'one run per seed on OGB and molecules' + _PER_KIND)
    seed: int = _opt(0, 'seed of splits, initialisation and shuffling')
    node_features: str = _opt(
        'auto', 'features for TU datasets without node features: one-hot '
        'degree if the max degree <= 1000, else constant',
        choices=['auto', 'degree', 'constant'])
    use_node_attr: bool = _opt(
        False, 'TU datasets: also use the continuous node attributes '
        '(e.g. the 18 of ENZYMES) next to the node labels')
    download: bool = _opt(True, 'never try to download a missing dataset',
                          flag='no_download', invert=True)
    device: str = _opt('auto', "'cpu', 'cuda', 'cuda:1' or 'auto' = cuda "
                       "if available")
    progress: bool = _opt(True, 'no progress bars', flag='no_progress',
                          invert=True)
    verbose: bool = _opt(True, 'no per-fold log lines', flag='quiet',
                         invert=True)
    out: Optional[str] = _opt(None, 'write the JSON result here')
    checkpoint: Optional[str] = _opt(
        None, 'save the selected model (weights + config) here')
    state: Optional[str] = _opt(
        None, 'keep the resumable training state here, rewritten '
        'atomically after every epoch; an existing file is only continued '
        'with --resume')
    resume: bool = _opt(
        False, 'continue the interrupted run of --state PATH to the result '
        'an uninterrupted run gives; starts afresh if PATH does not exist')

    def __post_init__(self) -> None:
        # NumPy scalars (a seed from np.arange, a width from a grid) become
        # the Python numbers that the checks, the JSON and the cache keys
        # take.
        for name in self.__dataclass_fields__:
            setattr(self, name, _plain(getattr(self, name)))


def _plain(value: Any) -> Any:
    r"""NumPy scalars and arrays as Python numbers, booleans and lists,
    also inside dicts and lists (:obj:`readout_kwargs`): they reach the
    result JSON, the checkpoint and the training state, which hold plain
    Python values only; anything else unchanged."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value).__module__ == 'numpy' and hasattr(value, 'tolist'):
        return value.tolist()
    return value


#: Seeds are below this (numpy's bound is 2**32; folds add to the seed).
MAX_SEED = 2**31

#: The numeric fields that count something.
_INTEGERS = {'heads', 'hidden_channels', 'num_layers', 'batch_size',
             'lr_step', 'epochs', 'folds'}

#: Lower bounds of the numeric fields: (bound, inclusive).
_BOUNDS: Dict[str, Tuple[float, bool]] = {
    'heads': (1, True), 'hidden_channels': (1, True),
    'num_layers': (1, True), 'batch_size': (1, True), 'lr': (0, False),
    'lr_step': (0, True), 'lr_gamma': (0, False), 'weight_decay': (0, True),
    'epochs': (1, True), 'folds': (2, True), 'val_ratio': (0, False),
    'dropout': (0, True), 'layer_dropout': (0, True)}

#: Upper bounds of the counts that size the model: field -> (bound, what
#: a larger value would mean).
_CEILINGS: Dict[str, Tuple[int, Callable[[int], str]]] = {
    'hidden_channels': (MAX_HIDDEN_CHANNELS, lambda n: f'a layer of that '
                        f'width would have {n ** 2:,} weights'),
    'num_layers': (MAX_LAYERS, lambda n: 'deeper than any published GNN'),
}

#: The range of float32, which training computes in: a learning rate
#: or weight decay outside it is 0 or inf in Adam's update.
FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)


def check_learning_rate(name: str, value: Any) -> None:
    r"""Checks that :obj:`value` is a learning rate: a number within
    float32's (normal) positive range, whose update is neither 0 nor inf.

    Raises:
        ConfigError: For anything else (:obj:`name` is the field).
    """
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not FLOAT32_TINY <= value <= FLOAT32_MAX):
        raise ConfigError(name, f"learning rates must be positive finite "
                          f"numbers within float32's range "
                          f"[{FLOAT32_TINY:.3g}, {FLOAT32_MAX:.3g}] (got "
                          f"{value!r})")


def validate_config(cfg: TrainConfig, kind: Optional[str] = None) -> None:
    r"""Checks the set fields of :obj:`cfg` (before any data is loaded).
    The data options follow the dataset's name; so does the protocol
    (whether :obj:`seeds` are used), except for data passed as objects (a
    loaded :class:`~sap_graph.experiments.data.GraphTask`), whose
    :obj:`kind` decides it.

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
        if name in _INTEGERS and not isinstance(value, int):
            raise ConfigError(name, f"'{name}' must be an integer (got "
                              f"{value!r})")
        if not math.isfinite(value):
            raise ConfigError(name, f"'{name}' must be a finite number "
                              f"(got {value!r})")
        if abs(value) > FLOAT32_MAX:
            raise ConfigError(name, f"'{name}' must be within float32's "
                              f"range, at most {FLOAT32_MAX:.3g} (got "
                              f"{value!r})")
        if value < low or (value == low and not inclusive):
            op = '>=' if inclusive else '>'
            raise ConfigError(name, f"'{name}' must be {op} {low} (got "
                              f"{value})")
    if cfg.lr is not None:
        check_learning_rate('lr', cfg.lr)
    for name, (high, meaning) in _CEILINGS.items():
        value = getattr(cfg, name)
        if value is not None and value > high:
            raise ConfigError(name, f"'{name}' must be <= {high} (got "
                              f"{value}): {meaning(value)}")
    for name in ('val_ratio', 'dropout', 'layer_dropout'):
        value = getattr(cfg, name)
        if value is not None and value >= 1:
            raise ConfigError(name, f"'{name}' must be < 1 (got {value})")
    if cfg.seeds is not None and not cfg.seeds:
        raise ConfigError('seeds', "'seeds' must not be empty")
    for name, values in (('seed', [cfg.seed]), ('seeds', cfg.seeds or [])):
        for value in values:  # numpy takes [0, 2**32); folds add to it.
            if (not isinstance(value, int) or isinstance(value, bool)
                    or not 0 <= value < MAX_SEED):
                what = 'an integer' if name == 'seed' else 'integers'
                raise ConfigError(name, f"'{name}' must be {what} from 0 "
                                  f"to {MAX_SEED - 1} (got {value!r})")
    if cfg.seeds is not None and len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError('seeds', f"seeds given twice: {list(cfg.seeds)} "
                          f"(each seed is one run)")
    if cfg.targets is not None and not cfg.targets:
        raise ConfigError('targets', "'targets' must not be empty")
    if cfg.metric not in (None, *REGRESSION_METRICS):
        raise ConfigError('metric', f"'metric' must be one of "
                          f"{', '.join(REGRESSION_METRICS)} (got "
                          f"{cfg.metric!r})")
    from sap_graph.experiments.data.kinds import KINDS, kind_of
    try:  # By name, before any data is read.
        named = kind_of(cfg.dataset)
    except ValueError:
        named = None  # An empty name: the loader says so.
    if named is not None:
        check_data_options(cfg, named.name)
    protocol = KINDS[kind] if kind is not None else named
    if protocol is not None:
        _check_protocol_options(cfg, protocol.protocol == 'kfold'
                          or cfg.folds is not None)
    resolve_device(cfg.device)


def _check_protocol_options(cfg: TrainConfig, kfold: bool) -> None:
    # The options one protocol reads and the other would ignore.
    if kfold and cfg.seeds and list(cfg.seeds) != [cfg.seed]:
        raise ConfigError('seeds', f"seeds {list(cfg.seeds)} would be "
                          f"ignored: k-fold cross-validation draws its "
                          f"folds and models from 'seed' (seeds are for "
                          f"scaffold and official splits)")
    if not kfold and cfg.val_ratio != VAL_RATIO:
        raise ConfigError('val_ratio', f"val_ratio={cfg.val_ratio!r} would "
                          f"be ignored: it is the validation share of each "
                          f"training fold of k-fold cross-validation, and "
                          f"scaffold and official splits have fixed "
                          f"validation parts (pass folds for k-fold)")


#: The options of loading data: their defaults, the dataset kinds that
#: read them, and what they are for. Set for another kind they would be
#: ignored, so they are refused.
_DATA_OPTIONS: Dict[str, Tuple[Any, Tuple[str, ...], str]] = {
    'root': (None, ('tu', 'ogb'), 'a data root is for TU and OGB datasets'),
    'node_features': ('auto', ('tu',), 'node features are chosen for TU '
                      'datasets without any'),
    'use_node_attr': (False, ('tu',), 'continuous node attributes are for '
                      'TU datasets'),
    'smiles_column': ('smiles', ('molecules',), 'a SMILES column is for a '
                      'CSV of molecules'),
    'targets': (None, ('molecules',), 'target columns are for a CSV of '
                'molecules'),
}


def check_data_options(cfg: TrainConfig, kind: str) -> None:
    r"""Refuses the data options that a dataset of :obj:`kind` (a key of
    :data:`~sap_graph.experiments.data.kinds.KINDS`) would ignore, e.g.
    :obj:`root` for a CSV of molecules or :obj:`targets` for graphs
    passed from Python.

    Raises:
        ConfigError: For the first such option.
    """
    what = ('graphs passed from Python' if kind == 'graphs' else
            f"'{cfg.dataset}'")
    for name, (default, kinds, purpose) in _DATA_OPTIONS.items():
        value = getattr(cfg, name)
        if kind not in kinds and value != default:
            raise ConfigError(name, f"{purpose}; {what} would ignore "
                              f"{name}={value!r}")


def resolve_config(cfg: TrainConfig, kind: str) -> TrainConfig:
    r"""Returns a copy of :obj:`cfg` with dataset defaults filled in."""
    from sap_graph.experiments.data.kinds import KINDS
    cfg = copy.deepcopy(cfg)
    kfold = KINDS[kind].protocol == 'kfold' or cfg.folds is not None
    _check_protocol_options(cfg, kfold)
    for key, value in KINDS[kind].defaults.items():
        if getattr(cfg, key, None) is None:
            setattr(cfg, key, copy.deepcopy(value))
    if cfg.seeds is None or kfold:
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
