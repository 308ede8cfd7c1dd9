"""The readout variants of sap-graph compare: their syntax, run keys that
follow the readout a run builds (defaults filled in), the frozen-query
controls that attend uniformly, and the sharp variant's scaled scores."""
import pytest

from sap_graph.experiments.compare import parse_variant
from sap_graph.experiments.compare.variants import CONTROLS
from tests.experiments import test_compare as compare_tests
from tests.experiments.test_compare import TINY

#: The 48-graph synthetic task of :mod:`test_compare` (a module fixture).
tiny = compare_tests.tiny


def test_variant_syntax():
    v = parse_variant('sap{"residual": "mean", "heads": 2}')
    assert v.readout == 'sap' and v.options['heads'] == 2
    assert v.options['readout_kwargs'] == {'residual': 'mean'}
    assert parse_variant('sap_frozen').options['readout_kwargs'] == {
        'freeze_queries': True}


def test_run_keys_follow_the_readout_a_run_builds(tiny, tmp_path,
                                                  monkeypatch):
    """The cache key holds the readout's options with the defaults filled
    in: spelling out a default is the same run; changing the layer's
    default is a different one (a cached run of the old default is not
    reused for the new)."""
    import inspect

    from sap_graph import SAPAggregation
    from sap_graph.experiments.compare.api import prepare

    def digests():  # One plan each: one plan refuses the same readout.
        out = {}
        for readout in ('sap', 'sap{"residual": "max"}',
                        'sap{"residual": "mean"}'):
            _, plan, _ = prepare(tiny, [readout], [0.01], dict(TINY),
                                 str(tmp_path / 'out'))
            out[readout] = plan.runs[0].key.rsplit('-', 1)[1]
        return out

    before = digests()
    assert before['sap'] == before['sap{"residual": "max"}']
    assert before['sap'] != before['sap{"residual": "mean"}']
    init = SAPAggregation.__init__
    params = [p for p in inspect.signature(init).parameters.values()
              if p.default is not p.empty]
    monkeypatch.setattr(init, '__defaults__', tuple(
        'mean' if p.name == 'residual' else p.default for p in params))
    after = digests()
    assert after['sap'] == after['sap{"residual": "mean"}'] == before[
        'sap{"residual": "mean"}']
    assert after['sap'] != before['sap']


def test_frozen_queries_attend_uniformly(tiny):
    import torch

    from sap_graph.experiments.readouts import resolve_readout
    readout, _ = resolve_readout('sap', 8, freeze_queries=True)
    x = torch.randn(7, 8)
    index = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    _, alpha = readout(x, index, dim_size=2, return_attention_weights=True)
    expected = torch.tensor([1 / 3] * 3 + [1 / 4] * 4)
    assert torch.allclose(alpha, expected[:, None].expand_as(alpha))
    assert not readout.query.requires_grad


@pytest.mark.parametrize('design,control', sorted(CONTROLS.items()))
def test_each_control_is_its_design_with_frozen_queries(design, control):
    import torch

    from sap_graph.experiments.readouts import resolve_readout
    d, c = parse_variant(design).config(), parse_variant(control).config()
    frozen = dict(c['readout_kwargs'])
    assert frozen.pop('freeze_queries') is True
    design_kwargs = dict(d['readout_kwargs'])
    design_kwargs.pop('temperature', None)  # sap_sharp: scaled scores.
    assert frozen == design_kwargs and c['readout'] == d['readout'] == 'sap'
    readout, _ = resolve_readout('sap', 8, **c['readout_kwargs'])
    index = torch.tensor([0, 0, 1, 1, 1])
    _, alpha = readout(torch.randn(5, 8), index, dim_size=2,
                       return_attention_weights=True)
    expected = torch.tensor([1 / 2] * 2 + [1 / 3] * 3)
    assert torch.allclose(alpha, expected[:, None].expand_as(alpha))
    assert not readout.query.requires_grad


def test_sharp_variant_scales_the_scores_by_ten():
    import torch

    from sap_graph.experiments.readouts import resolve_readout
    torch.manual_seed(0)
    sharp, _ = resolve_readout('sap', 8, **parse_variant(
        'sap_sharp').options['readout_kwargs'])
    torch.manual_seed(0)
    plain, _ = resolve_readout('sap', 8)
    assert (sharp.residual, sharp.size_scaler) == (plain.residual, None)
    # Same keys (same seed); the same non-zero queries.
    torch.nn.init.normal_(plain.query)
    sharp.query.data.copy_(plain.query.data)
    x = torch.randn(5, 8)
    assert torch.allclose(x @ sharp.score_weight().t(),
                          10 * (x @ plain.score_weight().t()), atol=1e-5)
