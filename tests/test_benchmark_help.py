"""Every benchmark script answers ``--help`` with its usage and does
nothing else (``readme_tables`` rewrote the docs, ``profile_cuda`` started
profiling and failed on a machine without a GPU)."""
import importlib
import os.path as osp
import pkgutil
import sys

import pytest

import benchmarks


def _has_main(name: str) -> bool:
    path = osp.join(benchmarks.__path__[0], f'{name}.py')
    with open(path) as f:
        return 'def main(' in f.read()


SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                 if not m.ispkg and _has_main(m.name))


def test_the_scripts_are_found():
    assert {'speed', 'readme_tables', 'profile_cuda', 'docs_runs'} <= set(
        SCRIPTS)


@pytest.mark.parametrize('name', SCRIPTS)
def test_help_prints_usage_and_does_nothing(name, monkeypatch, capsys,
                                            tmp_path):
    module = importlib.import_module(f'benchmarks.{name}')
    monkeypatch.setattr(sys, 'argv', [f'benchmarks.{name}', '--help'])
    monkeypatch.chdir(tmp_path)
    docs = osp.join(osp.dirname(benchmarks.__path__[0]), 'docs')
    before = {p: osp.getmtime(osp.join(docs, p)) for p in (
        'performance.md', 'results.md')}
    with pytest.raises(SystemExit) as info:
        module.main()
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith('usage:')
    assert {p: osp.getmtime(osp.join(docs, p)) for p in before} == before
    assert list(tmp_path.iterdir()) == []
