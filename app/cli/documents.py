"""The JSON documents of --json: a batch call, a recipient, a history entry, an agent, a
from number, a CSV scan report and the settings, as the output shows them."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from app.cli.output import _iso, mask_secrets
from app.cli_policy import policy_document
from app.models.status import RecipientStatus

if TYPE_CHECKING:
    from app.models.snapshots import (
        AgentSnapshot,
        AuditSnapshot,
        BatchCallSnapshot,
        FromNumberSnapshot,
        RecipientSnapshot,
    )
    from app.services.settings import AppSettings


def batch_document(b: BatchCallSnapshot) -> dict[str, Any]:
    """A batch call as --json shows it: stored values plus what the GUI displays."""
    return {
        "id": b.id,
        "name": b.name,
        "status": b.status.value,
        "status_display": b.status_display,
        "import_state": b.import_state.value,
        "agent_id": b.agent_id,
        "agent_name": b.agent_name,
        "from_number": b.from_number,
        "send_type": b.send_type.value,
        "send_type_display": b.send_type.display_name,
        "scheduled_at": _iso(b.scheduled_at),
        "timezone": b.timezone,
        "window_start": b.window_start,
        "window_end": b.window_end,
        "allowed_days": sorted(b.allowed_days),
        "allowed_days_display": b.allowed_days_display,
        "reserved_concurrency": b.reserved_concurrency,
        "total_recipients": b.total_recipients,
        "counts": {status.value: b.counts[status] for status in RecipientStatus},
        "finished_count": b.finished_count,
        "remaining_count": b.remaining_count,
        "progress_percent": round(b.progress_percent, 1),
        "failure_reason": b.failure_reason,
        "waiting_reason": b.waiting_reason,
        "retry_count": b.retry_count,
        "created_at": _iso(b.created_at),
        "started_at": _iso(b.started_at),
        "finished_at": _iso(b.finished_at),
        "updated_at": _iso(b.updated_at),
        **policy_document(b),
        "actions": [a.value for a in b.actions],
    }


def recipient_document(r: RecipientSnapshot) -> dict[str, Any]:
    return {
        "id": r.id,
        "row_number": r.row_number,
        "phone_number": r.phone_number,
        "name": r.name,
        "variables": r.variables,
        "status": r.status.value,
        "status_display": r.status.display_name,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "provider_call_id": r.provider_call_id,
        "requested_at": _iso(r.requested_at),
        "answered_at": _iso(r.answered_at),
        "ended_at": _iso(r.ended_at),
        "duration_seconds": r.duration_seconds,
        "answered_by": r.answered_by,
    }


def history_document(e: AuditSnapshot) -> dict[str, Any]:
    return {
        "action": e.action,
        "detail": e.detail,
        "user": e.user,
        "host": e.host,
        "at": _iso(e.at),
    }


def agent_document(a: AgentSnapshot) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "kind": a.kind,
        "value": mask_secrets(a.value),
        "active": a.active,
    }


def number_document(n: FromNumberSnapshot) -> dict[str, Any]:
    return {
        "id": n.id,
        "phone_number": n.phone_number,
        "label": n.label,
        "source": n.source,
        "active": n.active,
    }


def report_document(report: Any) -> dict[str, Any]:
    """The CSV scan (app.services.csv_import.CsvReport) as --json shows it."""
    return {
        "total_rows": report.total_rows,
        "accepted_count": report.accepted_count,
        "rejected_count": report.rejected_count,
        "rejected": [
            {"row_number": r.row_number, "phone_raw": r.phone_raw, "reason": r.reason}
            for r in report.rejected
        ],
        "duplicate_count": report.duplicate_count,
        "duplicates": [
            {"phone_number": d.phone_number, "row_numbers": list(d.row_numbers)}
            for d in report.duplicates
        ],
        "variable_columns": list(report.variable_columns),
    }


def settings_document(settings: AppSettings) -> dict[str, Any]:
    from app.services.settings import AppSettings

    return {
        f.name: mask_secrets(v) if isinstance(v := getattr(settings, f.name), str) else v
        for f in fields(AppSettings)
    }
