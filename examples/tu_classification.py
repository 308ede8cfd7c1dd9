"""TUDataset graph classification with a self-attention pooling readout.

Stratified 10-fold cross-validation with model selection on a validation
split of each training fold (Errica et al. 2020). Data root: --root, else
$SAP_GRAPH_DATA/TUDataset, else ./data/TUDataset.

    python examples/tu_classification.py --dataset MUTAG --readout sap
"""
import argparse
import statistics

from sap_graph.experiments.data import load_dataset
from sap_graph.experiments.train import (
    TrainConfig,
    cross_validate,
    resolve_config,
    seed_everything,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--dataset', default='MUTAG',
                        help='TUDataset name or synthetic (default: MUTAG)')
    parser.add_argument('--root', default=None,
                        help='PyG root holding <NAME>/raw (default: '
                        '$SAP_GRAPH_DATA/TUDataset or ./data/TUDataset)')
    parser.add_argument('--readout', default='sap',
                        help='readout name (default: sap)')
    parser.add_argument('--heads', type=int, default=4,
                        help='attention heads (default: 4)')
    parser.add_argument('--hidden_channels', type=int, default=64,
                        help='hidden width (default: 64)')
    parser.add_argument('--num_layers', type=int, default=5,
                        help='GIN layers (default: 5)')
    parser.add_argument('--batch_size', type=int, default=32,
                        help='batch size (default: 32)')
    parser.add_argument('--lr', type=float, default=0.01,
                        help='learning rate (default: 0.01)')
    parser.add_argument('--epochs', type=int, default=100,
                        help='epochs per fold (default: 100)')
    parser.add_argument('--folds', type=int, default=10,
                        help='cross-validation folds (default: 10)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--device', default='auto',
                        help='cpu, cuda or auto (default: auto)')
    parser.add_argument('--no_progress', action='store_true',
                        help='hide progress bars (default: show)')
    args = parser.parse_args()

    seed_everything(args.seed)
    task = load_dataset(args.dataset, root=args.root, seed=args.seed)
    print(f'{task.name}: {len(task.dataset)} graphs, {task.num_classes} '
          f'classes, {task.num_features} node features {task.notes}')

    cfg = resolve_config(TrainConfig(
        dataset=args.dataset, readout=args.readout, heads=args.heads,
        hidden_channels=args.hidden_channels, num_layers=args.num_layers,
        batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
        folds=args.folds, seed=args.seed, device=args.device,
        progress=not args.no_progress), task.kind)
    result = cross_validate(task, cfg)

    print(f"Test accuracy: {result['test_mean']:.4f} ± "
          f"{result['test_std']:.4f} ({args.folds} folds)")
    times = [f['epoch_time_median'] for f in result['folds']]
    print(f'Median time per epoch: {statistics.median(times):.4f}s')


if __name__ == '__main__':
    main()
