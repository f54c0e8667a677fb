"""Streaming consensus: each item's posterior over true classes, learned jointly with reliability.

This is Dawid-Skene's EM run *incrementally* (Neal and Hinton's incremental EM). The
sufficient statistics are the annotators' soft confusion counts, to which each item
contributes its current posterior. When a label arrives, its item's posterior is recomputed
from the item's stored votes, the class prior and the annotators' current matrices (the E-step
for that item), and the item's contribution to every voter's counts is replaced by the new
posterior (the M-step is implicit: a matrix is always its normalised counts). Gold tasks
contribute with certainty.

An item would otherwise keep the contribution it got from the immature matrices of the moment
it was labeled, so each label also re-scores ``refresh_per_label`` other tracked items in
round-robin order. Every tracked item is revisited again and again over the stream, which
moves the online estimate toward the batch fixed point at a bounded cost per label.

Cost per label: ``O((1 + refresh_per_label) * V * K)`` for ``V <= max_votes_per_item`` votes
per item and ``K`` classes, independent of the length of the stream. Memory: ``V`` votes per
tracked item, ``K * K`` counts per annotator.

Closing items: an item is closed (its votes dropped, its contribution to the annotators kept)
when it has had no label for ``item_ttl_seconds`` of event time (checked when the round-robin
reaches it), or when more than ``max_items`` are tracked after a batch (the least recently
labeled go). Closed items are queued, with their final consensus, for
:meth:`StreamingConsensus.pop_closed`. A closed item that gets a label again starts afresh.

One vote per annotator and item: the same answer again (e.g. an event the producer re-sent)
changes nothing, and a different answer (a correction) replaces the earlier one; neither is a
second vote. (Beyond ``max_votes_per_item`` votes are not stored, so this cannot be checked.)

When it works and when it fails: as Dawid-Skene, it needs several labels per item and
annotators who label several items; with one label per item it can only trust the population
prior. Labels are scored with the matrices of their moment, so the first few hundred labels
of a stream are less accurate than later ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import base

from labelwatch.models import _kernels
from labelwatch.models.drift import AnswerContext
from labelwatch.models.reliability import AnnotatorReliability

__all__ = ["BatchReads", "ItemConsensus", "StreamingConsensus", "warm_up"]


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the kernels, so timing excludes it."""
    model = StreamingConsensus()
    model.learn_many(
        [
            {"item": "i", "annotator": "a", "label": "x", "gold": "x", "ts": 0.0},
            {"item": "i", "annotator": "b", "label": "y"},
        ]
    )
    model.predict_one({"item": "i"})


@dataclass(frozen=True)
class BatchReads:
    """What :meth:`StreamingConsensus.learn_and_read` saw while learning a batch.

    ``labels[t]``: (label, confidence) of label ``t``'s item right after it was learned.
    ``refreshed``: (t, item, label, confidence) for each item the sweep re-scored after
    label ``t``, in order. ``evidence[t]``: (the probability that label ``t`` is right judging
    by its item's other votes or gold just before it, the sum of squares of that posterior),
    ``None`` with nothing to judge by; the annotator's own answer plays no part, so it is a
    fair correctness signal, and the sharpness says how much it can tell. ``contexts[t]``:
    what the model knew about label ``t`` when it arrived (see
    :class:`~labelwatch.models.drift.AnswerContext`), ``None`` for a correction: what the
    drift detectors test against."""

    labels: list[tuple[str | None, float]]
    refreshed: list[tuple[int, str, str | None, float]]
    evidence: list[tuple[float, float] | None]
    contexts: list[AnswerContext | None]


@dataclass(frozen=True)
class ItemConsensus:
    """The consensus of one item when it was read."""

    item: str
    label: str | None
    confidence: float
    n_votes: int
    gold: str | None


