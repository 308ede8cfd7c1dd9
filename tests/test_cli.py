"""The command line: one-line errors with exit status 2, flags named after
the library's fields, and both flag spellings."""
import pytest

from sap_graph.experiments.cli import _error, build_parser, main
from sap_graph.experiments.errors import ConfigError, one_line


def test_both_flag_spellings_parse():
    parser = build_parser()
    a = parser.parse_args(['train', '--hidden_channels', '8', '--no-progress'])
    b = parser.parse_args(['train', '--hidden-channels', '8', '--no_progress'])
    assert a.hidden_channels == b.hidden_channels == 8
    assert a.no_progress and b.no_progress


@pytest.mark.parametrize('argv', [['train', '--epochs', 'x'], ['nope'], [],
                                  ['explain']])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith('error: ') and '\n' not in err
    assert 'usage:' not in captured.err


def test_library_fields_become_flags(capsys):
    assert _error(ConfigError('batch_size', "'batch_size' must be >= 1")) == 2
    assert capsys.readouterr().err == (
        "error: --batch_size: 'batch_size' must be >= 1\n")
    assert _error(OSError('disk\n full'), 1) == 1
    assert capsys.readouterr().err == 'error: disk full\n'


def test_one_line():
    assert one_line(ValueError('a\n  b')) == 'a b'
    assert one_line(KeyError()) == 'KeyError'
    assert one_line(ValueError('x' * 50), limit=10) == 'xxxxxxx...'


def test_resume_without_state_is_a_flag_error(capsys):
    assert main(['train', '--resume', '--no-progress']) == 2
    assert capsys.readouterr().err.startswith('error: --resume: ')
