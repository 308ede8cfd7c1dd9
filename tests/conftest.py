import os

import pytest

from sap_graph.experiments.data import load_synthetic


@pytest.fixture(scope='session', autouse=True)
def _cache_dir(tmp_path_factory):
    """Keeps every cached dataset copy of the test session in a temporary
    folder (CI sets ``SAP_GRAPH_CACHE`` itself; keep it then)."""
    old = os.environ.get('SAP_GRAPH_CACHE')
    if old is None:
        os.environ['SAP_GRAPH_CACHE'] = str(tmp_path_factory.mktemp('cache'))
    yield os.environ['SAP_GRAPH_CACHE']
    if old is None:
        os.environ.pop('SAP_GRAPH_CACHE', None)


@pytest.fixture(scope='session')
def small_task():
    """A small version of the embedded synthetic task (240 graphs)."""
    return load_synthetic(num_graphs=240, min_pairs=5, max_pairs=15)


@pytest.fixture(params=['native', 'torch'])
def sap_backend(request, monkeypatch):
    """Runs a test on both implementations of the SAP core: the fused C++
    kernels (``sap_graph.ops.native``) and the pure-PyTorch path. CI sets
    ``SAP_GRAPH_NATIVE=1``, so a failing build fails the native runs there;
    elsewhere they are skipped when no compiler is available."""
    from sap_graph.ops import native as _native
    if request.param == 'torch':
        monkeypatch.setenv('SAP_GRAPH_NATIVE', '0')
    elif _native.native() is None:
        pytest.skip('fused kernels cannot be built here (no compiler or '
                    'ninja); set SAP_GRAPH_NATIVE=1 to make this an error')
    return request.param
