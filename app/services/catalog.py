"""The agents and from numbers a batch call is created with: adding and listing them, and
turning an agent on or off (BatchCallService exposes these to the settings dialog, the
create dialog, the command line and the Twilio number sync)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models.agents import AGENT_KINDS
from app.models.creation import NAME_MAX
from app.models.schema import Agent, FromNumber
from app.models.snapshots import AgentSnapshot, FromNumberSnapshot
from app.models.text import control_character_problem
from app.services.batch_common import NotFound, ValidationError


def agent_snapshot(a: Agent) -> AgentSnapshot:
    return AgentSnapshot(id=a.id, name=a.name, kind=a.kind, value=a.value, active=a.active)


def number_snapshot(n: FromNumber) -> FromNumberSnapshot:
    return FromNumberSnapshot(
        id=n.id, phone_number=n.phone_number, label=n.label, source=n.source, active=n.active
    )


class Catalog:
    """The agents and from numbers. Thread-safe: every call opens its own short session."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def add_agent(self, name: str, kind: str, value: str, active: bool = True) -> AgentSnapshot:
        problems: dict[str, str] = {}
        name = name.strip()
        if not 1 <= len(name) <= NAME_MAX:
            problems["name"] = "An agent needs a name of 1 to 100 characters."
        elif problem := control_character_problem(name, "The agent's name"):
            problems["name"] = problem
        if kind not in AGENT_KINDS:
            problems["kind"] = f"Agent kind must be one of {', '.join(AGENT_KINDS)}."
        elif kind == "application" and not (value.startswith("AP") and len(value) == 34):
            problems["value"] = "A TwiML App SID starts with AP and has 34 characters."
        elif kind == "url" and not value.startswith(("https://", "http://")):
            problems["value"] = "A voice webhook URL starts with https:// (or http://)."
        elif kind == "twiml" and "<Response" not in value:
            problems["value"] = "TwiML must contain a <Response> element."
        with self.sessions.begin() as session:
            if session.scalar(select(Agent.id).where(func.lower(Agent.name) == name.lower())):
                problems["name"] = f'An agent named "{name}" already exists.'
            if problems:
                raise ValidationError(problems)
            agent = Agent(name=name, kind=kind, value=value, active=active)
            session.add(agent)
            session.flush()
            return agent_snapshot(agent)

    def set_agent_active(self, agent_id: int, active: bool) -> AgentSnapshot:
        with self.sessions.begin() as session:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise NotFound(f"No agent with id {agent_id}.")
            agent.active = active
            return agent_snapshot(agent)

    def list_agents(self, active_only: bool = False) -> list[AgentSnapshot]:
        stmt = select(Agent).order_by(func.lower(Agent.name))
        if active_only:
            stmt = stmt.where(Agent.active.is_(True))
        with self.sessions() as session:
            return [agent_snapshot(a) for a in session.scalars(stmt)]

    def add_from_number(
        self, phone_number: str, label: str = "", source: str = "simulated"
    ) -> FromNumberSnapshot:
        from app.models.phone import PhoneError, normalize_phone

        if problem := control_character_problem(label, "The label"):
            raise ValidationError({"label": problem})
        try:
            e164 = normalize_phone(phone_number, "US")
        except PhoneError as e:
            raise ValidationError({"phone_number": f"{phone_number}: {e}"}) from None
        with self.sessions.begin() as session:
            existing = session.scalar(select(FromNumber).where(FromNumber.phone_number == e164))
            if existing is not None:
                existing.label = label or existing.label
                existing.source = source
                existing.active = True
                return number_snapshot(existing)
            number = FromNumber(phone_number=e164, label=label.strip(), source=source)
            session.add(number)
            session.flush()
            return number_snapshot(number)

    def list_from_numbers(self, active_only: bool = False) -> list[FromNumberSnapshot]:
        stmt = select(FromNumber).order_by(FromNumber.phone_number)
        if active_only:
            stmt = stmt.where(FromNumber.active.is_(True))
        with self.sessions() as session:
            return [number_snapshot(n) for n in session.scalars(stmt)]
