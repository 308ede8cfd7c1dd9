"""The layer stands apart from the harness."""
import subprocess
import sys

HARNESS = {'sklearn', 'tqdm', 'ogb', 'matplotlib'}


def _modules_after(statement: str) -> set:
    """Top-level modules (and sap_graph submodules) a fresh interpreter
    holds after :obj:`statement`."""
    code = (f'{statement}\nimport sys\n'
            'print(" ".join(sorted({m.split(".")[0] for m in sys.modules} | '
            '{m for m in sys.modules if m.startswith("sap_graph.")})))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_the_layer_imports_nothing_beyond_torch_and_pyg():
    # `import torch` itself imports tqdm where it is installed (torch.hub),
    # and PyG imports it too, so the check is: sap_graph adds no top-level
    # module of its own dependencies beyond what torch and PyG import.
    base = _modules_after('import torch, torch_geometric')
    loaded = _modules_after('import sap_graph')
    assert {m for m in loaded - base if '.' not in m} == {'sap_graph'}
    assert not (HARNESS - base) & loaded
    assert not {m for m in loaded if m.startswith('sap_graph.experiments')}


def test_the_harness_is_what_brings_its_dependencies():
    # The check above can fail: the harness does pull sklearn.
    loaded = _modules_after('import sap_graph.experiments.train')
    assert 'sklearn' in loaded
