"""From a validation outcome (and, for accepted ones, the registration result) to the one answer
the filer gets. Pure functions; the Beam stages call them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from .domain import answers
from .domain.answers import Answer, FilingError
from .registration import (AMENDED, FOREIGN_MRN, INVALIDATED, LRN_REUSED, REGISTERED, RESENT, UNKNOWN_MRN,
                           WITHDRAWN, RegistrationRequest, RegistrationResult)
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


def rejection(outcome: ValidationOutcome, now: str) -> Answer:
    summary = outcome.summary
    answer = answers.error_notification(outcome.submission.submission_id, outcome.filer,
                                        summary.lrn if summary else None, outcome.errors, now)
    # Per submission: a rejected message sent again is answered again (the sender may not be
    # known, so there is no one to recognise the re-send by); a redelivery is still answered once.
    return replace(answer, about=f"{content_digest(outcome)}|{outcome.submission.submission_id}")


def registration_request(outcome: ValidationOutcome, year: int) -> RegistrationRequest:
    s = outcome.summary
    kind = "Q" if s.filing_code == "Q04" else ("A" if s.filing_code.startswith("A") else "F")
    office = s.office_of_first_entry or "EU"
    return RegistrationRequest(kind, outcome.filer, s.lrn, s.digest, year, office[:2], s.referenced_mrn)


def registration_answer(outcome: ValidationOutcome, result: RegistrationResult, now: str) -> Answer:
    return replace(_registration_answer(outcome, result, now), about=outcome.summary.digest)


def _registration_answer(outcome: ValidationOutcome, result: RegistrationResult, now: str) -> Answer:
    s, sid, filer = outcome.summary, outcome.submission.submission_id, outcome.filer
    if result.status in (REGISTERED, RESENT):
        return answers.registration(sid, filer, s.filing_code, s.lrn, result.mrn, result.registered_at, now,
                                    outcome.warnings)
    if result.status == AMENDED:
        return answers.amendment_accepted(sid, filer, s.lrn, result.mrn, now, outcome.warnings)
    if result.status == INVALIDATED:
        return answers.invalidation_accepted(sid, filer, s.lrn, result.mrn, now)
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
