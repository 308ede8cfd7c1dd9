"""Flags made from dataclass fields (``sap_graph.experiments.flags``): the
example configs parse into their dataclass with the right types and
defaults, other flag names and both spellings; a field without a default
is a required flag."""
import argparse
from dataclasses import dataclass, field, fields

import pytest

from sap_graph.experiments.flags import (
    add_dataclass_arguments,
    dataclass_from_args,
    flag_of,
)
from sap_graph.experiments.seq.multimodal import FusionConfig
from sap_graph.experiments.seq.sequences import SequenceConfig


def parse(cls, argv, exclude=()):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, cls, exclude)
    return dataclass_from_args(cls, parser.parse_args(argv))


@pytest.mark.parametrize('cls,argv,name,value', [
    (SequenceConfig, ['--heads', '2'], 'heads', 2),
    (SequenceConfig, ['--hidden_channels', '16'], 'hidden_channels', 16),
    (SequenceConfig, ['--hidden-channels', '16'], 'hidden_channels', 16),
    (SequenceConfig, ['--num_layers', '1'], 'num_layers', 1),
    (SequenceConfig, ['--dropout', '0.25'], 'dropout', 0.25),
    (SequenceConfig, ['--lr', '1e-2'], 'lr', 0.01),
    (SequenceConfig, ['--epochs', '5'], 'epochs', 5),
    (SequenceConfig, ['--max_length', '64'], 'max_length', 64),
    (SequenceConfig, ['--batch_size', '32'], 'batch_size', 32),
    (SequenceConfig, ['--encoder', 'transformer'], 'encoder', 'transformer'),
    (FusionConfig, ['--epochs', '3'], 'fusion_epochs', 3),
    (FusionConfig, ['--encoder_epochs', '4'], 'encoder_epochs', 4),
    (FusionConfig, ['--channels', '32'], 'channels', 32),
    (FusionConfig, ['--heads', '2'], 'heads', 2),
    (FusionConfig, ['--modality_dropout', '0.3'], 'modality_dropout', 0.3),
    (FusionConfig, ['--graph_channels', '16'], 'graph_channels', 16),
    (FusionConfig, ['--fusion_lr', '0.01'], 'fusion_lr', 0.01),
])
def test_config_flags_parse_into_the_dataclass(cls, argv, name, value):
    cfg = parse(cls, argv)
    assert isinstance(cfg, cls)
    got = getattr(cfg, name)
    assert got == value and type(got) is type(value)
    # Every other field keeps its default.
    default = cls()
    for f in fields(cls):
        if f.name != name:
            assert getattr(cfg, f.name) == getattr(default, f.name), f.name


@pytest.mark.parametrize('cls', [SequenceConfig, FusionConfig])
def test_config_flags_default_to_the_dataclass(cls):
    assert parse(cls, []) == cls()
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, cls)
    text = parser.format_help()
    for f in fields(cls):
        if not f.metadata.get('hidden'):
            assert f'--{flag_of(f.name, cls)}' in text, f.name
            assert f.metadata['help'].split(';')[0] in ' '.join(text.split())


def test_flag_names_hidden_fields_and_choices():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, FusionConfig)
    assert flag_of('fusion_epochs', FusionConfig) == 'epochs'
    with pytest.raises(SystemExit):  # --epochs is fusion_epochs' flag.
        parser.parse_args(['--fusion_epochs', '3'])
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, SequenceConfig)
    with pytest.raises(SystemExit):  # Hidden: the example sets it per run.
        parser.parse_args(['--readout', 'mean'])
    with pytest.raises(SystemExit):
        parser.parse_args(['--encoder', 'lstm'])
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, SequenceConfig, exclude=['heads'])
    with pytest.raises(SystemExit):
        parser.parse_args(['--heads', '2'])


@dataclass
class Toy:
    name: str = field(metadata={'help': 'a name'})
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    verbose: bool = field(default=True, metadata={
        'help': 'quiet', 'flag': 'quiet', 'invert': True})


def test_any_dataclass():
    with pytest.raises(SystemExit):  # No default: required.
        parse(Toy, [])
    assert parse(Toy, ['--name', 'a']) == Toy('a', [1, 2], True)
    assert parse(Toy, ['--name', 'a', '--sizes', '3', '--quiet']) == Toy(
        'a', [3], False)


def test_only_some_fields_and_a_changed_default_in_the_help():
    from sap_graph.experiments.flags import add_config_arguments
    from sap_graph.experiments.train import TrainConfig
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, only=('dataset', 'lr', 'progress'))
    parser.set_defaults(dataset='MUTAG')
    dests = {a.dest for a in parser._actions} - {'help'}
    assert dests == {'dataset', 'lr', 'no_progress'}
    text = ' '.join(parser.format_help().split())
    assert '(default: MUTAG)' in text and 'synthetic)' not in text
    cfg = dataclass_from_args(TrainConfig, parser.parse_args(['--lr', '.1']))
    assert (cfg.dataset, cfg.lr, cfg.progress) == ('MUTAG', 0.1, True)
    assert cfg.epochs is None  # No flag: the field's default.


def test_other_defaults_and_their_help():
    """explain's --smiles_column and --target default to the checkpoint's
    (None), which the help says, instead of train's."""
    from sap_graph.experiments.flags import add_config_arguments
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, only=('smiles_column', 'targets'), defaults={
        'smiles_column': (None, "the checkpoint's"),
        'targets': (None, "the checkpoint's")})
    args = parser.parse_args([])
    assert args.smiles_column is None and args.targets is None
    args = parser.parse_args(['--smiles-column', 'mol', '--target', 'a', 'b'])
    assert args.smiles_column == 'mol' and args.targets == ['a', 'b']
    text = ' '.join(parser.format_help().split())
    assert text.count("(default: the checkpoint's)") == 2
    assert '(default: smiles)' not in text and '(default: none)' not in text


def test_an_abbreviation_of_both_spellings_is_one_flag():
    """'--hidden' matched --hidden_channels and --hidden-channels and was
    'ambiguous' (Python 3.11): the two spellings are one flag; a prefix
    of two flags stays ambiguous."""
    from sap_graph.experiments.cli import build_parser
    parser = build_parser()
    args = parser.parse_args(['train', '--hidden', '8', '--num_l', '2'])
    assert (args.hidden_channels, args.num_layers) == (8, 2)
    args = parser.parse_args(['compare', '--render', '--out', 'x'])
    assert args.render_only is True
    with pytest.raises(SystemExit):
        parser.parse_args(['train', '--n', '3'])
