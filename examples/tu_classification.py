"""TUDataset graph classification with a self-attention pooling readout.

Stratified 10-fold cross-validation with model selection on a validation
split of each training fold (Errica et al. 2020). The flags are those of
``sap-graph train`` (made from ``TrainConfig``); those left out get the
dataset kind's defaults (docs/training.md). Data root: --root, else
$SAP_GRAPH_DATA/TUDataset, else ./data/TUDataset.

    python examples/tu_classification.py --dataset MUTAG --readout sap
"""
import statistics

from sap_graph.experiments.cli import USER_ERRORS
from sap_graph.experiments.data import load_configured
from sap_graph.experiments.flags import (
    ArgumentParser,
    add_config_arguments,
    config_from_args,
    refuse,
)
from sap_graph.experiments.train import (
    cross_validate,
    resolve_config,
    seed_everything,
    validate_config,
)

FLAGS = ('dataset', 'root', 'heads', 'hidden_channels', 'num_layers',
         'batch_size', 'lr', 'epochs', 'folds', 'seed', 'device', 'progress')


def main() -> None:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--readout', default='sap',
                        help='readout name (default: sap)')
    add_config_arguments(parser, only=FLAGS)
    parser.set_defaults(dataset='MUTAG')
    args = parser.parse_args()

    try:
        cfg = config_from_args(args, readout=args.readout)
        validate_config(cfg)  # Before the data is read.
        seed_everything(cfg.seed)
        task = load_configured(cfg)
        print(f'{task.name}: {len(task.dataset)} graphs, '
              f'{task.num_classes} classes, {task.num_features} node '
              f'features {task.notes}')
        cfg = resolve_config(cfg, task.kind)
        result = cross_validate(task, cfg)
    except (*USER_ERRORS, ValueError) as e:  # A bad flag, a missing --root.
        refuse(parser, e)

    print(f"Test accuracy: {result['test_mean']:.4f} ± "
          f"{result['test_std']:.4f} ({cfg.folds} folds)")
    times = [f['epoch_time_median'] for f in result['folds']]
    print(f'Median time per epoch: {statistics.median(times):.4f}s')


if __name__ == '__main__':
    main()
