"""Copies the generated tables of ``benchmarks/results/*/accuracy.md`` into
the README and ``docs/*.md``, between ``<!-- table:NAME -->`` and
``<!-- /table:NAME -->`` markers, so that the pages show them unchanged.

``NAME`` is ``<folder>:<block>``: ``<folder>`` a folder under
``benchmarks/results`` (``.`` for the main grid), ``<block>`` one of
``results`` (the readout table with the published rows), ``ranks`` (the
average-rank line), ``paired`` (the paired-test table) or ``chosen`` (the
chosen learning rates of a learning-rate-selected rendering).

A ``<!-- page:FILE -->`` ... ``<!-- /page:FILE -->`` pair takes a whole
generated page ``benchmarks/results/FILE`` (e.g. ``speed.md``), its
headings moved down to level 3 and its relative links pointed at
``benchmarks/results/``.

Usage::

    python -m benchmarks.readme_tables    # rewrites README.md, docs/*.md
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence

HERE = osp.dirname(osp.realpath(__file__))
README = osp.join(HERE, '..', 'README.md')
DOCS = osp.join(HERE, '..', 'docs')


def _table_after(lines: List[str], start: int) -> List[str]:
    out: List[str] = []
    for line in lines[start:]:
        if line.startswith('|'):
            out.append(line)
        elif out:
            break
    return out


def blocks(path: str) -> Dict[str, str]:
    """The named blocks of one rendered ``accuracy.md``."""
    with open(path) as f:
        lines = f.read().splitlines()
    found: Dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.startswith('| readout |') and 'results' not in found:
            found['results'] = '\n'.join(_table_after(lines, i))
        elif line.startswith('**Average rank** '):
            found['ranks'] = line
        elif line.startswith('| dataset | SAP variant'):
            found['paired'] = '\n'.join(_table_after(lines, i))
        elif line.startswith('## Chosen learning rates'):
            found['chosen'] = '\n'.join(_table_after(lines, i + 1))
    return found


def page(name: str, target: str) -> str:
    """The generated page ``benchmarks/results/<name>`` as a part of the
    page ``target``: headings at level 3 or below, links relative to
    ``target``."""
    results = osp.join(HERE, 'results')
    with open(osp.join(results, name)) as f:
        text = f.read().strip('\n')
    prefix = osp.relpath(results, osp.dirname(osp.abspath(target)))
    text = re.sub(r'^(#+) ', lambda m: '#' * max(3, len(m.group(1)) + 1) +
                  ' ', text, flags=re.M)
    return re.sub(r'\]\((?!https?:|/|#)([^)]+)\)',
                  lambda m: f']({prefix}/{m.group(1)})', text)


def fill_file(path: str, cache: Dict[str, Dict[str, str]]) -> int:
    """Refreshes the marked tables and pages of one page; returns their
    number."""
    with open(path) as f:
        text = f.read()
    pages = re.compile(r'(<!-- page:([^ ]+) -->\n)(.*?)(<!-- /page:\2 -->)',
                       re.S)
    text, num_pages = pages.subn(
        lambda m: f'{m.group(1)}{page(m.group(2), path)}\n{m.group(4)}',
        text)
    pattern = re.compile(r'(<!-- table:([^ ]+) -->\n)(.*?)(<!-- /table:\2 -->)',
                         re.S)

    def fill(match: 're.Match[str]') -> str:
        folder, _, block = match.group(2).partition(':')
        source = osp.join(HERE, 'results', folder, 'accuracy.md')
        if source not in cache:
            cache[source] = blocks(source)
        if block not in cache[source]:
            sys.exit(f"no block '{block}' in {source}")
        return f'{match.group(1)}{cache[source][block]}\n{match.group(4)}'

    new, count = pattern.subn(fill, text)
    if count + num_pages:
        with open(path, 'w') as f:
            f.write(new)
    return count + num_pages


def main(argv: Optional[Sequence[str]] = None) -> None:
    argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='Takes no options: rewrites README.md and docs/*.md in '
        'place.').parse_args(argv)
    cache: Dict[str, Dict[str, str]] = {}
    pages = [README] + sorted(
        osp.join(DOCS, name) for name in os.listdir(DOCS)
        if name.endswith('.md'))
    for page in pages:
        count = fill_file(page, cache)
        if count:
            print(f'{count} table(s) copied into {osp.relpath(page)}')


if __name__ == '__main__':
    main()
