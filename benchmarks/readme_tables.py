"""Copies the generated tables of ``benchmarks/results/*/accuracy.md`` into
the README and ``docs/*.md``, between ``<!-- table:NAME -->`` and
``<!-- /table:NAME -->`` markers, so that the pages show them unchanged.

``NAME`` is ``<folder>:<block>``: ``<folder>`` a folder under
``benchmarks/results`` (``.`` for the main grid), ``<block>`` one of
``results`` (the readout table with the published rows), ``ranks`` (the
average-rank line), ``paired`` (the paired-test table) or ``chosen`` (the
chosen learning rates of a learning-rate-selected rendering).

Usage::

    python benchmarks/readme_tables.py    # rewrites README.md, docs/*.md
"""
import os
import os.path as osp
import re
import sys
from typing import Dict, List

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


def fill_file(path: str, cache: Dict[str, Dict[str, str]]) -> int:
    """Refreshes the marked tables of one page; returns their number."""
    with open(path) as f:
        text = f.read()
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
    if count:
        with open(path, 'w') as f:
            f.write(new)
    return count


def main() -> None:
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
