"""The shared catalog: agents, from numbers and settings (list, add, change), and the
look-up of an agent or a from number by id or name."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.context import EXIT_OK, PROG, CliError, Context
from app.cli.documents import agent_document, number_document, settings_document
from app.cli.output import _short, _table, mask_secrets

if TYPE_CHECKING:
    from app.models.snapshots import AgentSnapshot, FromNumberSnapshot

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _resolve_agent(ctx: Context, reference: str) -> AgentSnapshot:
    agents = ctx.service.list_agents()
    text = reference.strip()
    if text.isdigit():
        for a in agents:
            if a.id == int(text):
                return a
    matches = [a for a in agents if a.name.lower() == text.lower()]
    if matches:
        return matches[0]
    raise CliError(
        f'No agent "{reference}". Run "{PROG} agents" to see them, or add one with '
        f'"{PROG} agents add".',
        {"agent": f'No agent "{reference}".'},
    )


def _resolve_number(ctx: Context, reference: str, default_country: str) -> FromNumberSnapshot:
    from app.models.phone import PhoneError, normalize_phone

    numbers = ctx.service.list_from_numbers()
    text = reference.strip()
    if text.isdigit():
        for n in numbers:
            if n.id == int(text):
                return n
    try:
        e164 = normalize_phone(text, default_country)
    except PhoneError:
        e164 = text
    for n in numbers:
        if n.phone_number == e164:
            return n
    raise CliError(
        f'No from number "{reference}". Run "{PROG} numbers" to see them, or add one with '
        f'"{PROG} numbers add".',
        {"from_number": f'No from number "{reference}".'},
    )


def cmd_agents(ctx: Context) -> int:
    action = ctx.args.agents_action or "list"
    if action == "list":
        agents = ctx.service.list_agents()
        ctx.emit({"agents": [agent_document(a) for a in agents]})
        if not agents:
            ctx.say(f'No agents yet. Add one with "{PROG} agents add".')
        else:
            rows = [
                (a.id, a.name, a.kind, "yes" if a.active else "no", _short(mask_secrets(a.value)))
                for a in agents
            ]
            ctx.say(*_table(("ID", "Name", "Kind", "Active", "Value"), rows))
        return EXIT_OK
    if action == "add":
        value = ctx.args.value
        if ctx.args.value_file is not None:
            try:
                value = Path(ctx.args.value_file).expanduser().read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(
                    f"Cannot read the agent value from {ctx.args.value_file}: {e}."
                ) from e
        agent = ctx.service.add_agent(ctx.args.name, ctx.args.kind, value.strip())
        ctx.emit({"agent": agent_document(agent)})
        ctx.say(f'Added agent {agent.id} "{agent.name}" ({agent.kind}).')
        return EXIT_OK
    from app.services.batch_calls import NotFound

    agent = _resolve_agent(ctx, ctx.args.reference)
    active = action == "activate"
    try:
        agent = ctx.service.set_agent_active(agent.id, active)
    except NotFound as e:
        raise CliError(str(e)) from e
    ctx.emit({"agent": agent_document(agent)})
    state = "active" if active else "inactive (it can no longer be chosen for new batch calls)"
    ctx.say(f'Agent {agent.id} "{agent.name}" is now {state}.')
    return EXIT_OK


def cmd_numbers(ctx: Context) -> int:
    action = ctx.args.numbers_action or "list"
    if action == "add":
        from app.cli_twilio import checked_from_number

        source, label = checked_from_number(ctx, ctx.args.phone_number, ctx.args.label or "")
        number = ctx.service.add_from_number(ctx.args.phone_number, label, source=source)
        ctx.emit({"number": number_document(number)})
        ctx.say(f"Added from number {number.id}: {number.display}.")
        return EXIT_OK
    numbers = ctx.service.list_from_numbers()
    ctx.emit({"numbers": [number_document(n) for n in numbers]})
    if not numbers:
        ctx.say(f'No from numbers yet. Add one with "{PROG} numbers add +15551234567".')
    else:
        rows = [
            (n.id, n.phone_number, n.label, n.source, "yes" if n.active else "no") for n in numbers
        ]
        ctx.say(*_table(("ID", "Number", "Label", "Source", "Active"), rows))
    return EXIT_OK


def _setting_text(value: object) -> str:
    """As `settings set` accepts it back: true/false, not Python's True/False."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def cmd_settings(ctx: Context) -> int:
    from app.services.settings import AppSettings, SettingsError

    store = ctx.settings
    if (ctx.args.settings_action or "show") == "set":
        key, raw = ctx.args.key.strip(), ctx.args.value
        names = [f.name for f in fields(AppSettings)]
        if key not in names:
            raise CliError(
                f'"{key}" is not a setting. Settings: {", ".join(names)}.',
                {key: "Unknown setting."},
            )
        if isinstance(getattr(AppSettings(), key), bool):
            word = raw.strip().lower()
            if word not in _TRUE | _FALSE:
                raise CliError(f'{key} is true or false, not "{raw}".', {key: "Not true/false."})
            raw = "true" if word in _TRUE else "false"
        try:
            settings = store.update(**{key: raw})
        except SettingsError as e:
            raise CliError(str(e), {key: str(e)}) from e
        ctx.emit({"settings": settings_document(settings)})
        ctx.say(f"{key} = {_setting_text(settings_document(settings)[key])}")
        return EXIT_OK
    document = settings_document(store.load())
    ctx.emit({"settings": document})
    ctx.say(*(f"{k} = {_setting_text(v)}" for k, v in document.items()))
    return EXIT_OK
