"""``python -m sap_graph``: the ``sap-graph`` command line."""
import sys

from sap_graph.experiments.cli import main

if __name__ == '__main__':
    sys.exit(main())
