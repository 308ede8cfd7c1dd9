import os

import pytest

from sap_graph.experiments.data import load_synthetic

#: How every test on the real datasets says why it was skipped.
REAL_DATA = ('real-data test: set SAP_GRAPH_DATA to a folder with '
             'TUDataset/ and ogb/ (see ../shared/data/README.md)')


def real_data_skipped(reports):
    """The node ids of the skipped reports that are real-data tests."""
    return [r.nodeid for r in reports
            if isinstance(r.longrepr, tuple) and REAL_DATA in r.longrepr[2]]


def pytest_terminal_summary(terminalreporter):
    """Says, even under ``pytest -q``, which tests were skipped for want
    of ``$SAP_GRAPH_DATA`` (``-rs`` lists every skip reason)."""
    skipped = real_data_skipped(terminalreporter.stats.get('skipped', []))
    if not skipped:
        return
    names = ', '.join(sorted(n.split('::', 1)[-1] for n in skipped))
    terminalreporter.write_line(
        f'{len(skipped)} skipped: {REAL_DATA}: {names}', yellow=True)


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
