"""Filers' answers to requests for information: attached to the referral, and the consignment re-assessed.

The ingress puts each IE3R02 (schema-checked, from an authenticated filer) on `{p}:rfi-answers`.
The keeper reads it through the consumer group `rfi` and, for each answer:
  - finds the referral of the MRN (any filing of the referred consignment), refuses with an
    IE3N01 lifecycle error on the filer's answers stream (and audits it) if there is none open, if
    the filer filed none of the consignment (its members are those their master's filer allowed,
    linking.py: a filer refused from it is none of them), or if nothing was asked;
  - re-assesses (reassessment.py) with the pack and risk information active now; a correction that
    takes a risk indicator away is a risk fact of the re-assessment;
  - attaches the answer and what the re-assessment may do (`reassessment.settlement`) to the
    referral, auditing the filer's answer and the system's re-assessment in the same step;
  - then, unless the re-assessment is held for the analyst, writes the new decision, the answers to
    every filer and the updated referral as effects, once each (the same effect keys as the pipeline:
    a redelivered answer changes nothing), having first settled the referral `rfi-answered` if it is
    a plain request for information the answer cleared (and nobody claimed it meanwhile).
The entry is acknowledged last: a crash repeats the steps, each of which is idempotent; a redelivery
does what the attached answer recorded, not what the referral's state says by then. The keeper trims
the stream to the answers handled in the last `streams.output_retention_seconds` (and any not yet).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import redis

from .. import audit
from ..config import Settings
from ..connectors.redis_store import connect
from ..connectors.redis_streams import EffectWriter, StreamKeys, entry_key, read_group
from ..decisions import filer_answers
from ..domain import answers
from ..domain.answers import FilingError
from ..domain.reference import bundled_reference
from ..reassessment import HOLD, SETTLE, RfiAnswer, read_rfi_answer, reassess, settlement
from ..rejudge import ContainerWatch
from ..rule_store import RulePackSource
from ..safexml import SafeXmlParser
from ..answering import DeadLetter
from ..service import answer_effect, dead_letter_effect, decision_effects
from ..validation import utc_now
from .queue import QueueError, ReferralQueue, referral_of

log = logging.getLogger(__name__)
GROUP, CONSUMER = "rfi", "desk"


class RfiDesk:
    def __init__(self, client: redis.Redis, scorers: RulePackSource, settings: Settings, claim_seconds: int):
        self.client, self.scorers, self.settings = client, scorers, settings
        self.prefix = settings.redis.key_prefix
        self.keys = StreamKeys(self.prefix)
        self.stream = self.keys.rfi_answers
        self.writer = EffectWriter.for_settings(client, settings)
        self.parser = SafeXmlParser(settings.limits)
        self.claim_seconds = claim_seconds
        # A consignment still waiting for container events is re-judged from the answered version.
        status = client if settings.container_status_url == settings.redis.url else connect(settings.container_status_url)
        self.watch = ContainerWatch(status, self.prefix, settings.container_status.rejudge_window_seconds)

    def handle_new(self, count: int = 100) -> int:
        entries = read_group(self.client, self.stream, GROUP, CONSUMER, count)
        for entry_id, fields in entries:
            f = {k.decode(): v for k, v in fields.items()}
            try:
                self.handle(read_rfi_answer(self.parser.parse(f["xml"]).getroot(), f["id"].decode(),
                                            f["filer"].decode(), f["received_at"].decode()))
            except (redis.ConnectionError, redis.TimeoutError):
                raise  # Redis away mid-way: left pending, the next round finishes what the attached answer says
            except Exception as exc:  # a bug must not block the answers behind it: dead-lettered with the reason
                log.exception("RFI answer %s dead-lettered", f.get("id"))
                self.writer.write([dead_letter_effect(DeadLetter(f.get("id", b"").decode(), "rfi-answer",
                                                                 f"{type(exc).__name__}: {exc}", f.get("xml", b""),
                                                                 filer=f.get("filer", b"").decode()),
                                                      self.keys)])
            self.client.xack(self.stream, GROUP, entry_id)  # last: a crash before it repeats idempotent steps
        return len(entries)

    def trim(self, retention_seconds: int, now: float | None = None) -> None:
        """Answers handled more than `retention_seconds` ago leave the stream; none the desk has not
        finished (pending) or not read yet, however old."""
        try:
            group = next((g for g in self.client.xinfo_groups(self.stream) if g["name"] in (GROUP, GROUP.encode())),
                         None)
        except redis.ResponseError:  # no stream yet
            return
        if group is None:
            return
        ms, seq = entry_key(group["last-delivered-id"])
        bounds = [(int(((time.time() if now is None else now) - retention_seconds) * 1000), 0), (ms, seq + 1)]
        pending = self.client.xpending(self.stream, GROUP)
        if pending["pending"]:
            bounds.append(entry_key(pending["min"]))
        self.client.xtrim(self.stream, minid="%d-%d" % min(bounds), approximate=False)

    def handle(self, answer: RfiAnswer) -> str:
        where = self.client.get(referral_of(self.prefix, answer.mrn))
        if where is None:
            return self._refuse(answer, "NO_REFERRAL", f"no referral is open for MRN {answer.mrn}")
        centre, rid = where.decode().split("|", 1)
        queue = ReferralQueue(self.client, centre, self.prefix, self.claim_seconds)
        ref = queue.show(rid)
        body = ref["body"]
        filers = {body["filer"], *(m["filer"] for m in body.get("filings", ()))}
        if answer.filer not in filers:
            return self._refuse(answer, "FOREIGN_MRN", f"MRN {answer.mrn} is not in a consignment you filed", centre)
        if ref["state"] not in ("open", "claimed") and not any(a["submission_id"] == answer.submission_id
                                                               for a in ref["answers"]):
            return self._refuse(answer, "REFERRAL_CLOSED", f"the referral of MRN {answer.mrn} is {ref['state']}")
        if f"+rfi:{answer.submission_id}" in body["state"]:
            return body["decision"]  # redelivered: this answer's re-assessment is the referral's version already
        if not body.get("information_requested") or "reassessment" not in body:
            return self._refuse(answer, "NOTHING_REQUESTED", f"no information was requested about MRN {answer.mrn}")
        decision, applied, changes = reassess(body, answer, self.scorers.current(), known_hs=bundled_reference().hs)
        action, held = settlement(body, ref["state"], ref.get("claimed_by", ""), decision, changes)
        outcome = decision.assessment.decision
        reassessed = f"{outcome} (score {decision.assessment.score:.0f}, version {decision.filing.version})"
        attached = {"submission_id": answer.submission_id, "filer": answer.filer, "received_at": answer.received_at,
                    "items": [{"pointer": i.pointer, "text": i.text, "corrected": i.corrected} for i in answer.items],
                    "applied": [str(c) for c in applied], "risk_changes": [f.detail for f in changes],
                    "reassessed": reassessed, "action": action, "held": held}
        if not queue.attach_answer(rid, attached, [
                (answer.filer, "rfi-answer", f"{len(answer.items)} answers, {len(applied)} corrections, "
                                             f"{len(changes)} changing the risk picture"),
                ("system", "rfi-reassessed", f"{reassessed}: {held or action}")]):
            action = next(a.get("action", HOLD) for a in queue.show(rid)["answers"]  # delivered before: as decided then
                          if a["submission_id"] == answer.submission_id)
        if action == SETTLE:
            try:
                queue.resolve(rid, "", "rfi-answered", note="cleared by re-assessment after the filer's answer",
                              version=int(body["version"]))
            except QueueError as refused:  # settled by an earlier delivery, or claimed or changed since
                current = queue.show(rid)
                if (current["state"], current.get("resolved_by")) != ("resolved", "system"):
                    log.info("RFI answer %s left to the analyst: %s", answer.submission_id, refused)
                    return outcome
        if action != HOLD:
            self.writer.write(decision_effects(decision, self.keys) + [
                answer_effect(a, self.keys) for a in filer_answers(decision, decision.assessed_at)])
            self.watch.follow(decision)
        return outcome

    def _refuse(self, answer: RfiAnswer, code: str, reason: str, centre: str = "") -> str:
        refusal = answers.lifecycle_error(answer.submission_id, answer.filer, None, answer.mrn,
                                          [FilingError(code, "/IE3R02/MRN", "lifecycle", reason, None, answer.mrn)],
                                          utc_now())
        if self.writer.write([answer_effect(replace(refusal, about=answer.submission_id), self.keys)])[0]:
            audit.note(self.client, self.prefix, answer.filer, centre,
                         "rfi-answer-refused", answer.mrn, f"{code}: {reason}")  # once, as its answer
        log.info("RFI answer %s refused: %s", answer.submission_id, reason)
        return code
