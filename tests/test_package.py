"""The layer stands apart from the harness."""
import subprocess
import sys

import torch

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


def test_version():
    import sap_graph
    assert sap_graph.__version__ == '0.4.0'


def test_removed_in_0_3_name_their_replacements():
    """0.3 removed the deprecated surface (CHANGELOG.md); each removal says
    what replaces it."""
    import pytest

    import sap_graph
    from sap_graph import SAPAggregation
    for name, function in (('diversity', 'diversity_penalty'),
                           ('entropy', 'attention_entropy')):
        with pytest.raises(TypeError, match=rf'(?s)SAPAggregation\({name}='
                           rf'.*removed in 0.3.*return_attention_weights='
                           rf'True.*sap_graph.{function}\(alpha, index\)'):
            SAPAggregation(8, **{name: 0.5})
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        SAPAggregation(8, foo=1)
    for value, replacement in ((True, "residual='mean'"),
                               (False, 'residual=None')):
        with pytest.raises(ValueError, match=rf'(?s)got {value}; residual='
                           rf'True/False was removed in 0.3.*{replacement}'):
            SAPAggregation(8, residual=value)
    with pytest.raises(AttributeError, match=r'(?s)sap_graph.aux_loss was '
                       r'removed in 0.3.*diversity_penalty'):
        getattr(sap_graph, "aux_loss")  # noqa: B009
    aggr = SAPAggregation(8).train()
    aggr(torch.randn(4, 8))
    assert not hasattr(aggr, 'aux_loss')


def test_triton_only_where_it_has_wheels():
    """Every extra that asks for Triton (Linux wheels only) carries an
    environment marker, so that ``pip install -e '.[test]'`` works on macOS
    and Windows."""
    import os.path as osp

    import pytest
    tomllib = pytest.importorskip('tomllib')
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    with open(osp.join(root, 'pyproject.toml'), 'rb') as f:
        extras = tomllib.load(f)['project']['optional-dependencies']
    wanted = [req for reqs in extras.values() for req in reqs
              if req.replace(' ', '').startswith('triton')]
    assert wanted and all(
        req.split(';')[1].strip() == "sys_platform == 'linux'"
        for req in wanted)


def test_no_two_public_functions_share_a_name():
    # One name, one function: a reader (or an import) cannot take the
    # wrong one. Module-level functions and classes of the package.
    import ast
    import collections
    import pathlib

    import sap_graph
    root = pathlib.Path(sap_graph.__file__).parent
    where = collections.defaultdict(list)
    for path in sorted(root.rglob('*.py')):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
                    not node.name.startswith('_')):
                where[node.name].append(str(path.relative_to(root)))
    assert len(where) > 300  # Read the whole package.
    assert {k: v for k, v in where.items() if len(v) > 1} == {}
