"""Bad molecule CSVs (``sap_graph.experiments.data.molecules``): every bad
input raises a clear error before anything is cached, and a damaged
compressed CSV is a format error, one error line with exit code 2 from
``sap-graph train`` and ``sap-graph compare``."""
import gzip
import warnings

import pytest

from sap_graph.experiments.data import (
    DatasetFormatError,
    DatasetNotFoundError,
    load_molecule_csv,
)

# Importing it skips this module too where RDKit or OGB is missing.
from tests.experiments.test_molecules import cache_files, write

BAD_INPUTS = [
    # (csv text, smiles column, targets, error, message)
    (None, 'smiles', ['t'], DatasetNotFoundError, 'not found'),
    ('', 'smiles', ['t'], DatasetFormatError, 'is empty'),
    ('smiles,t\n', 'smiles', ['t'], DatasetFormatError, 'no rows'),
    ('smiles,t\n\n\n', 'smiles', ['t'], DatasetFormatError, 'no rows'),
    ('SMILES,t\nCC,1\n', 'smiles', ['t'], DatasetFormatError,
     r"no SMILES column 'smiles' \(columns: 'SMILES', 't'\); did you mean "
     r"'SMILES'\?"),
    ('smiles,target\nCC,1\n', 'smiles', ['targt'], DatasetFormatError,
     r"no target column 'targt'.*did you mean 'target'\?"),
    ('smiles,t\nCC,1\n', 'smiles', None, DatasetFormatError,
     r"No target column given.*columns: 'smiles', 't'"),
    ('smiles,t\nXx,1\nC1CC,0\n', 'smiles', ['t'], DatasetFormatError,
     "none of the 2 SMILES"),
    ('smiles,t\nCC,1\nCCC,\nCCO,high\nCCN,x\n', 'smiles', ['t'],
     DatasetFormatError, "'t' has a non-numeric value 'high' on line 4 "
     r"\(2 non-numeric, infinite or out-of-range values in all\)"),
    ('smiles,t\nCC,1\nCCO,inf\n', 'smiles', ['t'], DatasetFormatError,
     "'t' has an infinite value 'inf' on line 3"),
    ('smiles,t\nCC,1\nCCO,-1e300\n', 'smiles', ['t'], DatasetFormatError,
     r"'t' has an out-of-range \(beyond float32\) value '-1e300' on line 3"),
    ('smiles,t\nCC,1\nCCO,0\n', 'smiles', ['t', 't'], DatasetFormatError,
     r"given more than once: 't'"),
    ('smiles,t\nCC,1\nCCO,1\nCCC,\n', 'smiles', ['t'], DatasetFormatError,
     r"'t' has one class only \(1\)"),
    ('smiles,t,u\nCC,1,\nCCO,0,\n', 'smiles', ['t', 'u'], DatasetFormatError,
     "'u' has no values"),
    ('smiles,t\nCC,\nXx,1\n', 'smiles', ['t'], DatasetFormatError,
     "'t' has no values"),
    # Values beyond the header's fields (pandas would drop or shift them).
    ('smiles,t\nCC,1,\nCCO,0,5\nCCN,1,\n', 'smiles', ['t'],
     DatasetFormatError, "line 3 has 3 fields, the header 2: the extra "
     "values belong to no column"),
    # A used column named twice with other values (pandas would rename
    # the second 't.1'); identical copies are one column (QM8's PBE0).
    ('smiles,t,t\nCC,1,0\nCCO,0,1\n', 'smiles', ['t'], DatasetFormatError,
     r"names column 't' more than once \(columns 2, 3\) with other "
     "values"),
    ('\ufeffsmiles,t,smiles\nCC,1,C\nCCO,0,C\n', 'smiles', ['t'],
     DatasetFormatError, r"names column 'smiles' more than once"),
    # One row with extra values, after a quoted line break: pandas' own
    # error counted the line without the break (3, not 4).
    ('smiles,name,t\nCCO,"a\nb",1\nCC,x,0,7\n', 'smiles', ['t'],
     DatasetFormatError, "line 4 has 4 fields, the header 3"),
    ('smiles,t,t.1,t\nCCO,1,5,1\nCC,0,6,1\n', 'smiles', ['t'],
     DatasetFormatError, r"names column 't' more than once \(columns 2, "
     r"4\) with other values"),
]


@pytest.mark.parametrize('missing', ['', '  ', 'NA', ' NA', 'nan ',
                                     ' N/A ', '\tNULL'])
def test_missing_markers_with_spaces_are_missing(tmp_path, missing):
    """' NA' was 'a non-numeric value 'NA'' while 'NA' was masked."""
    path = write(str(tmp_path / 'm.csv'),
                 f'smiles,t\nCC,1.5\nCCO,{missing}\nCCN,2.5\n')
    task = load_molecule_csv(path, 'smiles', ['t'],
                             cache=str(tmp_path / 'c'))
    y = [float(v) for v in task.dataset._data.y.view(-1)]
    assert y[0] == 1.5 and y[2] == 2.5 and y[1] != y[1]  # NaN: masked.


