"""Business step 3: link the partial filings of one consignment (multiple filing)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import apache_beam as beam
import redis
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from ..answering import DeadLetter
from ..config import Settings
from ..connectors.redis_store import connect, infrastructure_cause, redeliver, with_retries
from ..decisions import office_centre
from ..domain import answers
from ..domain.answers import FilingError
from ..domain.filings import HOUSE
from ..domain.enrichment import office_facts
from ..domain.reference import bundled_reference
from ..linking import (HOUSE_FILER_NOT_NAMED, MASTER_FILED, Addition, Consignment, ConsignmentStore, LinkResult, Member,
                       Pending, Removal, Withdrawal, consignment_of, linked_key, member_of, missing_documents,
                       standalone, state_of)
from ..registration import AMENDED, INVALIDATED, RegistrationResult
from ..validation import ValidationOutcome, utc_now
from .validate import DEAD_LETTER
from ..counters import CountsPerBundle, counter
from .batches import Batch, TaggedBatches, batched_pardo, chunks, each

CONSIGNMENTS, PENDING, WITHDRAWALS, REFUSALS = "consignments", "pending", "withdrawals", "refusals"


def pending_answer(p: Pending, now: str) -> answers.Answer:
    """IE3N11 (pending) to a house filer whose master is not filed yet; IE3N02 (not complete) otherwise."""
    m = p.member
    if m.record.level == HOUSE and p.missing and p.missing[0].startswith(("master", "postal dispatch")):
        answer = answers.pending(m.submission_id, m.filer, m.lrn, m.mrn, f"awaiting the {p.missing[0]}", now)
    else:
        answer = answers.not_complete(m.submission_id, m.filer, m.lrn, m.mrn, p.missing, now)
    return replace(answer, about=m.digest)


_HOUSE_CONSTRAINT = "a house its master lists for its filer"


def refusal_answer(m: Member, now: str) -> answers.Answer:
    """IE3N01 to the filer of a filing refused from a consignment: what it claimed and why not, and
    nothing of the other filer's (not who, not what it filed). The filing keeps its MRN and is
    assessed on its own. Sent after its registration: a lifecycle error, not a door answer."""
    r = m.refused
    if r.code == MASTER_FILED:
        constraint = "one filer per master transport document"
        reason = (f"Master transport document {r.document} is filed already, by another filer: this filing does not "
                  f"become the master of its consignment, and no house joins it.")
    elif r.code == HOUSE_FILER_NOT_NAMED:
        constraint = _HOUSE_CONSTRAINT
        reason = (f"House transport document {r.document} is listed by the master filing of "
                  f"{m.record.master_document} without the identity of the filer expected to file it: only the "
                  f"master's own filer may file it until the master names {m.filer} "
                  f"(HouseTransportDocument/Filer, in an amendment of the master filing).")
    else:
        constraint = _HOUSE_CONSTRAINT
        reason = (f"House transport document {r.document} is not listed for filer {m.filer} by the master filing of "
                  f"{m.record.master_document}: a house joins its master's consignment only when the master lists "
                  f"it with the identity of its filer (or the master's own filer files it).")
    pointer = f"{m.record.pointers.get('transport_document', '')}/Number"
    answer = answers.lifecycle_error(m.submission_id, m.filer, m.lrn, m.mrn, [FilingError(
        r.code, pointer, constraint, f"{reason} It is assessed on its own.", None, r.document)], now)
    return replace(answer, about=f"claim|{m.mrn}|{m.digest}")


def stamped(outputs: list, outcome: ValidationOutcome) -> list:
    """A consignment a filing completes (or that stands alone) carries that filing's arrival time."""
    return [replace(o, received_at=outcome.submission.received_at) if isinstance(o, Consignment) else o
            for o in outputs]


