"""The Triton path of the SAP core (:mod:`sap_graph.ops.triton`) without a
GPU (its dispatch: :mod:`tests.ops.test_dispatch`).

The kernels themselves are checked in Triton's interpreter on CPU tensors
by :mod:`tests.ops.triton_interpreter_cases`. The interpreter is chosen when
:mod:`triton` is first imported (``TRITON_INTERPRET=1``), which cannot be
undone inside a process that may already have imported Triton for real
(:func:`torch.compile` does), so those cases run in a ``python -m pytest``
subprocess with the variable set; its report is printed here.
:mod:`tests.ops.triton_compile_check` compiles the kernels for sm_90 on the CPU
(the compiler rejects some code the interpreter runs). Both are skipped
when Triton is not installed (``pip install sap-graph[triton]``).
On a GPU, :mod:`tests.ops.test_cuda_triton` checks the compiled kernels.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import tempfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HAS_TRITON = importlib.util.find_spec('triton') is not None


@pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed')
def test_interpreter_cases():
    env = dict(os.environ, TRITON_INTERPRET='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-rs', '-p',
         'no:cacheprovider', osp.join('tests', 'ops',
                                      'triton_interpreter_cases.py')],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-5000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert ' passed' in proc.stdout and 'skipped' not in proc.stdout


@pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed')
def test_kernels_compile_for_sm90():
    """The four kernels compile for an H100/H200 (sm_90) on the CPU, down
    to ``ptxas`` (what the interpreter cannot check); a fresh cache so that
    nothing is skipped."""
    env = dict(os.environ)
    env.pop('TRITON_INTERPRET', None)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    with tempfile.TemporaryDirectory() as cache:
        env['TRITON_CACHE_DIR'] = cache
        proc = subprocess.run(
            [sys.executable,
             osp.join('tests', 'ops', 'triton_compile_check.py')],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count('compiled for sm_90') == 4


def test_cpu_never_imports_triton_path():
    """CPU batches (sorted or not) never import :mod:`sap_graph.ops.triton`,
    so CPU-only installs do not need Triton. (Where Triton is installed,
    PyG's import of :mod:`torch._dynamo` imports it anyway.)"""
    code = (
        'import sys, torch\n'
        'from sap_graph import SAPAggregation\n'
        'x = torch.randn(9, 8, requires_grad=True)\n'
        'index = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2])\n'
        'ptr = torch.tensor([0, 2, 5, 9])\n'
        'aggr = SAPAggregation(8, heads=2)\n'
        'aggr(x, index, ptr, dim_size=3).sum().backward()\n'
        'aggr(x, index, dim_size=3).sum().backward()\n'
        'assert "sap_graph.ops.triton" not in sys.modules\n')
    env = dict(os.environ, SAP_GRAPH_NATIVE='0')  # No build needed here.
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
