import os

import pytest

from sap_graph.data import load_synthetic


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
