r"""Molecules from a CSV of SMILES and measured properties: RDKit parses
each SMILES into a graph with OGB's atom (9) and bond (3) integer features
(exactly :func:`ogb.utils.smiles2graph`'s), so models use OGB's
:obj:`AtomEncoder` / :obj:`BondEncoder` as for :obj:`ogbg-molhiv`.
Processed graphs are cached, keyed by the file's content.

The dataset keeps each molecule's SMILES, Bemis-Murcko scaffold and CSV
line, so that a scaffold split per seed needs no second parse::

    task = load_molecule_csv('BBBP.csv', targets='p_np')
    split = split_scaffolds(task.dataset.scaffolds, seed=0)
    train = task.dataset[split['train']]
"""
from __future__ import annotations

import hashlib
import io
import os.path as osp
import warnings
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
    Union,
)

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from sap_graph.experiments.data.cache import ENV_CACHE, cache_root
from sap_graph.experiments.data.molecule_csv import (
    about,
    infer_task_type,
    missing_column,
    read_csv,
    scan_records,
    target_values,
)
from sap_graph.experiments.data.ogb import require_ogb
from sap_graph.experiments.data.splits import murcko_scaffold, require_rdkit
from sap_graph.experiments.data.task import (
    DatasetFormatError,
    DatasetNotFoundError,
    GraphTask,
)
from sap_graph.experiments.files import atomic_write

#: Bump when the cached contents change, or what is parsed from the same
#: file (2: SMILES with inner whitespace are invalid; the lines of rows
#: after a quoted line break; 3: no index column, missing markers with
#: spaces, extra values and duplicate column names refused).
CACHE_FORMAT = 3
NUM_ATOM_FEATURES = 9
NUM_BOND_FEATURES = 3
#: How many line numbers of skipped SMILES the notes name.
MAX_LINES_SHOWN = 5

TASK_TYPES = {'binary classification': 'rocauc', 'regression': 'rmse'}


class MoleculeGraphs(InMemoryDataset):
    r"""Molecular graphs (:obj:`x` :obj:`[n, 9]`, :obj:`edge_index`,
    :obj:`edge_attr` :obj:`[e, 3]`, all :obj:`torch.long`; :obj:`y`
    :obj:`[1, T]` float with NaN for missing values), stored collated.

    :obj:`smiles`, :obj:`scaffolds` (Bemis-Murcko, without chirality)
    and :obj:`lines` (1-based CSV line of each graph) are lists aligned
    with the full dataset, not with subsets made from it.
    """

    def __init__(self, graphs: Dict[str, Any]) -> None:
        super().__init__()
        node_ptr, edge_ptr = graphs['node_ptr'], graphs['edge_ptr']
        num = len(graphs['smiles'])
        self.data = Data(x=graphs['x'], edge_index=graphs['edge_index'],
                         edge_attr=graphs['edge_attr'], y=graphs['y'])
        self.slices = dict(x=node_ptr, edge_index=edge_ptr,
                           edge_attr=edge_ptr,
                           y=torch.arange(num + 1, dtype=torch.long))
        self.smiles: List[str] = list(graphs['smiles'])
        self.scaffolds: List[str] = list(graphs['scaffolds'])
        self.lines: List[int] = graphs['lines'].tolist()
        self.targets: List[str] = list(graphs.get('targets', []))


def _features() -> Any:
    require_ogb()
    from ogb.utils import features
    return features


def _mol_lists(mol: Any, features: Any) -> Any:
    # Flat lists (torch.tensor reads them much faster than nested ones);
    # indexing atoms and bonds is faster than RDKit's sequence wrappers.
    atoms: List[int] = []
    for k in range(mol.GetNumAtoms()):
        atoms += features.atom_to_feature_vector(mol.GetAtomWithIdx(k))
    edges: List[int] = []
    feats: List[int] = []
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = features.bond_to_feature_vector(bond)
        edges += (i, j, j, i)
        feats += f + f
    return atoms, edges, feats


def mol_to_graph(mol: Any) -> Dict[str, Tensor]:
    r"""Returns the atom features :obj:`x` :obj:`[n, 9]`, bond features
    :obj:`edge_attr` :obj:`[e, 3]` and :obj:`edge_index` :obj:`[2, e]`
    (all :obj:`torch.long`) of an RDKit molecule, as
    :func:`ogb.utils.smiles2graph` makes them (both directions of each
    bond, in bond order)."""
    atoms, edges, feats = _mol_lists(mol, _features())
    return dict(
        x=torch.tensor(atoms, dtype=torch.long).view(-1, NUM_ATOM_FEATURES),
        edge_index=torch.tensor(edges, dtype=torch.long).view(-1, 2).t()
        .contiguous(),
        edge_attr=torch.tensor(feats, dtype=torch.long).view(
            -1, NUM_BOND_FEATURES))


