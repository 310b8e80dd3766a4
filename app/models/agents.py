"""What an agent is, in the domain's words (no database, no Qt)."""

from __future__ import annotations

#: What an agent's value is: a TwiML App SID, a webhook URL, or TwiML itself.
AGENT_KINDS = ("application", "url", "twiml")
