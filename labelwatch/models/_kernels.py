"""Numeric kernels of the online Dawid-Skene learner, compiled with numba.

Why numba: the learner re-scores an item (all its votes, every class) for each label and for
each item of the refresh sweep; in pure Python that measured 12,000-27,000 labels/s on the
shared data sets, against a target of 100,000. The kernels below are the same arithmetic
over numpy arrays, compiled once and cached on disk. They hold no state of their own:
:mod:`labelwatch.models.reliability` and :mod:`labelwatch.models.consensus` own the arrays
and pass them in as two tuples.

``annotators = (counts, rows, pop, pop_rows, stats)``, for annotator slot ``a``, true class
``k`` and given label ``l``: ``counts[a, k, l]`` soft confusion counts, ``rows[a, k]`` their
row sums, ``pop[k, l]`` and ``pop_rows[k]`` the same summed over all annotators, and
``stats[a] = (n_labels, gold_seen, gold_correct)``.

``items = (votes_ann, votes_lab, n_votes, gold, post, last_seen, last_label)``, for item slot
``i`` and vote ``j``: the voter and label of each stored vote, the number of votes, the gold
class (-1: none), the posterior last credited to the voters, the event time of the last label
(NaN: unknown) and the sequence number of the last label.

``params = (prior_strength, population_strength, population_accuracy, class_prior_strength,
item_ttl_seconds or NaN)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

P_STRENGTH, P_POP_STRENGTH, P_POP_ACCURACY, P_CLASS_PRIOR, P_TTL = range(5)

# fmt: off
# (the formatter would put every argument of these numeric kernels on a line of its own)


@njit(cache=True, nogil=True)
def population_column(out, annotators, label, n_classes, params):  # type: ignore[no-untyped-def]
    """``out[k]``: the population's smoothed chance of answering ``label`` for true class ``k``
    (the prior each annotator's matrix is shrunk toward)."""
    _, _, pop, pop_rows, _ = annotators
    b, acc = params[P_POP_STRENGTH], params[P_POP_ACCURACY]
    off = (1.0 - acc) / (n_classes - 1) if n_classes > 1 else 0.0
    for k in range(n_classes):
        base = acc if k == label else off
        out[k] = (pop[k, label] + b * base) / (pop_rows[k] + b)


@njit(cache=True, nogil=True)
def likelihood(out, annotators, a, label, n_classes, params):  # type: ignore[no-untyped-def]
    """``out[k] = pi_a[k][label]``: annotator ``a``'s smoothed chance of answering ``label``."""
    counts, rows = annotators[0], annotators[1]
    s = params[P_STRENGTH]
    population_column(out, annotators, label, n_classes, params)
    for k in range(n_classes):
        out[k] = (counts[a, k, label] + s * out[k]) / (rows[a, k] + s)


@njit(cache=True, nogil=True)
def posterior(q, lik, i, items, annotators, mass, n_classes, params, extra_a, extra_l):  # type: ignore[no-untyped-def]
    """Posterior over true classes of item ``i`` into ``q``, plus one unstored extra vote
    when ``extra_a >= 0``."""
    votes_ann, votes_lab, n_votes, gold = items[0], items[1], items[2], items[3]
    g = gold[i]
    if g >= 0:
        for k in range(n_classes):
            q[k] = 0.0
        q[g] = 1.0
        return
    for k in range(n_classes):
        q[k] = mass[k] + params[P_CLASS_PRIOR]
    n = n_votes[i]
    for j in range(n + 1 if extra_a >= 0 else n):
        if j < n:
            likelihood(lik, annotators, votes_ann[i, j], votes_lab[i, j], n_classes, params)
        else:
            likelihood(lik, annotators, extra_a, extra_l, n_classes, params)
        z = 0.0
        for k in range(n_classes):
            q[k] *= lik[k]
            z += q[k]
        if z <= 0.0 or not math.isfinite(z):
            for k in range(n_classes):
                q[k] = 1.0 / n_classes
            return
        for k in range(n_classes):
            q[k] /= z  # renormalised per vote: no underflow however many votes
    z = 0.0
    for k in range(n_classes):
        z += q[k]
    for k in range(n_classes):
        q[k] /= z


@njit(cache=True, nogil=True)
def credit(annotators, a, label, delta, n_classes):  # type: ignore[no-untyped-def]
    """Add ``delta[k]`` to annotator ``a``'s (and the population's) column ``label``."""
    counts, rows, pop, pop_rows, _ = annotators
    for k in range(n_classes):
        d = delta[k]
        if d != 0.0:
            counts[a, k, label] += d
            rows[a, k] += d
            pop[k, label] += d
            pop_rows[k] += d


@njit(cache=True, nogil=True)
def rescore(i, new_vote, work, items, annotators, mass, n_classes, params):  # type: ignore[no-untyped-def]
    """E-step for item ``i``: replace its credited posterior in every voter's counts.

    With ``new_vote`` the last stored vote is new and gets the whole posterior."""
    votes_ann, votes_lab, n_votes, post = items[0], items[1], items[2], items[4]
    q, lik, diff = work
    n = n_votes[i]
    if n == 0:
        return
    posterior(q, lik, i, items, annotators, mass, n_classes, params, -1, -1)
    for k in range(n_classes):
        diff[k] = q[k] - post[i, k]
    for j in range(n - 1 if new_vote else n):
        credit(annotators, votes_ann[i, j], votes_lab[i, j], diff, n_classes)
    if new_vote:
        credit(annotators, votes_ann[i, n - 1], votes_lab[i, n - 1], q, n_classes)
    for k in range(n_classes):
        mass[k] += diff[k]
        post[i, k] = q[k]


@njit(cache=True, nogil=True)
def learn_batch(start, batch, first_seq, items, annotators, mass, sweep, sweep_state,  # type: ignore[no-untyped-def]
                expired, params, refresh, max_votes, at_label, refreshed, at_refresh, evidence,
                sharpness, before, pop_col, ann_col, ann_rows):
    """Learn labels ``start, start + 1, ...`` of ``batch`` in order.

    ``batch = (item_slots, annotator_slots, labels, golds, times, classes_known)``, where
    ``classes_known[t]`` is the number of classes seen up to and including label ``t``.
    ``sweep`` is a ring buffer of item slots (``sweep_state = [head, size]``) walked
    round-robin, ``refresh`` slots per label, to re-score other items; an item whose last
    label is older than the TTL (event time) leaves the ring and is reported in ``expired``.

    ``at_label[t]`` receives label ``t``'s item posterior right after learning it: the
    consensus "at the time of the label", whatever the batching. Likewise ``refreshed[t, r]``
    is the ``r``-th item the sweep re-scored after label ``t`` (-1: none) and
    ``at_refresh[t, r]`` its posterior then. ``evidence[t]`` is how likely label ``t`` was
    correct judging by the *other* votes and gold of its item just before it (the item's
    credited posterior at that moment, read at the label; NaN when there was nothing to go
    by): a correctness signal in which the annotator's own answer plays no part.
    ``sharpness[t]`` is the sum of squares of that posterior: how much the signal can say
    (``1/K`` for a uniform posterior, 1 for a certain one). ``before[t]`` is the item's
    posterior from its gold or other votes just before label ``t`` (the class prior for a first
    vote; NaN in column 0 for a correction) and ``pop_col[t, k]`` the population's smoothed
    chance of answering label ``t``'s label for true class ``k``: what the drift detectors
    need to say how expected an answer was.

    Returns ``(next, n_expired)``: the kernel stops after the first label whose sweep expired
    items, so the caller can close them and resume at ``next``. With that and
    ``classes_known``, a batch learns exactly what the same labels one by one would.
    """
    item_slots, ann_slots, labels, golds, times, classes_known = batch
    votes_ann, votes_lab, n_votes, gold, post, last_seen, last_label = items
    stats = annotators[4]
    width = mass.shape[0]
    work = (np.empty(width), np.empty(width), np.empty(width))
    ttl = params[P_TTL]
    capacity = sweep.shape[0]
    n_expired = 0
    for t in range(start, item_slots.shape[0]):
        i, a, label, g, now = item_slots[t], ann_slots[t], labels[t], golds[t], times[t]
        n_classes = classes_known[t]
        n = n_votes[i]
        previous = -1  # this annotator's stored vote on the item, if any
        for j in range(n):
            if votes_ann[i, j] == a:
                previous = j
                break
        if previous >= 0 and votes_lab[i, previous] == label:
            for k in range(n_classes):
                at_label[t, k] = post[i, k]
            continue  # the same answer again (e.g. a re-sent event): nothing new to learn
        if g >= 0:
            gold[i] = g
            evidence[t] = 1.0 if g == label else 0.0
            sharpness[t] = 1.0
        elif n > (1 if previous >= 0 else 0):
            evidence[t] = post[i, label]
            s2 = 0.0
            for k in range(n_classes):
                s2 += post[i, k] * post[i, k]
            sharpness[t] = s2
        else:
            evidence[t] = np.nan
        if previous < 0:
            # What the item said before this vote (gold, other votes or the class prior) and
            # the population's chances of this answer per true class.
            if g >= 0:
                for k in range(n_classes):
                    before[t, k] = 0.0
                before[t, g] = 1.0
            elif n > 0:
                for k in range(n_classes):
                    before[t, k] = post[i, k]
            else:
                z = 0.0
                for k in range(n_classes):
                    before[t, k] = mass[k] + params[P_CLASS_PRIOR]
                    z += before[t, k]
                for k in range(n_classes):
                    before[t, k] /= z
            population_column(pop_col[t], annotators, label, n_classes, params)
            counts, rows = annotators[0], annotators[1]
            for k in range(n_classes):
                ann_col[t, k] = counts[a, k, label]
                ann_rows[t, k] = rows[a, k]
        else:
            before[t, 0] = np.nan
        if not math.isnan(now):
            last_seen[i] = now
        last_label[i] = first_seq + t
        if previous >= 0:
            # A correction: the annotator's latest answer replaces the earlier one, moving
            # its credit from the old label's column to the new one before re-scoring.
            old = votes_lab[i, previous]
            if g >= 0:
                stats[a, 2] += (g == label) - (g == old)
            q = work[0]
            for k in range(n_classes):
                q[k] = -post[i, k]
            credit(annotators, a, old, q, n_classes)
            credit(annotators, a, label, post[i], n_classes)
            votes_lab[i, previous] = label
            rescore(i, False, work, items, annotators, mass, n_classes, params)
        else:
            stats[a, 0] += 1
            if g >= 0:
                stats[a, 1] += 1
                stats[a, 2] += g == label
            if n == 0:  # first vote: the item joins the round-robin
                sweep[(sweep_state[0] + sweep_state[1]) % capacity] = i
                sweep_state[1] += 1
            if n < max_votes:
                votes_ann[i, n] = a
                votes_lab[i, n] = label
                n_votes[i] = n + 1
                rescore(i, True, work, items, annotators, mass, n_classes, params)
            else:
                # A full item is settled: the extra vote trains its annotator once, unstored.
                q, lik = work[0], work[1]
                posterior(q, lik, i, items, annotators, mass, n_classes, params, a, label)
                credit(annotators, a, label, q, n_classes)
                for k in range(n_classes):
                    at_label[t, k] = q[k]
        if n < max_votes or previous >= 0:
            for k in range(n_classes):
                at_label[t, k] = post[i, k]
        for r in range(refresh):
            size = sweep_state[1]
            if size == 0:
                break
            head = sweep_state[0]
            other = sweep[head]
            sweep_state[0] = (head + 1) % capacity
            last = last_seen[other]
            if not math.isnan(ttl) and not math.isnan(now) and now - last > ttl:
                sweep_state[1] = size - 1  # NaN `last` compares False: never expires
                expired[n_expired] = other
                n_expired += 1
                continue
            sweep[(head + size) % capacity] = other
            if other != i:
                rescore(other, False, work, items, annotators, mass, n_classes, params)
                refreshed[t, r] = other
                for k in range(n_classes):
                    at_refresh[t, r, k] = post[other, k]
        if n_expired:
            return t + 1, n_expired
    return item_slots.shape[0], n_expired
# fmt: on
