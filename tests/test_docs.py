"""The documentation agrees with the code: every ``python`` block of
README.md and docs/*.md runs, and what ``--help`` and the docs say about
the CLI holds.

Snippet convention (docs/development.md): the ``python`` blocks of one page
run in order in one namespace, in a temporary folder, like a doctest
session, so a block may use what an earlier block of the page defined. A
block that cannot run here (it needs real data, a checkpoint or minutes of
training) is preceded by ``<!-- skip-snippet: reason -->``; a constructor
signature shown as code is compared with :func:`inspect.signature` instead.
"""
import ast
import glob
import inspect
import os.path as osp
import re

import pytest

from sap_graph import SAPAggregation
from sap_graph.experiments.cli import build_parser
from sap_graph.experiments.train import TrainConfig

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAGES = ['README.md'] + sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
SKIP = re.compile(r'^<!--\s*skip-snippet:\s*(\S.*?)\s*-->$')
#: Skipped blocks are few, each with its reason; raise this only with care.
MAX_SKIPPED = 3


def snippets(page):
    """The ``python`` blocks of a page: ``(line, code, skip reason)``."""
    lines = open(osp.join(ROOT, page), encoding='utf-8').read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith('````'):  # An example of markdown: skip it.
            i += 1
            while not lines[i].startswith('````'):
                i += 1
        elif lines[i].strip() == '```python':
            start = i + 1
            end = start
            while lines[end].strip() != '```':
                end += 1
            before = [x.strip() for x in lines[:i] if x.strip()]
            match = SKIP.match(before[-1]) if before else None
            blocks.append((start + 1, '\n'.join(lines[start:end]),
                           match.group(1) if match else None))
            i = end
        i += 1
    return blocks


def is_signature(code):
    """Whether a block is ``SAPAggregation(...)`` spelling the signature."""
    return code.lstrip().startswith('SAPAggregation(in_channels,')


@pytest.mark.parametrize('page', PAGES)
def test_python_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Snippets may write files.
    namespace = {'__name__': f'snippets_{osp.basename(page)}'}
    for line, code, skip in snippets(page):
        if skip or is_signature(code):
            continue
        exec(compile(code, f'{page}:{line}', 'exec'), namespace)


def test_skip_markers_are_few_and_mark_blocks():
    skipped = [(page, line, reason) for page in PAGES
               for line, _, reason in snippets(page) if reason]
    assert len(skipped) <= MAX_SKIPPED, skipped
    markers = [(page, n) for page in PAGES for n, line in enumerate(
        open(osp.join(ROOT, page), encoding='utf-8')) if SKIP.match(
            line.strip())]
    # No marker without its block (development.md shows one, fenced).
    assert len(markers) == len(skipped) + 1, markers


def test_documented_signature_is_the_constructor():
    params = inspect.signature(SAPAggregation.__init__).parameters
    code = [(page, code) for page in PAGES
            for _, code, _ in snippets(page) if is_signature(code)]
    assert {page for page, _ in code} == {'README.md', 'docs/api.md'}
    for page, block in code:
        call = ast.parse(block).body[0].value  # The first statement.
        documented = [a.id for a in call.args] + [k.arg for k in call.keywords]
        assert documented == [  # **removed only names removed options.
            p for p, v in params.items() if p != 'self'
            and v.kind is not inspect.Parameter.VAR_KEYWORD], page
        for k in call.keywords:
            assert ast.literal_eval(k.value) == params[k.arg].default, (
                page, k.arg)


def test_help_points_at_the_page_with_the_per_dataset_defaults():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices['train']
    page = re.search(r"'per dataset kind' are listed in (\S+)\.",
                     train.description).group(1)
    text = open(osp.join(ROOT, page), encoding='utf-8').read()
    table = text.split('<!-- kind-defaults -->')[1].strip().splitlines()[0]
    columns = [c.strip() for c in table.strip('|').split('|')]
    fields = [a.dest for a in train._actions
              if a.help and 'per dataset kind' in a.help]
    assert fields
    for name in fields:  # Each has a column of the page's defaults table.
        assert name in columns, name


def test_training_page_states_the_heads_default():
    text = open(osp.join(ROOT, 'docs', 'training.md')).read()
    assert TrainConfig().concat is None  # The readout's own default ...
    assert not SAPAggregation(8).concat  # ... which averages for sap.
    assert '`sap` averages its heads' in ' '.join(text.split())
    assert TrainConfig().heads == 4 and '`--heads` (default `4`' in text
