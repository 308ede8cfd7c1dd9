r"""Training and evaluation: the configuration (:mod:`.config`), one model
(:mod:`.loop`), the splits (:mod:`.splits`) and the protocols
(:mod:`.protocols`), the resumable state
(:mod:`.state`), provenance (:mod:`.provenance`) and a whole run with its
output files (:mod:`.runner`).
"""
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.train.config import (
    TrainConfig,
    resolve_config,
    resolve_device,
    seed_everything,
    validate_config,
)
from sap_graph.experiments.train.loop import (
    FitResult,
    ShardedLoader,
    compute_loss,
    evaluate,
    fit,
    predict,
    train_epoch,
)
from sap_graph.experiments.train.protocols import (
    build_model,
    cross_validate,
    holdout,
    run_fold,
)
from sap_graph.experiments.train.provenance import (
    device_info,
    source_digest,
    versions,
)
from sap_graph.experiments.train.runner import (
    check_outputs,
    checkpoint_state,
    run,
    save_checkpoint,
)
from sap_graph.experiments.train.runs import (
    Split,
    kfold_splits,
    plan_splits,
    run_split,
    stratified_splits,
)
from sap_graph.experiments.train.state import (
    RESUME_FREE_FIELDS,
    TrainState,
    check_resume,
)

__all__ = [
    'ConfigError', 'FitResult', 'RESUME_FREE_FIELDS', 'ShardedLoader',
    'Split', 'TrainConfig', 'TrainState', 'build_model', 'check_outputs',
    'check_resume', 'checkpoint_state', 'compute_loss', 'cross_validate',
    'device_info', 'evaluate', 'fit', 'holdout', 'kfold_splits',
    'plan_splits', 'predict', 'resolve_config', 'resolve_device', 'run',
    'run_fold', 'run_split', 'save_checkpoint', 'seed_everything',
    'source_digest', 'stratified_splits', 'train_epoch', 'validate_config',
    'versions',
]