# Reading the CSV ##########################################################


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _parse(smiles: Sequence[str]) -> Dict[str, Any]:
    Chem, features = require_rdkit(), _features()
    atoms: List[int] = []
    edges: List[int] = []
    bonds: List[int] = []
    num_atoms, num_edges, scaffolds, valid = [0], [0], [], []
    for i, s in enumerate(smiles):
        # RDKit reads what follows a space, tab or line break as the
        # molecule's name ('CC O' would be ethane): not a valid SMILES.
        mol = Chem.MolFromSmiles(s) if s and not any(
            c.isspace() for c in s) else None
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        a, e, b = _mol_lists(mol, features)
        atoms += a
        edges += e
        bonds += b
        num_atoms.append(len(a) // NUM_ATOM_FEATURES)
        num_edges.append(len(e) // 2)
        scaffolds.append(murcko_scaffold(mol))
        valid.append(i)
    return dict(
        x=torch.tensor(atoms, dtype=torch.long).view(-1, NUM_ATOM_FEATURES),
        edge_index=torch.tensor(edges, dtype=torch.long).view(-1, 2).t()
        .contiguous(),
        edge_attr=torch.tensor(bonds, dtype=torch.long).view(
            -1, NUM_BOND_FEATURES),
        node_ptr=torch.tensor(num_atoms, dtype=torch.long).cumsum(0),
        edge_ptr=torch.tensor(num_edges, dtype=torch.long).cumsum(0),
        scaffolds=scaffolds, valid=torch.tensor(valid, dtype=torch.long))


def _cache_path(path: str, smiles_column: str, targets: Sequence[str],
                name: str, cache: Optional[str]) -> str:
    import ogb
    import rdkit
    key = hashlib.sha256('\0'.join([
        f'format={CACHE_FORMAT}', _sha256(path), smiles_column, *targets,
        f'rdkit={rdkit.__version__}', f'ogb={ogb.__version__}',
    ]).encode()).hexdigest()
    folder = cache if cache is not None else osp.join(cache_root(),
                                                      'molecules')
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    return osp.join(osp.expanduser(folder), f'{safe}-{key[:24]}.pt')


def _load_cached(file: str) -> Optional[Dict[str, Any]]:
    try:
        graphs = torch.load(file, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # A corrupt or foreign file: process again.
        warnings.warn(f"Ignoring unreadable molecule cache '{file}' "
                      f"({type(e).__name__}: {e})", stacklevel=3)
        return None
    if not isinstance(graphs, dict) or graphs.get('format') != CACHE_FORMAT:
        return None
    return graphs


def _process(path: str, smiles_column: str, targets: Sequence[str]
             ) -> Dict[str, Any]:
    r"""Reads, checks and parses the CSV; raises before anything is
    written."""
    frame = read_csv(path)
    columns = [str(c) for c in frame.columns]
    if smiles_column not in columns:
        raise missing_column(path, 'SMILES', smiles_column, columns)
    for target in targets:
        if target not in columns:
            raise missing_column(path, 'target', target, columns)
    lines = scan_records(path, frame, [smiles_column, *targets])
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame[~blank], lines[torch.from_numpy(~blank)]
    if len(frame) == 0:
        raise DatasetFormatError(f"'{path}' has a header but no rows")
    y = target_values(path, frame, targets, lines)
    smiles = [s.strip() if isinstance(s, str) else ''
              for s in frame[smiles_column].tolist()]
    parsed = _parse(smiles)
    valid = parsed.pop('valid')
    if valid.numel() == 0:
        raise about(DatasetFormatError(
            f"'{path}': none of the {len(smiles)} SMILES in column "
            f"'{smiles_column}' could be parsed by RDKit"), 'smiles_column')
    invalid = torch.ones(len(smiles), dtype=torch.bool)
    invalid[valid] = False
    return dict(parsed, format=CACHE_FORMAT, y=y[valid],
                smiles=[smiles[i] for i in valid.tolist()],
                lines=lines[valid], invalid_lines=lines[invalid].tolist(),
                rows=len(smiles), targets=list(targets))


def load_molecule_csv(
    path: str,
    smiles_column: str = 'smiles',
    targets: Optional[Union[str, Sequence[str]]] = None,
    *,
    task_type: str = 'auto',
    cache: Optional[str] = None,
    name: Optional[str] = None,
) -> GraphTask:
    r"""Loads molecules from a CSV (or :obj:`.csv.gz`) file with a SMILES
    column and one or more numeric target columns.

    Each valid SMILES becomes one graph with OGB's features (:obj:`x`
    :obj:`[n, 9]` and :obj:`edge_attr` :obj:`[e, 3]`, :obj:`torch.long`)
    and :obj:`y` :obj:`[1, T]` (float, NaN where a target is missing, to
    be masked per task). SMILES RDKit cannot parse, or with whitespace
    inside (RDKit would read the rest as a name), are skipped; their count
    and first line numbers (where their rows start, quoted line breaks
    counted) are in :obj:`task.notes` and a warning.
    The graphs are cached in :obj:`cache`, keyed by the SHA-256 of the
    file's content, the columns and the RDKit and OGB versions; every
    check runs before anything is written there.

    Args:
        path (str): The CSV file.
        smiles_column (str, optional): The SMILES column.
            (default: :obj:`'smiles'`)
        targets (str or sequence of str): The target column(s).
        task_type (str, optional): :obj:`'binary classification'` (metric
            :obj:`'rocauc'`), :obj:`'regression'` (metric :obj:`'rmse'`)
            or :obj:`'auto'`: binary when every target value is 0 or 1.
            :obj:`'classification'` means binary. (default: :obj:`'auto'`)
        cache (str, optional): Cache folder. (default:
            :obj:`cache_root()/molecules`, see :envvar:`SAP_GRAPH_CACHE`)
        name (str, optional): Dataset name. (default: the file name
            without :obj:`.csv` / :obj:`.csv.gz`)

    Raises:
        DatasetNotFoundError: The file does not exist.
        DatasetFormatError: A damaged, truncated or otherwise unreadable
            (compressed) file, a missing column, no rows, no valid SMILES, a
            non-numeric target value, a target without any value, or a
            binary target with one class only.
    """
    if task_type == 'classification':
        task_type = 'binary classification'
    if task_type not in ('auto', *TASK_TYPES):
        raise ValueError(f"Unknown task_type '{task_type}' (expected "
                         f"'auto', {', '.join(map(repr, TASK_TYPES))})")
    require_rdkit()
    require_ogb()
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise about(DatasetNotFoundError(  # A file name, not a root.
            f"Molecule CSV '{path}' not found"
            + (' (it is a folder)' if osp.isdir(path) else '')), 'dataset')
    if targets is None or isinstance(targets, str):
        targets = [] if targets is None else [targets]
    targets = list(targets)
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise about(DatasetFormatError(
            f"Target column(s) given more than once: "
            f"{', '.join(map(repr, twice))}"), 'targets')
    if not targets:
        frame = read_csv(path)
        raise about(DatasetFormatError(
            f"No target column given for '{path}'; pick one or more of its "
            f"columns: {', '.join(repr(str(c)) for c in frame.columns)}"),
            'targets')
    if name is None:
        name = osp.basename(path)
        for ext in ('.gz', '.csv'):
            if name.lower().endswith(ext):
                name = name[:-len(ext)]
    file = _cache_path(path, smiles_column, targets, name, cache)
    graphs = _load_cached(file)
    hit = graphs is not None
    if graphs is None:
        graphs = _process(path, smiles_column, targets)
    y = graphs['y']
    labelled = ~torch.isnan(y)
    for t, target in enumerate(targets):
        if not bool(labelled[:, t].any()):
            raise about(DatasetFormatError(
                f"'{path}': target column '{target}' has no values (for "
                f"the molecules with valid SMILES)"), 'targets')
    task_type = infer_task_type(path, y, targets, task_type)
    if not hit:
        buffer = io.BytesIO()
        torch.save(graphs, buffer)
        try:
            atomic_write(file, lambda f: f.write(buffer.getvalue()))
        except OSError as e:  # The cache only saves time.
            warnings.warn(f"{name}: processed molecules not cached in "
                          f"'{osp.dirname(file)}' ({e.strerror or e}); set "
                          f"{ENV_CACHE} to a writable folder", stacklevel=2)
    notes = []
    bad = graphs['invalid_lines']
    if bad:
        shown = ', '.join(str(i) for i in bad[:MAX_LINES_SHOWN])
        more = ', ...' if len(bad) > MAX_LINES_SHOWN else ''
        notes.append(f"skipped {len(bad)} invalid SMILES (line"
                     f"{'s' if len(bad) > 1 else ''} {shown}{more})")
        warnings.warn(f"{name}: {notes[-1]}", stacklevel=2)
    dataset = MoleculeGraphs(graphs)
    return GraphTask(
        name=name, dataset=dataset, num_features=NUM_ATOM_FEATURES,
        num_classes=len(targets), num_edge_features=NUM_BOND_FEATURES,
        kind='molecules', metric=TASK_TYPES[task_type], task_type=task_type,
        split_idx=None, source=osp.abspath(path), notes=notes)


__all__ = [
    'MoleculeGraphs', 'load_molecule_csv', 'mol_to_graph',
    'NUM_ATOM_FEATURES', 'NUM_BOND_FEATURES',
]
