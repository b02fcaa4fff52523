"""The built-in fake provider: Twilio's test numbers, fax lines that misbehave, latency.

Test numbers (documented in ``docs/simulator.md``):

=================  =========================================================
``+15005550006``   succeeds
``+15005550001``   permanent: invalid number (21211)
``+15005550002``   permanent: cannot route (21612)
``+15005550003``   permanent: no international permission (21408)
``+15005550004``   permanent: unsubscribed recipient (21610)
``+15005550009``   permanent for SMS: not SMS-capable (21614); others succeed
``+15005550110``   fax line always busy
``+15005550111``   fax line never answers
``+1500555012K``   busy K times, then delivered (K = 0-9, counted per number)
``+15005550130``   provider error (HTTP 500) every time
``+15005550131``   429 once, then succeeds
=================  =========================================================

Any other number succeeds, or follows the random ``mix`` of outcomes when one is set.
With ``log_path`` every call appends one JSON line: ``kind``, ``to``, ``started_at``,
``ended_at`` (unix seconds), ``outcome``, ``ref``, ``job_id``. Tests check exclusivity and
metering from that log, not from callgate's own tables.

The HTTP simulator (:mod:`callgate.providers.simulator.http`) drives one :class:`Simulator`
through :meth:`Simulator.next_outcome` and :meth:`Simulator.log_call`, so both modes share
these numbers, counters and log format.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callgate.clock import Clock
from callgate.domain import AttemptResult, Job, Kind, Outcome
from callgate.providers.base import CannotReconcile, Found, StatusListener
from callgate.providers.twilio_mapping import suppressing

PERMANENT_NUMBERS: Mapping[str, tuple[str, str]] = {
    "+15005550001": ("21211", "The 'To' number is not a valid phone number."),
    "+15005550002": ("21612", "The 'To' phone number is not currently reachable."),
    "+15005550003": ("21408", "Permission to send to this region has not been enabled."),
    "+15005550004": ("21610", "Attempt to send to unsubscribed recipient."),
}
NOT_SMS_CAPABLE = "+15005550009"
ALWAYS_BUSY = "+15005550110"
NEVER_ANSWERS = "+15005550111"
BUSY_K_PREFIX = "+1500555012"
SERVER_ERROR = "+15005550130"
RATE_LIMITED_ONCE = "+15005550131"
LINE_KINDS = frozenset({Kind.FAX, Kind.CALL})
#: calls remembered for :meth:`Simulator.find` (in this process only)
HISTORY = 10_000


@dataclass
class _Call:
    ref: str
    job_id: int
    kind: Kind
    to: str | None
    started_at: float
    ended_at: float
    result: AttemptResult
    logged: bool = False


class Simulator:
    """In-process fake provider; time comes from the injected clock."""

    name = "simulator"

    def __init__(
        self,
        clock: Clock,
        *,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        fax_duration: float = 0.0,
        log_path: str | Path | None = None,
        mix: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.latency = latency
        self.latency_jitter = latency_jitter  # each call takes latency + U(0, jitter) s
        self.fax_duration = fax_duration
        self.mix = {Outcome(k): v for k, v in (mix or {}).items()}
        self._rng = rng or random.Random()
        self._seen: Counter[str] = Counter()  # calls per number, for the K-busy lines
        self._calls: dict[str, _Call] = {}
        self._history: deque[_Call] = deque(maxlen=HISTORY)
        self._born = clock.now()  # it knows nothing sent before (another process's calls)
        # unique across processes, as a vendor's ids are: a reference recorded by a worker
        # that died must never name another process's call
        self._instance = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._listener: StatusListener | None = None
        self._log_path = None if log_path is None else Path(log_path)
        self._log_fd = (
            None
            if log_path is None
            else os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        )
        self.sent = 0

    def __repr__(self) -> str:
        return f"Simulator(latency={self.latency}, fax_duration={self.fax_duration})"

    def set_listener(self, listener: StatusListener | None) -> None:
        self._listener = listener

    async def aclose(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def outcome_for(self, job: Job) -> AttemptResult:
        """What this number does on its next call (advances the per-number counters)."""
        return self.next_outcome(job.kind, job.to)

    def next_outcome(self, kind: Kind, to: str | None) -> AttemptResult:
        """What a ``kind`` call to ``to`` does now (advances the per-number counters)."""
        to = to or ""
        self._seen[to] += 1
        n = self._seen[to]
        if to in PERMANENT_NUMBERS:
            code, message = PERMANENT_NUMBERS[to]
            return AttemptResult(Outcome.PERMANENT, error_code=code, error_message=message)
        if to == NOT_SMS_CAPABLE and kind is Kind.SMS:
            return AttemptResult(
                Outcome.PERMANENT,
                error_code="21614",
                error_message="'To' number is not a valid mobile number.",
            )
        if to == SERVER_ERROR:
            return AttemptResult(
                Outcome.PROVIDER_ERROR, error_code="500", error_message="Internal Server Error"
            )
        if to == RATE_LIMITED_ONCE and n == 1:
            return AttemptResult(
                Outcome.RATE_LIMITED, error_code="20429", error_message="Too Many Requests"
            )
        if kind in LINE_KINDS:
            if to == ALWAYS_BUSY or (
                to.startswith(BUSY_K_PREFIX) and len(to) == 12 and n <= int(to[-1])
            ):
                return AttemptResult(Outcome.BUSY, error_message="the line was busy")
            if to == NEVER_ANSWERS:
                return AttemptResult(Outcome.NO_ANSWER, error_message="no answer")
        return AttemptResult(self._random_outcome())

    def _random_outcome(self) -> Outcome:
        roll = self._rng.random()
        for outcome, p in self.mix.items():
            if roll < p:
                return outcome
            roll -= p
        return Outcome.DELIVERED

    async def send(self, job: Job) -> AttemptResult:
        """Answer as Twilio would (its error codes, and what they suppress)."""
        return suppressing(await self._send(job), job.kind)

    async def _send(self, job: Job) -> AttemptResult:
        started = self.clock.now()
        if self.latency or self.latency_jitter:
            await asyncio.sleep(self.latency + self._rng.uniform(0.0, self.latency_jitter))
        self.sent += 1
        result = self.outcome_for(job)
        prefix = "SM" if job.kind is not Kind.FAX else "FX"
        ref = f"{prefix}{self._instance}{next(self._ids):08d}"
        duration = self.fax_duration if job.kind is Kind.FAX else 0.0
        if result.outcome is not Outcome.DELIVERED:
            duration *= 0.25  # a busy line or an error is known sooner than a whole fax
        if result.outcome in (Outcome.RATE_LIMITED, Outcome.PROVIDER_ERROR) or duration <= 0:
            call = _Call(
                ref, job.id, job.kind, job.to, started, self.clock.now(), _with_ref(result, ref)
            )
            self._history.append(call)
            self._log(call)
            return call.result
        ended = self.clock.now() + duration
        self._calls[ref] = _Call(
            ref, job.id, job.kind, job.to, started, ended, _with_ref(result, ref, ended)
        )
        self._history.append(self._calls[ref])
        asyncio.get_running_loop().call_later(duration, self._finished, ref)
        return AttemptResult(None, provider_ref=ref)

    def _finished(self, ref: str) -> None:
        if self._listener is not None:
            self._listener(ref)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        return suppressing(await self._status(job, ref), job.kind)

    async def _status(self, job: Job, ref: str) -> AttemptResult:
        call = self._calls.get(ref)
        if call is None:
            return AttemptResult(
                Outcome.UNKNOWN, provider_ref=ref, error_message=f"no record of {ref}"
            )
        if self.clock.now() < call.ended_at:
            return AttemptResult(None, provider_ref=ref)
        del self._calls[ref]
        self._log(call)
        return call.result

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """Calls to ``job.to`` of ``job.kind`` started in [since, until], as far as this
        process remembers (the last :data:`HISTORY` calls): a test double for
        reconciliation, not a record that survives a crash. Absence is proven only when
        nothing else can have sent: a window reaching back before this simulator was
        made, past what it remembers, or a call log that other processes write to too
        (one of them may have sent the call) cannot be answered (:class:`CannotReconcile`),
        so the job is held, never resent blindly."""
        if since < self._born:
            raise CannotReconcile(
                "the built-in simulator only knows the calls of this process, "
                "and the attempt's window reaches back before it started"
            )
        if len(self._history) == HISTORY and self._history[0].started_at > since:
            raise CannotReconcile("the built-in simulator no longer remembers that window")
        if self._shared():
            raise CannotReconcile(
                "other processes send through the built-in simulator too (its call log has "
                "their calls): one of them may have sent this one"
            )
        now = self.clock.now()
        return [
            Found(c.ref, c.result if now >= c.ended_at else AttemptResult(None, c.ref))
            for c in self._history
            if c.to == job.to and c.kind is job.kind and since <= c.started_at <= until
        ]

    def _shared(self) -> bool:
        """Whether another process (another simulator) writes to this call log."""
        if self._log_path is None or not self._log_path.exists():
            return False
        with self._log_path.open(errors="replace") as lines:
            for line in lines:
                ref = line.partition('"ref": "')[2]
                if ref and ref[2:10] != self._instance:
                    return True
        return False

    def _log(self, call: _Call) -> None:
        if call.logged:
            return
        call.logged = True
        self.log_call(
            call.kind,
            call.to,
            call.started_at,
            call.ended_at,
            call.result.outcome,
            call.ref,
            call.job_id,
        )

    def log_call(
        self,
        kind: Kind,
        to: str | None,
        started_at: float,
        ended_at: float,
        outcome: Outcome | None,
        ref: str | None,
        job_id: int | None,
    ) -> None:
        """Append one line to the call log (if there is one); one ``O_APPEND`` write."""
        if self._log_fd is None:
            return
        line = json.dumps(
            {
                "kind": str(kind),
                "to": to,
                "started_at": started_at,
                "ended_at": ended_at,
                "outcome": str(outcome),
                "ref": ref,
                "job_id": job_id,
            }
        )
        os.write(self._log_fd, (line + "\n").encode())


def _with_ref(result: AttemptResult, ref: str, ended_at: float | None = None) -> AttemptResult:
    return AttemptResult(
        result.outcome, ref, result.error_code, result.error_message, result.retry_after, ended_at
    )
