"""How sharp the attention of a trained SAP readout is, per head, over
every graph of its dataset (``docs/explain.md``).

    python -m benchmarks.attention_sharpness --checkpoint runs/mutag_sap.pt

Prints one Markdown row per head: the mean graph size n, the mean effective
number of attended nodes exp(H) (n for uniform attention, 1 for one node),
the mean of H / log n (1 = uniform), the median and largest peak weight
against the median uniform weight 1/n, and the share of graphs whose peak
weight is above 0.5. Graphs with one node are left out.
"""
import argparse

from sap_graph.experiments.explain import (
    attention_sharpness,
    attention_statistics,
    load_explained,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True,
                        help='a sap-graph train --checkpoint file')
    parser.add_argument('--dataset', default=None,
                        help="dataset name (default: the checkpoint's)")
    parser.add_argument('--root', default=None,
                        help="data root (default: the checkpoint's)")
    args = parser.parse_args(argv)
    model, task = load_explained(args.checkpoint, args.dataset, args.root)
    rows = attention_sharpness(attention_statistics(model, task.dataset))
    print(f'{task.name}, {rows[0]["graphs"]} graphs, mean size '
          f'{rows[0]["nodes"]:.1f} nodes, median uniform weight '
          f'{rows[0]["uniform_median"]:.3f} ({args.checkpoint})\n')
    print('| head | attended exp(H) | H / log n | peak weight, median | '
          'peak weight, max | graphs with peak > 0.5 |')
    print('| --- | --- | --- | --- | --- | --- |')
    for h, r in enumerate(rows, 1):
        print(f"| {h} | {r['attended']:.1f} of {r['nodes']:.1f} | "
              f"{r['entropy_ratio']:.3f} | {r['peak_median']:.3f} | "
              f"{r['peak_max']:.3f} | {100 * r['sharp_share']:.0f}% |")


if __name__ == '__main__':
    main()
