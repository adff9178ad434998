"""From a validation outcome (and, for accepted ones, the registration result) to the one answer
the filer gets. Pure functions; the Beam stages call them."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace

from .domain import answers
from .domain.answers import Answer, FilingError
from .registration import (AMENDED, FOREIGN_MRN, INVALIDATED, LRN_REUSED, REGISTERED, RESENT, UNKNOWN_MRN,
                           WITHDRAWN, RegistrationRequest, RegistrationResult)
from .linking import linked_key
from .validation import ValidationOutcome

ACCEPTING_ANSWERS = ("IE3R01", "IE3N10", "IE3R04")
REJECTING_ANSWERS = ("IE3N99", "IE3N01")
PENDING_ANSWERS = ("IE3N02", "IE3N11")  # a partial filing's consignment is not complete yet


@dataclass(frozen=True)
class DeadLetter:
    """A submission no answer could be made for, with why; the payload is kept whole."""

    submission_id: str
    stage: str
    reason: str
    payload: bytes
    # What failed when it was not the filing nor a bug of ours: redis_store.INFRASTRUCTURE's keys
    # ("redis-unreachable", ...). Such a filing was lost to the run, which then does not balance.
    cause: str = ""
    # Whose it is, where known: the channel's authenticated sender, else the filer the filing names.
    filer: str = ""


def dead_letter_body(d: DeadLetter) -> dict:
    """A dead letter as operators read it: an entry of the dead-letter stream, a line of dead-letters/."""
    return {"submission_id": d.submission_id, "stage": d.stage, "reason": d.reason,
            **({"cause": d.cause} if d.cause else {}), **({"filer": d.filer} if d.filer else {}),
            "payload_base64": base64.b64encode(d.payload).decode("ascii")}


def not_screened(outcome: ValidationOutcome) -> ValidationOutcome:
    """A message valid under another schema set, but not an ENS filing: rejected, saying so."""
    s = outcome.summary
    return replace(outcome, errors=(FilingError(
        "NOT_AN_ENS_FILING", f"/{s.message_type}", "an ENS filing, amendment or invalidation",
        f"{s.message_type} ({s.namespace or 'no namespace'}) is a valid message, but this service screens "
        f"Entry Summary Declarations only."),))


def content_digest(outcome: ValidationOutcome) -> str:
    """The digest validation made; for a message that never parsed, one of its bytes."""
    if outcome.summary:
        return outcome.summary.digest
    return hashlib.blake2b(outcome.submission.payload, digest_size=16).hexdigest()


def door(outcome: ValidationOutcome) -> str:
    """What a door answer is about: one submission (its id and content). A redelivery is the same
    submission; a re-send is another one, answered too (see answer_key)."""
    return f"{content_digest(outcome)}|{outcome.submission.submission_id}"


def answer_key(a: Answer) -> str:
    """The name an answer is sent under, once (connectors/redis_streams.py writes each key once):
    a door answer (accepting or rejecting) once per submission, whatever its type; a pending
    notification once per type, filing and content; an assessment answer once per filing and
    consignment state assessed, whatever the decision (two deliveries racing to assess one state,
    a stalled worker's and the one that claimed its entries, must not answer twice even if their
    scoring differed)."""
    if a.message_type in ACCEPTING_ANSWERS or a.message_type in REJECTING_ANSWERS:
        return f"door|{a.about}"
    if a.message_type in PENDING_ANSWERS:
        return f"answer|{a.message_type}|{a.recipient}|{a.lrn}|{a.mrn}|{a.about}"
    return f"assessment|{a.recipient}|{a.mrn}|{a.about}"


def rejection(outcome: ValidationOutcome, now: str) -> Answer:
    summary = outcome.summary
    answer = answers.error_notification(outcome.submission.submission_id, outcome.filer,
                                        summary.lrn if summary else None, outcome.errors, now)
    return answers.about(answer, door(outcome))


def registration_request(outcome: ValidationOutcome, year: int) -> RegistrationRequest:
    s = outcome.summary
    kind = "Q" if s.filing_code == "Q04" else ("A" if s.filing_code.startswith("A") else "F")
    office = s.office_of_first_entry or "EU"
    consignment = (linked_key(outcome.record) or "") if outcome.record is not None else ""
    return RegistrationRequest(kind, outcome.filer, s.lrn, s.digest, year, office[:2], s.referenced_mrn,
                               outcome.submission.submission_id, consignment)


def registration_answer(outcome: ValidationOutcome, result: RegistrationResult, now: str) -> Answer:
    return answers.about(_registration_answer(outcome, result, now), door(outcome))


def repeats(result: RegistrationResult, submission_id: str) -> bool:
    """A re-send: another submission of a filing already registered, of the latest amendment
    already accepted, or of an invalidation already made (not the submission that made it,
    delivered again after a crash, which is answered as what it did)."""
    return result.status in (RESENT, AMENDED, INVALIDATED) and result.registered_by != submission_id


def _registration_answer(outcome: ValidationOutcome, result: RegistrationResult, now: str) -> Answer:
    s, sid, filer = outcome.summary, outcome.submission.submission_id, outcome.filer
    repeat_of = (result.registered_by or "") if repeats(result, sid) else None
    if result.status in (REGISTERED, RESENT):
        return answers.registration(sid, filer, s.filing_code, s.lrn, result.mrn, result.registered_at, now,
                                    repeat_of, outcome.warnings)
    if result.status == AMENDED:
        return answers.amendment_accepted(sid, filer, s.lrn, result.mrn, now, repeat_of, outcome.warnings)
    if result.status == INVALIDATED:
        return answers.invalidation_accepted(sid, filer, s.lrn, result.mrn, now, repeat_of)
    root = f"/{s.message_type}"
    mrn_pointer = f"{root}/MRN" if s.filing_code == "Q04" else f"{root}/Header/AmendedMRN"
    error = {
        LRN_REUSED: FilingError(
            "LRN_REUSED", f"{root}/Header/LRN", "LRN unique per filer",
            f"LRN {s.lrn} is already registered as MRN {result.mrn} with different content. "
            f"Send an amendment of {result.mrn}, or file under a new LRN.", value=s.lrn),
        UNKNOWN_MRN: FilingError(
            "MRN_UNKNOWN", mrn_pointer, "registered MRN",
            f"MRN {s.referenced_mrn} is not a registered filing.", value=s.referenced_mrn),
        FOREIGN_MRN: FilingError(
            "MRN_NOT_YOURS", mrn_pointer, "MRN registered for this filer",
            f"MRN {s.referenced_mrn} is not registered for filer {filer}.", value=s.referenced_mrn),
        WITHDRAWN: FilingError(
            "MRN_INVALIDATED", mrn_pointer, "MRN not invalidated",
            f"MRN {s.referenced_mrn} has been invalidated and can no longer be amended.", value=s.referenced_mrn),
    }[result.status]
    return answers.lifecycle_error(sid, filer, s.lrn, result.mrn if result.status == LRN_REUSED else None,
                                   [error], now)
