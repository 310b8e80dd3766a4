"""Local stand-ins for external services, for tests, QA and benchmarks (no network)."""

from __future__ import annotations

from app.standin.twilio_server import CallRecord, Faults, Program, RecordedRequest, TwilioStandin

__all__ = ["CallRecord", "Faults", "Program", "RecordedRequest", "TwilioStandin"]
