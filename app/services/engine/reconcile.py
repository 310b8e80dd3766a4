"""Reconciliation: call attempts whose provider call id is unknown (a crash, or an answer
lost between asking the provider and storing its answer) are matched with the calls the
provider reports: adopted if it has the call, voided and queued again if not."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.models.status import RecipientStatus
from app.models.window import WindowError, parse_timezone
from app.services.engine import attempts, store, unresolved
from app.services.engine.attempts import OpenAttempt, aware
from app.services.engine.config import Clock, EngineConfig
from app.services.engine.health import ProviderHealth, rate_limited, stops_polling
from app.services.engine.planning import lookback_start, mask_number, without_retrying
from app.services.engine.state import TickReport
from app.services.engine.tracking import attempt_deadline
from app.services.lease import write_transaction
from app.services.settings import AppSettings
from app.services.telephony import (
    CallOutcome,
    ProviderError,
    TelephonyProvider,
    TransientProviderError,
)

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN = "Outcome unknown: the provider never confirmed this call"


@dataclass
class ReconcileTrouble:
    """An attempt the provider could not be asked about: when to ask again, why, and
    when to stop waiting for an answer and settle it."""

    retry_at: datetime
    failures: int
    batch_id: int
    message: str
    give_up_at: datetime


@dataclass
class Lookups:
    """An attempt answered with a server error, looked up without finding its call:
    how many times, and when to look again."""

    misses: int
    next_at: datetime


class Reconciler:
    """Settles the attempts whose call id is unknown (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        config: EngineConfig,
        health: ProviderHealth,
        stop: threading.Event,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.health = health
        self._stop = stop
        #: Attempts whose reconciliation failed: when to ask again, and why it failed.
        self.later: dict[int, ReconcileTrouble] = {}
        #: Attempts answered with a server error whose call was not found yet.
        self.lookups: dict[int, Lookups] = {}

    def _give_up_at(self, attempt: OpenAttempt, settings: AppSettings) -> datetime:
        return attempt_deadline(attempt, settings, self.config) + timedelta(
            seconds=self.config.unreachable_grace_seconds
        )

    def reconcile_unknown(
        self,
        provider: TelephonyProvider,
        settings: AppSettings,
        now: datetime,
        report: TickReport,
    ) -> None:
        """Attempts without a call id (a crash, or an answer lost after sending): ask the
        provider whether the call exists. Found: adopt it and track it. Not found: void
        the attempt and queue the recipient again. The provider is asked outside any
        transaction; the answer is applied only if the attempt did not change meanwhile.

        An attempt is asked about once the provider has had `unknown_settle_seconds` to
        create its call, counted from when its request was last known to be in flight.
        If the provider cannot be asked until long after the call would have ended (ring
        timeout + maximum duration + margins), the attempt is settled FAILED ("outcome
        unknown"): never placed again, never left In Progress for ever.

        A create answered with a server error (5xx) was processed by the provider: it is
        looked up from `server_error_first_lookup_seconds` after the answer, again every
        interval (and a second after a lookup that itself failed), and queued again only
        once `server_error_lookups` lookups over at least `server_error_requeue_seconds`
        found nothing; found, its call is adopted (never placed a second time)."""
        config = self.config
        settle = timedelta(seconds=config.unknown_settle_seconds)
        budget = timedelta(seconds=config.place_budget_seconds)
        first_lookup = timedelta(seconds=config.server_error_first_lookup_seconds)
        rows = unresolved.unresolved_attempts(
            self.sessions,
            now - settle,
            now - settle - budget,
            config.reconcile_per_tick,
            answered_cutoff=now - first_lookup,
        )
        blocked = self.health.blocked(now)
        for row in rows:
            if self._stop.is_set():
                return
            sent = aware(row.requested_at) or aware(row.created_at) or now
            attempt = OpenAttempt(
                row.id, row.recipient_id, row.batch_call_id, row.attempt_number, "", sent
            )
            give_up_at = self._give_up_at(attempt, settings)
            trouble = self.later.get(row.id)
            if blocked or (trouble is not None and now < trouble.retry_at):
                if now >= give_up_at:
                    reason = trouble.message if trouble else self.health.problem
                    self.give_up(attempt, reason, now, report)
                continue
            # Answered with a server error: looked up soon and again, and queued again
            # only once several lookups over a few seconds found nothing.
            early = row.provider_status == attempts.SERVER_ERROR and now < sent + settle
            lookups = self.lookups.get(row.id) if early else None
            if lookups is not None and now < lookups.next_at:
                continue
            misses = lookups.misses if lookups is not None else 0
            requeue = not early or (
                misses + 1 >= config.server_error_lookups
                and now >= sent + timedelta(seconds=config.server_error_requeue_seconds)
            )
            try:
                settled = self._reconcile_one(provider, row.id, now, report, requeue=requeue)
                self.later.pop(row.id, None)
                if settled:
                    self.lookups.pop(row.id, None)
                else:
                    interval = timedelta(seconds=config.server_error_lookup_interval_seconds)
                    self.lookups[row.id] = Lookups(misses + 1, now + interval)
            except ProviderError as exc:
                # Ask about this one again later; only a provider that limits our rate or
                # cannot be reached at all holds everything back.
                failures = (trouble.failures if trouble else 0) + 1
                delay = min(self.health.backoff(failures, None), timedelta(seconds=30))
                if row.provider_status == attempts.SERVER_ERROR:
                    # The provider answers (a 429 or 500 on this lookup too): soon again.
                    retry_after = getattr(exc, "retry_after", None) or 0.0
                    soon = config.server_error_lookup_interval_seconds / 2
                    delay = timedelta(seconds=max(soon, retry_after))
                self.later[row.id] = ReconcileTrouble(
                    now + delay, failures, row.batch_call_id, exc.message, give_up_at
                )
                log.warning("could not reconcile call attempt %s yet: %s", row.id, exc.message)
                if now >= give_up_at:
                    self.give_up(attempt, exc.message, now, report)
                if isinstance(exc, TransientProviderError) and rate_limited(exc):
                    # A 429 slows placing (and honours Retry-After); it stops nothing.
                    self.health.note_rate_limited(exc, self.clock())
                elif isinstance(exc, TransientProviderError) and stops_polling(exc):
                    self.health.note_trouble(exc, self.clock())
                    blocked = True  # the others are only checked against their deadline

    def give_up(self, attempt: OpenAttempt, reason: str, now: datetime, report: TickReport) -> None:
        """The provider never said whether this call exists, and it would have ended long
        ago: the recipient is FAILED (not called again: it may have been)."""
        detail = without_retrying(reason)
        message = f"{OUTCOME_UNKNOWN}." + (f" Last answer: {detail}" if detail else "")
        with write_transaction(self.sessions) as session:
            settled = attempts.settle(session, attempt, None, now, error=message)
        self.later.pop(attempt.id, None)
        if settled:
            report.settled += 1
            report.touch(attempt.batch_id)
            log.error(
                "call attempt %s of batch call %s settled as failed: %s",
                attempt.id,
                attempt.batch_id,
                message,
            )

    def reason(self, batch_id: int, zone_name: str) -> str | None:
        """The waiting reason while calls of this batch call cannot be confirmed."""
        troubles = [t for t in self.later.values() if t.batch_id == batch_id]
        if not troubles:
            return None
        first = min(troubles, key=lambda t: t.give_up_at)
        try:
            give_up = first.give_up_at.astimezone(parse_timezone(zone_name))
        except WindowError:
            give_up = first.give_up_at
        detail = first.message.replace("Retrying.", "").replace("  ", " ").strip()
        count = len(troubles)
        calls = "1 call" if count == 1 else f"{count} calls"
        return (
            f"Cannot confirm {calls} with the provider: {detail} Trying again; a call still "
            f"unconfirmed at {give_up:%a %d %b %H:%M %Z} is marked failed."
        )

    def _reconcile_one(
        self,
        provider: TelephonyProvider,
        attempt_id: int,
        now: datetime,
        report: TickReport,
        *,
        requeue: bool = True,
    ) -> bool:
        """Ask the provider with no transaction open (no database lock is ever held
        across a request), then settle the attempt in a short transaction, unless it
        changed meanwhile. Not found and not `requeue`: left as it is (False)."""
        with self.sessions() as session:
            seen = unresolved.lock_unresolved(session, attempt_id, lock=False)
            if seen is None:
                return True
            session.expunge(seen)
            batch_started = unresolved.batch_started_at(session, seen.batch_call_id)
        created = aware(seen.created_at) or now
        found = provider.find_calls(
            seen.to_number,
            seen.from_number,
            since=lookback_start(
                created,
                batch_started,
                self.config.clock_skew_allowance_seconds,
                self.health.clock_offset,
            ),
        )
        self.health.note_ok()
        with write_transaction(self.sessions) as session:
            attempt = unresolved.lock_unresolved(session, attempt_id)
            if attempt is None or aware(attempt.requested_at) != aware(seen.requested_at):
                return True  # settled, or sent again, while the provider was asked
            known = unresolved.known_call_ids(session, [s.call_id for s in found])
            # Calls already held by another attempt are not this one's; of the others,
            # the one created nearest to when this attempt's request was sent.
            expected = (aware(attempt.requested_at) or created) + (
                self.health.clock_offset or timedelta(0)
            )
            candidates = [s for s in found if s.call_id not in known]
            candidates.sort(key=lambda s: abs((s.created_at or expected) - expected))
            open_attempt = OpenAttempt(
                attempt.id,
                attempt.recipient_id,
                attempt.batch_call_id,
                attempt.attempt_number,
                "",
                created,
            )
            to = mask_number(attempt.to_number)
            if candidates:
                state = candidates[0]
                unresolved.adopt_call(session, attempt, state, now)
                log.info("reconciled: adopted call %s to %s", state.call_id, to)
                if state.outcome is not CallOutcome.IN_PROGRESS:
                    adopted = OpenAttempt(
                        open_attempt.id,
                        open_attempt.recipient_id,
                        open_attempt.batch_id,
                        open_attempt.attempt_number,
                        state.call_id,
                        created,
                    )
                    attempts.settle(session, adopted, state, now)
            elif not requeue:
                log.info("reconciling: no call to %s yet; looking again", to)
                return False
            else:
                # Locked (FOR SHARE on PostgreSQL), so a Pause cannot commit in between
                # and leave the recipient QUEUED in a paused batch call.
                status = store.batch_status_shared(session, attempt.batch_call_id)
                session.expunge(attempt)
                back_to = (
                    RecipientStatus.QUEUED if status == store.RUNNING else RecipientStatus.PENDING
                )
                attempts.void(session, open_attempt, back_to)
                log.info("reconciled: no call to %s was placed; it is queued again", to)
        report.touch(open_attempt.batch_id)
        return True
