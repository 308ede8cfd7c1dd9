"""The dataset-kind registry: names go to their kind, and the per-kind
defaults documented in docs/training.md are those of the code."""
import os.path as osp

import pytest

from sap_graph.experiments.data.kinds import KINDS, kind_of
from sap_graph.experiments.train import TrainConfig, resolve_config

DOCS = osp.join(osp.dirname(__file__), '..', '..', 'docs', 'training.md')


@pytest.mark.parametrize('name,kind', [
    ('synthetic', 'synthetic'), ('SYNTHETIC', 'synthetic'),
    ('ogbg-molhiv', 'ogb'), ('data/x.csv', 'molecules'),
    ('x.CSV.gz', 'molecules'), ('MUTAG', 'tu'), ('IMDB-BINARY', 'tu'),
])
def test_names_go_to_their_kind(name, kind):
    assert kind_of(name).name == kind


def _documented():
    lines = open(DOCS).read().split('<!-- kind-defaults -->')[1]
    rows = []
    for line in lines.strip().splitlines():
        if not line.startswith('|'):
            break
        rows.append(line)
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    for line in rows[2:]:
        yield dict(zip(header, (c.strip() for c in line.strip('|')
                                .split('|')), strict=True))


def test_documented_defaults_are_the_registry():
    documented = list(_documented())
    assert [d['kind'] for d in documented] == list(KINDS)
    for row in documented:
        cfg = resolve_config(TrainConfig(), row['kind'])
        for key, text in row.items():
            if key == 'kind':
                continue
            value = getattr(cfg, key)
            if key == 'seeds':
                want = (None if text == '-' else
                        [int(t) for t in text.split()])
                assert (value if key in KINDS[row['kind']].defaults
                        else None) == want, (row['kind'], key)
            elif text == '-':
                assert value is None, (row['kind'], key)
            else:
                assert str(value) == text, (row['kind'], key)
