"""A local HTTP server that speaks the part of Twilio's 2010-04-01 API this product uses.

Tests, QA and the dialer benchmark point the real `TwilioProvider` (and so the real
`twilio` package) at it with `BATCHCALLS_TWILIO_API_BASE`. Calls move through queued,
ringing, in-progress and a final status as the injected clock advances (the same plans
as simulation mode), outcomes can be programmed per destination, faults (429, 500,
delays, dropped connections) injected at seeded rates, and every request and call is
recorded for assertions.

For the dialer's harder cases it also has a create latency (`set_create_delay`, fixed
or drawn per create from a range, as real Twilio's varies), an
account rate limit that queues calls (a realistic `queue_time`) or refuses them with
Twilio's 429 / error 20429 and a `Retry-After` header (`set_rate_limit`), a limit on
requests in flight, status callbacks signed like Twilio's (`X-Twilio-Signature`), and a
request log that can also be written to a JSON-lines file.

The stand-in is a package of modules, one job each; this module is its public face and
re-exports what callers import:

- `server`: `TwilioStandin`, the HTTP server's lifecycle, its settings and queries;
- `account`: the simulated account and how it answers one request;
- `calls`: one call's plan and timeline; `callbacks`: status callbacks, signed;
- `faults`: fault injection, the create delay and the calls-per-second limit;
- `resources`: the resources' JSON; `shapes`: errors, SIDs, dates, fields and routes;
- `records`: what is recorded for tests; `http_layer`: the HTTP server and handler.
"""

from __future__ import annotations

from app.standin.callbacks import twilio_signature
from app.standin.faults import Faults
from app.standin.records import (
    CallbackDelivery,
    CallRecord,
    Form,
    Program,
    RateLimitMode,
    RecordedRequest,
)
from app.standin.server import TwilioStandin
from app.standin.shapes import API_VERSION, MAGIC_FROM_NUMBER

__all__ = [
    "API_VERSION",
    "MAGIC_FROM_NUMBER",
    "CallRecord",
    "CallbackDelivery",
    "Faults",
    "Form",
    "Program",
    "RateLimitMode",
    "RecordedRequest",
    "TwilioStandin",
    "twilio_signature",
]
