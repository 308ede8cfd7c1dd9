"""The layer stands apart from the harness."""
import subprocess
import sys


def test_the_layer_imports_only_torch_and_pyg():
    code = ('import sys, sap_graph; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '{"sklearn", "ogb", "matplotlib"} '
            'or m.startswith("sap_graph.experiments")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    # tqdm and pandas are not checked: torch_geometric imports them.
    assert out.strip() == '[]'
