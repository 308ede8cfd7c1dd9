r"""The result of a comparison (:class:`ComparisonResult`): the learning
rate chosen per fold/seed on validation, the readouts ranked by mean
validation score, paired tests of each against the best by validation,
collapsed runs, time per epoch; and its files (:obj:`report.md`,
:obj:`results.csv`).
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from sap_graph.experiments.compare.stats import sign_flip_test

#: A run whose final training loss is at least this share of the loss of
#: the best constant prediction never trained (collapsed).
CHANCE_LOSS = 0.98

#: Metrics shown in percent.
PERCENT = ('acc', 'rocauc', 'prcauc', 'ap')

#: Two paired scores closer than this are a tie.
TIE = 1e-9


def finite(value: Any) -> bool:
    r"""Whether a score is a finite number (a diverged run stores
    :obj:`None` in its JSON file, NaN in memory)."""
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def diverged(record: Dict[str, Any]) -> bool:
    r"""Whether a run's validation or test score is not finite."""
    return not (finite(record.get('val')) and finite(record.get('test')))


def collapsed(record: Dict[str, Any]) -> bool:
    r"""Whether a run never trained: it :func:`diverged`, its final
    training loss is not finite, or it stayed at :data:`CHANCE_LOSS` x
    the loss of a constant prediction or above."""
    if diverged(record):
        return True
    chance = record.get('chance_loss')
    if chance is None or not chance > 0 or 'final_train_loss' not in record:
        return False
    loss = record['final_train_loss']
    return not finite(loss) or loss >= CHANCE_LOSS * chance


@dataclass
class ReadoutRow:
    r"""One readout's line of the report (lr chosen per fold/seed).

    :obj:`n` counts the folds/seeds the readout finished at every
    learning rate with a finite chosen run (the means and the sample std,
    :func:`statistics.stdev`, are over those); :obj:`diverged` those
    where every learning rate :func:`diverged`. A readout with neither
    has not finished any fold/seed yet: NaN means and rank (the rank is
    NaN too for one without a finite validation score where ranked).
    :obj:`collapsed` and :obj:`runs` count its finished runs at every
    learning rate.
    """
    readout: str
    label: str
    n: int
    test_mean: float
    test_std: float
    val_mean: float
    lrs: Dict[str, float]
    epoch_time: float
    collapsed: int
    runs: int
    rank: float = math.nan
    diverged: int = 0

    @property
    def finished(self) -> int:
        r"""The folds/seeds finished at every learning rate (finite or
        :func:`diverged`)."""
        return self.n + self.diverged


@dataclass
class PairedTest:
    r"""A readout against the best by validation, on shared folds/seeds.
    :obj:`diffs` are readout minus best (metric units); wins are folds
    where the readout scored better (by the metric's direction)."""
    readout: str
    against: str
    units: List[str]
    diffs: List[float]
    wins: int
    ties: int
    losses: int
    p_value: float
    p_method: str

    @property
    def mean_diff(self) -> float:
        return statistics.fmean(self.diffs) if self.diffs else math.nan


class UnknownReadout(KeyError, ValueError):
    r"""Raised by :meth:`ComparisonResult.row` and
    :meth:`ComparisonResult.paired` for a readout that the comparison does
    not hold; the message lists those it holds. A :class:`KeyError` (a
    lookup by name) and a :class:`ValueError` (a bad argument)."""

    def __str__(self) -> str:  # KeyError's would quote the message.
        return str(self.args[0]) if self.args else ''


