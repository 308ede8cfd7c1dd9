"""The test suite's own setup (``tests/conftest.py``): a run without
``$SAP_GRAPH_DATA`` says which real-data tests it skipped and why."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_real_data_skips_name_the_variable_and_the_tests(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ('SAP_GRAPH_DATA', 'SAP_GRAPH_REQUIRE_DATA')}
    env['OMP_NUM_THREADS'] = '1'
    tests = ['tests/test_realdata.py::test_mutag',
             'tests/test_hostile.py::'
             'test_runs_started_together_on_a_fresh_root_all_succeed']
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         *tests], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines()
             if 'real-data test' in line]
    # Under -q the summary line is the only place the reason shows.
    assert len(lines) == 1, proc.stdout
    line = lines[0]
    assert line.startswith('2 skipped: real-data test: set SAP_GRAPH_DATA')
    assert 'TUDataset/' in line and '../shared/data/README.md' in line
    assert line.endswith('test_mutag, '
                         'test_runs_started_together_on_a_fresh_root_all_'
                         'succeed')
    assert '2 skipped' in proc.stdout.splitlines()[-1]