def test_identical_copies_of_a_column_are_one_column(tmp_path):
    """QM8 names its PBE0 block twice with the same values."""
    path = write(str(tmp_path / 'q.csv'),
                 'smiles,t,u,t\nCC,1.5,0,1.5\nCCO,,1,\nCCN,2.5,2,2.5\n')
    task = load_molecule_csv(path, 'smiles', ['t', 'u'],
                             cache=str(tmp_path / 'c'))
    y = task.dataset._data.y.view(3, 2)
    assert y[:, 1].tolist() == [0, 1, 2] and y[0, 0] == 1.5
    assert y[1, 0] != y[1, 0]


def test_identical_copies_are_compared_by_position(tmp_path):
    """A literal 't.1' column is not pandas' name for the second 't'."""
    path = write(str(tmp_path / 'p.csv'),
                 'smiles,t,t.1,t\nCCO,1.5,5,1.5\nCC,0.5,6,0.5\n'
                 'CCN,2.5,7,2.5\n')
    task = load_molecule_csv(path, 'smiles', ['t', 't.1'],
                             cache=str(tmp_path / 'c'))
    assert task.dataset._data.y.view(3, 2).tolist() == [[1.5, 5], [0.5, 6],
                                                        [2.5, 7]]


def test_trailing_comma_on_every_row_reads_the_columns(tmp_path):
    """A trailing comma made pandas take the first column as the index
    and shift the others ('none of the SMILES could be parsed')."""
    plain = write(str(tmp_path / 'a.csv'), 'smiles,t\nCC,1\nCCO,0\n')
    trailing = write(str(tmp_path / 'b.csv'), 'smiles,t\nCC,1,\nCCO,0,\n')
    a, b = (load_molecule_csv(p, 'smiles', ['t'], cache=str(tmp_path / 'c'))
            for p in (plain, trailing))
    assert a.dataset.smiles == b.dataset.smiles == ['CC', 'CCO']
    assert a.dataset._data.y.tolist() == b.dataset._data.y.tolist()


@pytest.mark.parametrize('text,column,targets,error,match', BAD_INPUTS)
def test_bad_input_raises_before_caching(tmp_path, text, column, targets,
                                         error, match):
    path = str(tmp_path / 'bad.csv')
    if text is not None:
        write(path, text)
    cache = tmp_path / 'cache'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(error, match=match):
            load_molecule_csv(path, column, targets, cache=str(cache))
    assert cache_files(cache) == []


def _compressed(kind, text):
    import bz2
    import io
    import lzma
    import zipfile
    if kind == 'zip':
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as z:
            z.writestr('a.csv', text)
        return buffer.getvalue()
    return {'gz': gzip, 'bz2': bz2, 'xz': lzma}[kind].compress(
        text.encode())


def _damaged(kind, how):
    data = _compressed(kind, 'smiles,y\n' + 'CCO,1\nCCN,0\n' * 40)
    if how == 'truncated':
        return data[:len(data) // 2]
    middle = bytearray(data)
    for i in range(20, len(middle) - 10):
        middle[i] ^= 0x55
    return bytes(middle)


@pytest.mark.parametrize('kind', ['gz', 'bz2', 'xz', 'zip'])
@pytest.mark.parametrize('how', ['truncated', 'corrupt'])
def test_damaged_compressed_csv_is_a_format_error(kind, how, tmp_path):
    """The fifth trial's truncated .csv.gz was an EOFError traceback and
    a corrupt one a zlib.error: both are not a readable CSV, as for every
    compression pandas infers."""
    path = tmp_path / f'bad.csv.{kind}'
    path.write_bytes(_damaged(kind, how))
    with pytest.raises(DatasetFormatError,
                       match=r"bad\.csv\.\w+' is not a readable CSV file "
                             r"\(\w+"):
        load_molecule_csv(str(path), targets='y', cache=str(tmp_path / 'c'))
    assert cache_files(tmp_path / 'c') == []


@pytest.mark.parametrize('command', ['train', 'compare'])
@pytest.mark.parametrize('how,error', [
    ('truncated', 'EOFError: Compressed file ended'),
    ('corrupt', 'zlib.error: Error -3 while decompressing data')])
def test_damaged_csv_gz_is_one_line_exit_2(command, how, error, tmp_path,
                                           capsys, monkeypatch):
    from sap_graph.experiments.cli import main
    monkeypatch.setenv('SAP_GRAPH_CACHE', str(tmp_path / 'cache'))
    path = tmp_path / 'bad.csv.gz'
    path.write_bytes(_damaged('gz', how))
    out = tmp_path / 'out'
    flags = (['--readouts', 'sum', '--folds', '2'] if command == 'compare'
             else ['--readout', 'sum'])
    assert main([command, '--dataset', str(path), '--target', 'y',
                 '--epochs', '1', *flags, '--out', str(out),
                 '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: '{path}' is not a readable CSV file "
                          f"({error}"), err
    assert '\n' not in err
    assert not out.exists()
