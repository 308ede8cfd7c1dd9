"""``benchmarks/docs_runs.py``: a run of its table is trained in a fresh
process, its record keeps the result and the attention statistics of the
selected model, and the page is rendered from the records alone."""
import json
import os.path as osp

import pytest

import benchmarks.docs_runs as docs_runs
from sap_graph.experiments.explain import (
    attention_sharpness,
    attention_statistics,
    load_explained,
)


def test_every_run_of_the_table_is_quoted_somewhere():
    """Each page a run is quoted in exists and cites the records' page."""
    for run in docs_runs.RUNS.values():
        for page in run.quoted_in.split(', '):
            assert osp.exists(osp.join(docs_runs.ROOT, page)), page
            with open(osp.join(docs_runs.ROOT, page)) as f:
                assert 'results/docs_runs.md' in f.read(), page


@pytest.mark.slow
def test_a_run_is_recorded_and_rendered(tmp_path, monkeypatch):
    run = docs_runs.DocRun('tiny', ['--epochs', '1', '--folds', '2'],
                           'nowhere',
                           ['--index', '3', '--out',
                            str(tmp_path / 'tiny.png')])
    monkeypatch.setattr(docs_runs, 'RUNS', {'tiny': run})
    records, page = tmp_path / 'records', tmp_path / 'page.md'
    docs_runs.main(['--records', str(records), '--checkpoints',
                    str(tmp_path / 'ck'), '--page', str(page)])
    with open(records / 'tiny.json') as f:
        record = json.load(f)
    model, task = load_explained(str(tmp_path / 'ck' / 'tiny.pt'))
    assert record['sharpness'] == attention_sharpness(
        attention_statistics(model, task.dataset))
    assert (tmp_path / 'tiny.png').stat().st_size > 0
    text = page.read_text()
    res = record['result']
    assert (f"| `tiny` | nowhere | {res['test_mean']:.3f} ± "
            f"{res['test_std']:.3f} |") in text
    assert record['train_command'] in text
    assert '--checkpoint runs/docs/tiny.pt' in record['train_command']
    # A second call keeps the record (nothing retrained) and renders the
    # same page.
    before = (records / 'tiny.json').stat().st_mtime_ns
    docs_runs.main(['--records', str(records), '--checkpoints',
                    str(tmp_path / 'ck'), '--page', str(page)])
    assert (records / 'tiny.json').stat().st_mtime_ns == before
    assert page.read_text() == text
