"""ogbg-molhiv with OGB's GIN (atom/bond encoders) and a self-attention
pooling readout: official scaffold split, official Evaluator (ROC-AUC),
test score at the best validation epoch, mean ± std over seeds.

The flags are those of ``sap-graph train`` (made from ``TrainConfig``);
those left out get OGB's reference GIN (300 channels, 5 layers, dropout
0.5, Adam 0.001, 100 epochs, seeds 0 1 2; docs/training.md). Data root:
--root (holding ogbg_molhiv/), else $SAP_GRAPH_DATA/ogb, else ./data/ogb.
Needs `pip install ogb`.

    python examples/ogbg_molhiv.py --epochs 100 --seeds 0 1 2
"""
import statistics

from sap_graph.experiments.cli import USER_ERRORS
from sap_graph.experiments.data import load_configured
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.flags import (
    ArgumentParser,
    add_config_arguments,
    config_from_args,
    refuse,
)
from sap_graph.experiments.train import (
    holdout,
    resolve_config,
    validate_config,
)

FLAGS = ('dataset', 'root', 'heads', 'hidden_channels', 'num_layers',
         'layer_dropout', 'batch_size', 'lr', 'epochs', 'seeds', 'device',
         'progress')


def main() -> None:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--readout', default='sap',
                        help='readout name (default: sap)')
    add_config_arguments(parser, only=FLAGS)
    parser.set_defaults(dataset='ogbg-molhiv')
    args = parser.parse_args()

    try:
        cfg = config_from_args(args, readout=args.readout)
        validate_config(cfg)  # Before the data is read.
        if not cfg.dataset.startswith('ogbg-'):
            raise ConfigError('dataset', f"this example trains on the "
                              f"official split of an ogbg-mol* dataset "
                              f"(got {cfg.dataset!r}; sap-graph train takes "
                              f"the others)")
        task = load_configured(cfg)
        sizes = {k: len(v) for k, v in task.split_idx.items()}
        print(f'{task.name}: {len(task.dataset)} graphs, split {sizes}, '
              f'metric {task.metric}')
        cfg = resolve_config(cfg, task.kind)
        result = holdout(task, cfg)
    except (*USER_ERRORS, ValueError) as e:  # A bad flag, a missing --root.
        refuse(parser, e)

    print(f"Test {task.metric}: {result['test_mean']:.4f} ± "
          f"{result['test_std']:.4f} ({len(cfg.seeds)} "
          f"seed{'s' * (len(cfg.seeds) != 1)}), valid "
          f"{result['val_mean']:.4f}")
    times = [s['epoch_time_median'] for s in result['seeds']]
    print(f'Median time per epoch: {statistics.median(times):.4f}s')


if __name__ == '__main__':
    main()