@dataclass
class ComparisonResult:
    r"""A finished (or partial) comparison.

    Attributes:
        dataset (dict): The dataset's statistics.
        metric (str): The test metric; :obj:`higher_is_better` its
            direction.
        runs (list of dict): Every finished run's record (all learning
            rates).
        rows (list of ReadoutRow): Per readout, in the order given.
        best (str): The readout with the best mean validation score
            (:obj:`None` while no readout has a finite one); a tie goes
            to the lower mean validation loss, then to the first name in
            alphabetical order (never to the order of :obj:`readouts`).
        tied (list of str): The other readouts with the same mean
            validation score as :obj:`best`.
        tests (list of PairedTest): Every other readout that finished a
            fold/seed against :obj:`best`.
        selected (dict): :obj:`(readout, unit)` -> the record chosen on
            validation among the learning rates (only folds/seeds the
            readout finished at every learning rate).
        missing (int): Planned runs not finished.
        ranked_on (list of str): The folds/seeds every readout that
            finished any finished, on which the ranks and :obj:`best` are
            decided.
        units (list of str): The folds/seeds of the plan, in order.
    """
    dataset: Dict[str, Any]
    metric: str
    higher_is_better: bool
    protocol: str
    config: Dict[str, Any]
    runs: List[Dict[str, Any]]
    rows: List[ReadoutRow]
    best: Optional[str]
    tests: List[PairedTest]
    selected: Dict[Any, Dict[str, Any]] = field(repr=False)
    missing: int = 0
    ranked_on: List[str] = field(default_factory=list)
    units: List[str] = field(default_factory=list)
    tied: List[str] = field(default_factory=list)

    def row(self, readout: str) -> ReadoutRow:
        r"""The table row of :obj:`readout` (a name of :obj:`rows`, as
        given: :obj:`'sap'`, :obj:`'sap{"rezero": true}'`); raises
        :class:`UnknownReadout` for another."""
        self._check_readout(readout)
        return next(r for r in self.rows if r.readout == readout)

    def paired(self, readout: str, against: str) -> PairedTest:
        r"""The paired test of :obj:`readout` against :obj:`against` on
        the folds/seeds both finished (as :obj:`tests` against the best);
        raises :class:`UnknownReadout` for a name not in :obj:`rows`.
        """
        self._check_readout(readout)
        self._check_readout(against)
        return paired_test(self.selected, readout, against, self.units,
                           self.higher_is_better)

    def _check_readout(self, readout: str) -> None:
        known = [r.readout for r in self.rows]
        if readout not in known:
            raise UnknownReadout(
                f"{readout!r} is not a readout of this comparison (it "
                f"has: {', '.join(map(repr, known)) or 'none'})")

    def to_pandas(self) -> Any:
        r"""The readout table as a :class:`pandas.DataFrame`."""
        import pandas as pd
        return pd.DataFrame([vars(r) for r in self.rows])

    def __str__(self) -> str:
        return self.markdown()

    def markdown(self) -> str:
        from sap_graph.experiments.compare.render import markdown
        return markdown(self)

    def csv(self) -> str:
        r"""One line per run (all learning rates), :obj:`selected` marks
        the run chosen on validation for its readout and fold/seed."""
        out = io.StringIO()
        columns = ['dataset', 'readout', 'lr', 'unit', 'seed', 'selected',
                   'val', 'test', 'val_loss', 'test_loss', 'best_epoch',
                   'epoch_time_mean', 'final_train_loss', 'chance_loss',
                   'collapsed', 'wall_time', 'train_size', 'val_size',
                   'test_size']
        writer = csv.DictWriter(out, columns, extrasaction='ignore',
                                lineterminator='\n')
        writer.writeheader()
        chosen = {id(r) for r in self.selected.values()}
        for r in self.runs:
            writer.writerow({**r, 'dataset': self.dataset.get('name'),
                             'selected': id(r) in chosen,
                             'collapsed': collapsed(r)})
        return out.getvalue()


