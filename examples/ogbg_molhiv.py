"""ogbg-molhiv with OGB's GIN (atom/bond encoders) and a self-attention
pooling readout: official scaffold split, official Evaluator (ROC-AUC),
test score at the best validation epoch, mean ± std over seeds.

Data root: --root (holding ogbg_molhiv/), else $SAP_GRAPH_DATA/ogb, else
./data/ogb. Needs `pip install ogb`.

    python examples/ogbg_molhiv.py --epochs 100 --seeds 0 1 2
"""
import argparse
import statistics

from sap_graph.experiments.data import load_ogbg
from sap_graph.experiments.train import TrainConfig, holdout, resolve_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--dataset', default='ogbg-molhiv',
                        help='an ogbg-mol* dataset (default: ogbg-molhiv)')
    parser.add_argument('--root', default=None,
                        help='OGB root holding ogbg_molhiv/ (default: '
                        '$SAP_GRAPH_DATA/ogb or ./data/ogb)')
    parser.add_argument('--readout', default='sap',
                        help='readout name (default: sap)')
    parser.add_argument('--heads', type=int, default=4,
                        help='attention heads (default: 4)')
    parser.add_argument('--hidden_channels', type=int, default=300,
                        help='embedding width (default: 300)')
    parser.add_argument('--num_layers', type=int, default=5,
                        help='GIN layers (default: 5)')
    parser.add_argument('--layer_dropout', type=float, default=0.5,
                        help='dropout after each layer (default: 0.5)')
    parser.add_argument('--batch_size', type=int, default=32,
                        help='batch size (default: 32)')
    parser.add_argument('--lr', type=float, default=0.001,
                        help='learning rate (default: 0.001)')
    parser.add_argument('--epochs', type=int, default=100,
                        help='epochs per seed (default: 100)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='one run per seed (default: 0 1 2)')
    parser.add_argument('--device', default='auto',
                        help='cpu, cuda or auto (default: auto)')
    parser.add_argument('--no_progress', action='store_true',
                        help='hide progress bars (default: show)')
    args = parser.parse_args()

    task = load_ogbg(args.dataset, root=args.root)
    sizes = {k: len(v) for k, v in task.split_idx.items()}
    print(f'{task.name}: {len(task.dataset)} graphs, split {sizes}, '
          f'metric {task.metric}')

    cfg = resolve_config(TrainConfig(
        dataset=args.dataset, readout=args.readout, heads=args.heads,
        hidden_channels=args.hidden_channels, num_layers=args.num_layers,
        layer_dropout=args.layer_dropout, batch_size=args.batch_size,
        lr=args.lr, epochs=args.epochs, seeds=args.seeds,
        device=args.device, progress=not args.no_progress), 'ogb')
    result = holdout(task, cfg)

    print(f"Test {task.metric}: {result['test_mean']:.4f} ± "
          f"{result['test_std']:.4f} ({len(args.seeds)} seeds), valid "
          f"{result['val_mean']:.4f}")
    times = [s['epoch_time_median'] for s in result['seeds']]
    print(f'Median time per epoch: {statistics.median(times):.4f}s')


if __name__ == '__main__':
    main()