class _LinkDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings
        self._linked_filings = counter("filings_linked")
        self._overdue = counter("consignments_overdue")
        self._refused = counter("claims_refused")

    def setup(self):
        self._store = ConsignmentStore(connect(self._settings.redis.url), self._settings.redis.key_prefix,
                                       self._settings.registration_retention_seconds, self._settings.streams.partitions)
        self._next_sweep = 0.0
        self._reference = bundled_reference()  # offices of entry: which risk centre a consignment is

    def process(self, batch: list[tuple[ValidationOutcome, RegistrationResult]]):
        out = TaggedBatches(CONSIGNMENTS)
        for chunk in chunks(batch, self._settings.linking.batch_size):
            for o in self._link_chunk(chunk):
                out.add(o.tag, o.value) if isinstance(o, TaggedOutput) else out.add(CONSIGNMENTS, o)
        yield from out.emit()

    def _link_chunk(self, batch: list[tuple[ValidationOutcome, RegistrationResult]]) -> list:
        try:  # the whole batch's outputs first: nothing is emitted twice when it falls back to one by one
            return self._link_batch(batch)
        except Exception as exc:
            if redeliver(self._settings.redis, exc):
                raise
            return [out for element in batch for out in self._link_one(element)]  # who failed, and why

    def _link_one(self, element: tuple[ValidationOutcome, RegistrationResult]) -> list:
        outcome, result = element
        try:
            return self._link_batch([element])
        except Exception as exc:  # Redis gone after retries, or a bug: keep the filing, say why
            if redeliver(self._settings.redis, exc):
                raise
            return [TaggedOutput(DEAD_LETTER, DeadLetter(outcome.submission.submission_id, "link",
                                                         f"{type(exc).__name__}: {exc}", outcome.submission.payload,
                                                         infrastructure_cause(exc), outcome.filer or ""))]

    def _link_batch(self, batch: list[tuple[ValidationOutcome, RegistrationResult]]) -> list:
        """Every output of the batch's filings, in order: their changes to consignments (additions, and
        removals of invalidated filings) sent as one script call (ConsignmentStore.link)."""
        deadline = time.time() + self._settings.linking.deadline_seconds
        changes, plan = [], []  # plan: (outcome, result, member, version, its change's number or None)
        for outcome, result in batch:
            if result.status == INVALIDATED:
                plan.append((outcome, result, None, 0, len(changes)))
                changes.append(Removal(result.mrn, result.consignment, deadline))
                continue
            member = member_of(outcome, result.mrn)
            key = linked_key(outcome.record)
            version = result.amendment + 1 if result.status == AMENDED else 1
            plan.append((outcome, result, member, version, None if key is None else len(changes)))
            if key is not None:
                record = outcome.record
                centre = office_centre(record.office_of_first_entry, office_facts(record, self._reference),
                                       self._settings.default_risk_centre)
                changes.append(Addition(key, member, deadline, centre, utc_now()))
        linked = with_retries(self._settings.redis, lambda: self._store.link(changes), "link") if changes else []
        self._linked_filings.inc(sum(isinstance(c, Addition) for c in changes))
        out = []
        for outcome, result, member, version, n in plan:
            if member is None:
                outputs = self._withdrawn(outcome, result, linked[n])
            else:
                outputs = [standalone(member, version)] if n is None else self._linked(member, version, linked[n])
            out.extend(stamped(outputs, outcome))
        return out

    def _withdrawn(self, outcome: ValidationOutcome, result: RegistrationResult, found: LinkResult | None) -> list:
        out = [TaggedOutput(WITHDRAWALS, Withdrawal(found.key if found else f"mrn:{result.mrn}", result.mrn,
                                                    outcome.submission.submission_id))]
        return out + ([self._consignment(found)] if found and found.complete else [])

    def _linked(self, member: Member, version: int, results: list[LinkResult]) -> list:
        out = []
        for linked in results:
            if linked.refused:  # its filer is told, and the filing is assessed on its own (a risk rule scores it)
                self._refused.inc()
                refused = linked.members[0]
                out += [TaggedOutput(REFUSALS, refusal_answer(refused, utc_now())),
                        standalone(refused, version if refused.mrn == member.mrn else 1)]
            elif linked.complete:
                out.append(self._consignment(linked))
            else:
                out.append(TaggedOutput(PENDING, Pending(member, linked.key, linked.missing)))
        return out

    @staticmethod
    def _consignment(linked: LinkResult) -> Consignment:
        return consignment_of(linked.key, linked.version, linked.state, list(linked.members))

    def finish_bundle(self):
        yield from self._overdue_consignments()
        super().finish_bundle()  # the bundle's counts, the overdue ones with them

    def _overdue_consignments(self):
        # Deadlines are looked at between bundles: a streaming source makes a bundle every poll,
        # even an idle one, so an overdue consignment waits at most sweep_seconds + a poll.
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._settings.linking.sweep_seconds
        try:
            overdue = self._store.overdue(now, self._settings.linking.retry_seconds)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # they wait for the next sweep
            logging.warning("deadline sweep skipped: %s", exc)
            return
        due = Batch(consignment_of(key, version, f"incomplete:{state_of(members)}", members,
                                   missing_documents(key, members)) for key, version, members in overdue)
        self._overdue.inc(len(due))
        if due:
            yield WindowedValue(due, GlobalWindow().max_timestamp(), [GlobalWindow()])


class LinkConsignments(beam.PTransform):
    """Batch of (ValidationOutcome, RegistrationResult) of registered filings, amendments and
    invalidations in, linked in batches of at most settings.linking.batch_size: one script call
    per batch (per hash slot it touches on a Redis Cluster, in one round trip per master), which
    keeps the members' bodies in Redis and sends back only those of members filed in earlier
    batches, when a consignment is complete. Outputs, each of Batches:
    `consignments`: Consignment ready to assess: a filing standing alone, a linked consignment
    that is complete (again, after an amendment or a new house), or one past its deadline
    (with the documents still missing);
    `pending`: Pending, a partial filing whose consignment is not complete yet;
    `withdrawals`: Withdrawal, an invalidated filing whose consignment's decision no longer stands;
    `refusals`: Answer, an IE3N01 to the filer of a filing refused from another filer's consignment
    (that filing, assessed on its own, is among the consignments);
    `dead_letter`: DeadLetter when the consignment store stays unreachable.
    """

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def expand(self, registered):
        return registered | "Link" >> batched_pardo(_LinkDoFn(self._settings), CONSIGNMENTS,
                                                    PENDING, WITHDRAWALS, REFUSALS, DEAD_LETTER)


class AnswerPending(beam.PTransform):
    """Batch of Pendings in; Batch of Answers out: IE3N02 (ENS not complete) or IE3N11 (pending) naming
    what is missing."""

    def expand(self, pending):
        return pending | "NotComplete" >> each(lambda p: pending_answer(p, utc_now()))