def _key(record: Dict[str, Any], higher: bool) -> tuple:
    # A diverged run is never chosen while a rate gives finite scores.
    if diverged(record):
        return (False, 0.0, 0.0, -record['lr'])
    loss = record.get('val_loss')
    loss = loss if finite(loss) else math.inf
    return (True, record['val'] if higher else -record['val'], -loss,
            -record['lr'])


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summarise(records: Sequence[Dict[str, Any]], readouts: Sequence[Any],
              units: Sequence[str], dataset: Dict[str, Any], metric: str,
              higher_is_better: bool, protocol: str,
              config: Dict[str, Any], expected_runs: int
              ) -> ComparisonResult:
    r"""Chooses the learning rate per readout and fold/seed on validation
    (ties: lower validation loss, then the smaller rate; a run that
    :func:`diverged` only when every rate did), ranks the readouts by mean
    validation score and tests each against the best.

    A fold/seed counts for a readout once it has finished at every
    learning rate (the choice among half the rates is not the one the
    finished comparison makes). While a comparison is partial, readouts
    may have finished different folds/seeds: ranks are then decided on
    the ones every readout that finished any finished (:obj:`ranked_on`),
    so that a readout is never ahead for having run only the easy seeds,
    and each paired test uses the folds/seeds its two readouts share.
    A readout that has finished none has a row (:obj:`n` 0, NaN means)
    but no rank and no test. A fold/seed where every rate diverged ranks
    the readout after those that did not diverge there, and is left out
    of its means and paired tests.

    Args:
        records (list of dict): Finished runs (:obj:`readout`, :obj:`lr`,
            :obj:`unit`, :obj:`val`, :obj:`test`, ...).
        readouts (list of Variant): The readouts, in report order.
        units (list of str): The folds/seeds of the plan, in order.
        expected_runs (int): The number of runs of the whole plan.
        config (dict): The comparison's settings; its :obj:`lrs` are the
            learning rates of the plan (default: those of the records).
    """
    higher = higher_is_better
    lrs = set(config.get('lrs') or (r['lr'] for r in records))
    done: Dict[Any, set] = {}
    for r in records:
        done.setdefault((r['readout'], r['unit']), set()).add(r['lr'])
    complete = {k for k, v in done.items() if v >= lrs}
    selected: Dict[Any, Dict[str, Any]] = {}
    for r in records:
        k = (r['readout'], r['unit'])
        if k in complete and (k not in selected
                              or _key(r, higher) > _key(selected[k], higher)):
            selected[k] = r
    rows = []
    for v in readouts:
        mine = [selected[v.name, u] for u in units if (v.name, u) in selected]
        ok = [r for r in mine if not diverged(r)]
        all_runs = [r for r in records if r['readout'] == v.name]
        tests = [r['test'] for r in ok]
        rows.append(ReadoutRow(
            readout=v.name, label=v.label, n=len(ok),
            test_mean=_mean(tests),
            test_std=(statistics.stdev(tests) if len(tests) > 1
                      else math.nan),  # A sample std needs two runs.
            val_mean=_mean([r['val'] for r in ok]),
            lrs={r['unit']: r['lr'] for r in ok},
            epoch_time=_mean([r['epoch_time_mean'] for r in all_runs
                              if finite(r.get('epoch_time_mean'))]),
            collapsed=sum(collapsed(r) for r in all_runs),
            runs=len(all_runs), diverged=len(mine) - len(ok)))
    ranked = [r for r in rows if r.finished]
    shared = [u for u in units if ranked
              and all((r.readout, u) in selected for r in ranked)]

    def standing(row: ReadoutRow) -> tuple:
        # (folds/seeds diverged, mean validation score in the direction
        # of better = smaller, mean validation loss, name) on the shared
        # ones, else on its own: ties never follow the readouts' order.
        chosen = [selected[row.readout, u]
                  for u in shared or units if (row.readout, u) in selected]
        ok = [r for r in chosen if not diverged(r)]
        # To 12 digits: the order of a float sum is no lead (the mean of
        # 0.1 and 0.2 is 0.15000000000000002), a tie goes to the loss.
        mean = float(f"{_mean([r['val'] for r in ok]):.12g}")
        losses = [r.get('val_loss') for r in ok]
        loss = _mean(losses) if all(map(finite, losses)) else math.inf
        return (len(chosen) - len(ok),
                math.inf if not ok else -mean if higher else mean,
                loss if ok else math.inf, row.readout)

    # Readouts with no finite validation score there are not ranked.
    standings = {r.readout: standing(r) for r in ranked}
    order = [r for r in sorted(ranked, key=lambda r: standings[r.readout])
             if standings[r.readout][1] < math.inf]
    for i, row in enumerate(order):
        row.rank = float(i + 1)
    best = order[0].readout if order else None
    tied = [r.readout for r in order[1:]
            if standings[r.readout][:2] == standings[best][:2]]
    tests = [paired_test(selected, row.readout, best, units, higher)
             for row in ranked if best is not None and row.readout != best]
    return ComparisonResult(
        dataset=dict(dataset), metric=metric, higher_is_better=higher,
        protocol=protocol, config=dict(config), runs=list(records),
        rows=rows, best=best, tests=tests, selected=selected,
        missing=expected_runs - len(records), ranked_on=shared,
        units=list(units), tied=tied)


def paired_test(selected: Dict[Any, Dict[str, Any]], readout: str,
                against: str, units: Sequence[str],
                higher: bool) -> PairedTest:
    r"""Pairs the chosen runs of two readouts on the folds/seeds both
    finished with finite test scores; sign-flip p-value of the mean
    difference (:func:`~sap_graph.experiments.compare.stats.sign_flip_test`
    with ties judged at the rounding of the largest score)."""
    shared = [u for u in units
              if (readout, u) in selected and (against, u) in selected
              and finite(selected[readout, u]['test'])
              and finite(selected[against, u]['test'])]
    mine = [selected[readout, u]['test'] for u in shared]
    theirs = [selected[against, u]['test'] for u in shared]
    diffs = [a - b for a, b in zip(mine, theirs, strict=True)]
    sign = 1.0 if higher else -1.0
    wins = sum(sign * d > TIE for d in diffs)
    losses = sum(sign * d < -TIE for d in diffs)
    p, method = sign_flip_test(diffs, scale=max(map(abs, mine + theirs),
                                                default=1.0))
    return PairedTest(readout, against, shared, diffs, wins,
                      len(diffs) - wins - losses, losses, p, method)


__all__ = ['CHANCE_LOSS', 'ComparisonResult', 'PairedTest', 'ReadoutRow',
           'UnknownReadout', 'collapsed', 'diverged', 'finite', 'paired_test',
           'summarise']