class StreamingConsensus(base.Base):
    """Per-item consensus and per-annotator reliability, learned label by label.

    Parameters
    ----------
    reliability
        The annotator model whose confusion matrices score the votes (and that this model
        trains). Default: ``AnnotatorReliability()``.
    class_prior_strength
        Pseudo-count per class in the class prior.
    refresh_per_label
        Other tracked items re-scored per label (round-robin); 0 turns the sweep off.
    max_votes_per_item
        Votes stored per item; later votes still train their annotator, once.
    max_items
        Items tracked at most, checked after each ``learn_many`` call: beyond it the least
        recently labeled items are closed (with 1% slack).
    item_ttl_seconds
        Event-time inactivity after which an item is closed (``None``: never).

    Examples
    --------
    >>> model = StreamingConsensus()
    >>> for item, annotator, label in [
    ...     ("i1", "ann", "cat"), ("i1", "bob", "cat"), ("i1", "eve", "dog"),
    ...     ("i2", "ann", "dog"), ("i2", "bob", "dog"), ("i2", "eve", "cat"),
    ... ]:
    ...     model.learn_one({"item": item, "annotator": annotator, "label": label})
    >>> model.predict_one({"item": "i1"}), model.predict_one({"item": "i2"})
    ('cat', 'dog')
    >>> c = model.consensus("i1")
    >>> c.n_votes, round(c.confidence, 2)
    (3, 0.87)
    >>> model.learn_one({"item": "i3", "annotator": "eve", "label": "dog", "gold": "cat"})
    >>> model.reliability.report("eve").gold_accuracy
    0.0

    References
    ----------
    Neal, R. M., Hinton, G. E. (1998). A view of the EM algorithm that justifies incremental,
    sparse, and other variants. In Learning in Graphical Models, 355-368.
    """

    def __init__(
        self,
        reliability: AnnotatorReliability | None = None,
        class_prior_strength: float = 1.0,
        refresh_per_label: int = 2,
        max_votes_per_item: int = 64,
        max_items: int = 1_000_000,
        item_ttl_seconds: float | None = None,
    ) -> None:
        self.reliability = reliability if reliability is not None else AnnotatorReliability()
        self.class_prior_strength = class_prior_strength
        self.refresh_per_label = refresh_per_label
        self.max_votes_per_item = max_votes_per_item
        self.max_items = max_items
        self.item_ttl_seconds = item_ttl_seconds
        self._slots: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._free: list[int] = []
        self._closed: list[ItemConsensus] = []
        self.n_labels_ = 0
        self._allocate(64)
        self.class_mass_: NDArray[np.float64] = np.zeros(self.reliability.class_capacity)

    def _allocate(self, items: int) -> None:
        k = self.reliability.class_capacity
        self.votes_annotator_: NDArray[np.int32] = np.zeros(
            (items, self.max_votes_per_item), dtype=np.int32
        )
        self.votes_label_: NDArray[np.int32] = np.zeros(
            (items, self.max_votes_per_item), dtype=np.int32
        )
        self.n_votes_: NDArray[np.int32] = np.zeros(items, dtype=np.int32)
        self.gold_: NDArray[np.int32] = np.full(items, -1, dtype=np.int32)
        self.posterior_: NDArray[np.float64] = np.zeros((items, k))
        self.last_seen_: NDArray[np.float64] = np.full(items, np.nan)
        self.last_label_: NDArray[np.int64] = np.zeros(items, dtype=np.int64)
        self.sweep_: NDArray[np.int64] = np.zeros(items, dtype=np.int64)
        self.sweep_state_: NDArray[np.int64] = np.zeros(2, dtype=np.int64)  # head, size

    def _item_arrays(self) -> tuple[NDArray[Any], ...]:
        """The per-item arrays in the kernels' order (see ``_kernels``)."""
        return (
            self.votes_annotator_,
            self.votes_label_,
            self.n_votes_,
            self.gold_,
            self.posterior_,
            self.last_seen_,
            self.last_label_,
        )

    def _grow_items(self) -> None:
        n = self.n_votes_.shape[0]
        old = self._item_arrays()
        ring = self._sweep_order()
        self._allocate(2 * n)
        for new, previous in zip(self._item_arrays(), old, strict=True):
            if new.ndim == 2:
                new[:n, : previous.shape[1]] = previous
            else:
                new[:n] = previous
        self.sweep_[: len(ring)] = ring
        self.sweep_state_[:] = (0, len(ring))

    def _sync_classes(self) -> None:
        """Widen the per-class arrays after the reliability model grew its class capacity."""
        k = self.reliability.class_capacity
        if self.posterior_.shape[1] < k:
            posterior = np.zeros((self.posterior_.shape[0], k))
            posterior[:, : self.posterior_.shape[1]] = self.posterior_
            self.posterior_ = posterior
            mass = np.zeros(k)
            mass[: self.class_mass_.shape[0]] = self.class_mass_
            self.class_mass_ = mass

    def _sweep_order(self) -> NDArray[np.int64]:
        head, size = (int(v) for v in self.sweep_state_)
        capacity = self.sweep_.shape[0]
        order: NDArray[np.int64] = self.sweep_[(head + np.arange(size)) % capacity]
        return order

    def _params(self) -> NDArray[np.float64]:
        params = self.reliability.params_
        params[_kernels.P_CLASS_PRIOR] = self.class_prior_strength
        ttl = self.item_ttl_seconds
        params[_kernels.P_TTL] = np.nan if ttl is None else ttl
        return params

    def _item_slot(self, item_id: str) -> int:
        slot = self._slots.get(item_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self._ids)
                if slot == self.n_votes_.shape[0]:
                    self._grow_items()
                self._ids.append(None)
            self._slots[item_id] = slot
            self._ids[slot] = item_id
            self.n_votes_[slot] = 0
            self.gold_[slot] = -1
            self.posterior_[slot] = 0.0
            self.last_seen_[slot] = np.nan
        return slot

    # --- learning ---------------------------------------------------------------------
    def learn_one(self, x: Mapping[str, Any]) -> None:
        """Learn from one label: ``x`` has ``item``, ``annotator``, ``label``, and optionally
        ``gold`` (the known answer of a control task) and ``ts`` (event time in seconds)."""
        self.learn_many([x])

    def learn_many(self, xs: Iterable[Mapping[str, Any]]) -> None:
        """Learn from labels in order; the same as ``learn_one`` on each, in one kernel call."""
        self._learn_many(xs)

    def learn_and_read(self, xs: Iterable[Mapping[str, Any]]) -> BatchReads:
        """:meth:`learn_many`, also returning each label's item consensus right after that
        label was learned, and the consensus of every item the sweep re-scored on the way:
        what a live table of item consensus needs, the same whatever the batching."""
        reads = BatchReads([], [], [], [])
        self._learn_many(xs, reads)
        return reads

    def _learn_many(self, xs: Iterable[Mapping[str, Any]], reads: BatchReads | None = None) -> None:
        rel = self.reliability
        item_slots, ann_slots, labels, golds, times, known = [], [], [], [], [], []
        xs_list = list(xs)
        for x in xs_list:
            item_slots.append(self._item_slot(x["item"]))
            ann_slots.append(rel.slot(x["annotator"]))
            labels.append(rel.class_index(x["label"]))
            gold = x.get("gold")
            golds.append(-1 if gold is None else rel.class_index(gold))
            ts = x.get("ts")
            times.append(np.nan if ts is None else float(ts))
            known.append(rel.n_classes)
        if not item_slots:
            return
        self._sync_classes()
        item_ids = [x["item"] for x in xs_list]
        slots = np.asarray(item_slots, dtype=np.int64)
        batch = (
            np.asarray(ann_slots, dtype=np.int64),
            np.asarray(labels, dtype=np.int64),
            np.asarray(golds, dtype=np.int64),
            np.asarray(times, dtype=np.float64),
            np.asarray(known, dtype=np.int64),
        )
        expired = np.empty(max(1, self.refresh_per_label), dtype=np.int64)
        width = self.class_mass_.shape[0]
        refresh = self.refresh_per_label
        at_label = np.zeros((len(slots), width))
        refreshed = np.full((len(slots), refresh), -1, dtype=np.int64)
        at_refresh = np.zeros((len(slots), refresh, width))
        evidence = np.full(len(slots), np.nan)
        sharpness = np.full(len(slots), np.nan)
        before = np.zeros((len(slots), width))
        pop_col = np.zeros((len(slots), width))
        ann_col = np.zeros((len(slots), width))
        ann_rows = np.zeros((len(slots), width))
        params = self._params()
        first_seq = self.n_labels_
        items, annotators = self._item_arrays(), rel.arrays()
        done = 0
        while done < len(slots):
            done, n_expired = _kernels.learn_batch(
                done,
                (slots, *batch),
                first_seq,
                items,
                annotators,
                self.class_mass_,
                self.sweep_,
                self.sweep_state_,
                expired,
                params,
                self.refresh_per_label,
                self.max_votes_per_item,
                at_label,
                refreshed,
                at_refresh,
                evidence,
                sharpness,
                before,
                pop_col,
                ann_col,
                ann_rows,
            )
            if reads is not None:
                self._collect_refreshed(reads, refreshed, at_refresh)
            closed = {int(slot) for slot in expired[:n_expired]}
            for slot in closed:
                self._close(slot)
            if closed:
                # A closed item labeled again later in the batch starts afresh in a new slot.
                for t in range(done, len(slots)):
                    if int(slots[t]) in closed or item_ids[t] not in self._slots:
                        slots[t] = self._item_slot(item_ids[t])
                items = self._item_arrays()  # new slots may have grown the arrays
        self.n_labels_ += len(slots)
        self._enforce_cap()
        if reads is not None:
            reads.labels.extend(self._best(at_label))
            reads.evidence.extend(
                None if np.isnan(e) else (float(e), float(s2))
                for e, s2 in zip(evidence.tolist(), sharpness.tolist(), strict=True)
            )
            s = rel.prior_strength
            for t, k in enumerate(batch[4].tolist()):
                row = before[t, :k]
                reads.contexts.append(
                    None
                    if np.isnan(row[0])
                    else AnswerContext(
                        int(batch[1][t]),
                        row.tolist(),
                        pop_col[t, :k].tolist(),
                        ann_col[t, :k].tolist(),
                        ann_rows[t, :k].tolist(),
                        at_label[t, :k].tolist(),
                        s,
                        self._peers(item_ids[t], int(batch[0][t])),
                    )
                )

    def _peers(self, item_id: str, annotator_slot: int) -> tuple[tuple[str, int], ...]:
        """(annotator, answer) of the votes stored on ``item_id`` before ``annotator_slot``'s
        (all of them when its vote was not stored; none when the item has closed)."""
        slot = self._slots.get(item_id)
        if slot is None:
            return ()
        n = int(self.n_votes_[slot])
        voters = self.votes_annotator_[slot, :n].tolist()
        answers = self.votes_label_[slot, :n].tolist()
        end = voters.index(annotator_slot) if annotator_slot in voters else n
        name = self.reliability.annotator_id
        return tuple((name(a), answers[j]) for j, a in enumerate(voters[:end]))

    def _best(self, posteriors: NDArray[np.float64]) -> list[tuple[str | None, float]]:
        """(label, confidence) of each posterior row (``None`` for an all-zero row)."""
        classes = self.reliability.classes_
        best = posteriors.argmax(axis=1)
        confidence = posteriors[np.arange(len(best)), best]
        return [
            (classes[b] if c > 0 else None, float(c))
            for b, c in zip(best.tolist(), confidence.tolist(), strict=True)
        ]

    def _collect_refreshed(
        self, reads: BatchReads, refreshed: NDArray[np.int64], at: NDArray[np.float64]
    ) -> None:
        """Name the re-scored items while their slots still belong to them, then reset."""
        rows, steps = np.nonzero(refreshed >= 0)
        if len(rows):
            best = self._best(at[rows, steps])
            for t, slot, (label, confidence) in zip(
                rows.tolist(), refreshed[rows, steps].tolist(), best, strict=True
            ):
                reads.refreshed.append((t, str(self._ids[slot]), label, confidence))
        refreshed[rows, steps] = -1

    def _enforce_cap(self) -> None:
        """Close the least recently labeled items beyond ``max_items`` (plus 1% slack, so
        the O(items) selection runs once per 1% of ``max_items`` evictions, not per label)."""
        excess = len(self._slots) - self.max_items
        if excess <= 0:
            return
        excess += self.max_items // 100
        active = self._sweep_order()
        oldest = active[np.argsort(self.last_label_[active], kind="stable")[:excess]]
        doomed = set(oldest.tolist())
        keep = np.asarray([s for s in active.tolist() if s not in doomed], dtype=np.int64)
        self.sweep_[: len(keep)] = keep
        self.sweep_state_[:] = (0, len(keep))
        for slot in sorted(doomed, key=lambda s: self.last_label_[s]):
            self._close(int(slot))

    def _close(self, slot: int) -> None:
        self._closed.append(self._read(slot))
        item_id = self._ids[slot]
        assert item_id is not None
        del self._slots[item_id]
        self._ids[slot] = None
        self._free.append(slot)

    # --- prediction -------------------------------------------------------------------
    def _posterior(self, slot: int) -> NDArray[np.float64]:
        rel = self.reliability
        k = rel.n_classes
        q = np.empty(k)
        _kernels.posterior(
            q,
            np.empty(k),
            slot,
            self._item_arrays(),
            rel.arrays(),
            self.class_mass_,
            k,
            self._params(),
            -1,
            -1,
        )
        return q

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[str, float]:
        """Posterior over classes of ``x["item"]``, re-scored with the current matrices
        (the class prior for an item not tracked)."""
        classes = self.reliability.classes_
        slot = self._slots.get(x["item"])
        if slot is None:
            prior = self.class_mass_[: len(classes)] + self.class_prior_strength
            return dict(zip(classes, (prior / prior.sum()).tolist(), strict=True))
        return dict(zip(classes, self._posterior(slot).tolist(), strict=True))

    def predict_one(self, x: Mapping[str, Any]) -> str | None:
        """The consensus label of ``x["item"]`` (``None`` before any label was seen)."""
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__) if proba else None

    def votes_and_gold(self, item_id: str) -> tuple[int, str | None]:
        """Stored vote count and gold label of a tracked item, without re-scoring it."""
        slot = self._slots[item_id]
        gold = int(self.gold_[slot])
        return int(self.n_votes_[slot]), self.reliability.classes_[gold] if gold >= 0 else None

    def consensus(self, item_id: str) -> ItemConsensus:
        """Label, confidence and vote count of a tracked item (``KeyError`` if not tracked)."""
        return self._read(self._slots[item_id])

    def _read(self, slot: int) -> ItemConsensus:
        classes = self.reliability.classes_
        item_id = self._ids[slot]
        assert item_id is not None
        q = self._posterior(slot)
        best = int(np.argmax(q)) if len(q) else None
        gold = int(self.gold_[slot])
        return ItemConsensus(
            item=item_id,
            label=classes[best] if best is not None else None,
            confidence=float(q[best]) if best is not None else 0.0,
            n_votes=int(self.n_votes_[slot]),
            gold=classes[gold] if gold >= 0 else None,
        )

    def pop_closed(self) -> list[ItemConsensus]:
        """Items closed since the last call, with their final consensus."""
        closed, self._closed = self._closed, []
        return closed

    @property
    def items(self) -> list[str]:
        """Ids of the tracked (open) items, in round-robin order."""
        return [str(self._ids[int(slot)]) for slot in self._sweep_order()]

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slots

    # --- state ------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Learned state (this model's and its reliability model's) as JSON-compatible data.

        The open items are stored column by column (their votes flattened), built with
        numpy rather than item by item: a checkpoint of 50k items took 0.7 s before."""
        rel = self.reliability
        k = rel.n_classes
        order = self._sweep_order()
        n_votes = self.n_votes_[order]
        width = int(n_votes.max()) if len(order) else 0
        voted = np.arange(width) < n_votes[:, None]
        last_seen = self.last_seen_[order]
        return {
            "reliability": rel.to_state(),
            "class_mass": self.class_mass_[:k].tolist(),
            "n_labels": self.n_labels_,
            "columns": {
                "ids": [self._ids[slot] for slot in order.tolist()],
                "annotator_ids": rel.annotators,  # what the votes' annotator numbers index
                "n_votes": n_votes.tolist(),
                "vote_annotators": self.votes_annotator_[order, :width][voted].tolist(),
                "vote_labels": self.votes_label_[order, :width][voted].tolist(),
                "posterior": self.posterior_[order, :k].ravel().tolist(),
                "gold": self.gold_[order].tolist(),
                # NaN (never seen) as null: JSON has no NaN.
                "last_seen": [None if math.isnan(t) else t for t in last_seen.tolist()],
            },
            "closed": [[c.item, c.label, c.confidence, c.n_votes, c.gold] for c in self._closed],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the learned state with one produced by :meth:`to_state` (this release's
        columns, or the item lists of checkpoints written before)."""
        rel = self.reliability
        rel.load_state(state["reliability"])
        k = rel.n_classes
        columns = state.get("columns")
        n_items = len(columns["ids"]) if columns is not None else len(state["items"])
        self._slots, self._ids, self._free = {}, [], []
        self._allocate(max(64, n_items))
        self.class_mass_ = np.zeros(rel.class_capacity)
        self.class_mass_[:k] = state["class_mass"]
        self.n_labels_ = int(state["n_labels"])
        if columns is not None:
            self._load_columns(columns, k)
        else:
            self._load_items(state["items"], k)
        self._closed = [ItemConsensus(*c) for c in state["closed"]]

    def _load_columns(self, columns: dict[str, Any], k: int) -> None:
        slots = np.asarray([self._item_slot(item) for item in columns["ids"]], dtype=np.int64)
        n_votes = np.asarray(columns["n_votes"], dtype=np.int32)
        width = int(n_votes.max()) if len(slots) else 0
        voted = np.arange(width) < n_votes[:, None]
        annotator_slot = np.asarray(
            [self.reliability.slot(a) for a in columns["annotator_ids"]], dtype=np.int32
        )
        votes = np.zeros((len(slots), width), dtype=np.int32)
        votes[voted] = annotator_slot[np.asarray(columns["vote_annotators"], dtype=np.int64)]
        self.votes_annotator_[slots, :width] = votes
        votes[voted] = columns["vote_labels"]
        self.votes_label_[slots, :width] = votes
        self.n_votes_[slots] = n_votes
        self.posterior_[slots, :k] = np.asarray(columns["posterior"]).reshape(len(slots), k)
        self.gold_[slots] = columns["gold"]
        self.last_seen_[slots] = np.asarray(columns["last_seen"], dtype=np.float64)  # None: NaN
        self.sweep_[: len(slots)] = slots
        self.sweep_state_[:] = (0, len(slots))

    def _load_items(self, items: list[Any], k: int) -> None:
        rel = self.reliability
        for item_id, annotators, labels, posterior, gold, last_seen in items:
            slot = self._item_slot(item_id)
            n = len(labels)
            self.votes_annotator_[slot, :n] = [rel.slot(a) for a in annotators]
            self.votes_label_[slot, :n] = labels
            self.n_votes_[slot] = n
            self.posterior_[slot, :k] = posterior
            self.gold_[slot] = gold
            self.last_seen_[slot] = np.nan if last_seen is None else last_seen
            head, size = (int(v) for v in self.sweep_state_)
            self.sweep_[(head + size) % self.sweep_.shape[0]] = slot
            self.sweep_state_[1] = size + 1
