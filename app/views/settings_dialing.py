"""Settings › Dialing: the dialing engine's settings, in sections; each field's range,
label and help come from SETTING_SPECS (app.views.settings_fields).

Only what the supervisor changed is saved: an untouched field keeps its stored value
exactly, even one with more decimals than the field shows.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.services.setting_specs import SETTING_SPECS
from app.services.settings import AppSettings
from app.views.settings_fields import field_name, range_text, setting_help, setting_label, spin_for

#: The Dialing tab: (group box object name, title, the settings it shows).
ENGINE_SECTIONS = (
    (
        "placingBox",
        "Placing calls",
        (
            "placement_concurrency",
            "dial_interval_seconds",
            "pickup_interval_seconds",
            "max_attempts_per_number_24h",
        ),
    ),
    (
        "eachCallBox",
        "Each call",
        ("ring_timeout_seconds", "max_call_duration_seconds", "answering_machine_detection"),
    ),
    (
        "engineStartBox",
        "Following calls and sharing the dialing (read when an engine starts)",
        ("poll_interval_seconds", "lease_heartbeat_seconds", "lease_expiry_seconds"),
    ),
)
EngineField = QSpinBox | QDoubleSpinBox | QCheckBox


class DialingTab(QWidget):
    """The engine's settings; `engine_fields` maps each setting key to its field."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("engineTab")
        outer = QVBoxLayout(self)
        intro = QLabel(
            "How the dialing engine places and follows calls, for this desktop and every "
            "worker on this database (a worker's options override them for that worker). "
            "The calls per second and the plan concurrency are on the Telephony tab. "
            "Hover over a field for what it does and the values it takes.",
            self,
        )
        intro.setObjectName("engineIntro")
        intro.setProperty("role", "hint")
        intro.setWordWrap(True)
        outer.addWidget(intro)
        #: Setting -> its field, and the value each field showed once loaded.
        self.engine_fields: dict[str, EngineField] = {}
        self._engine_shown: dict[str, object] = {}
        labels: list[QLabel] = []
        for box_name, title, keys in ENGINE_SECTIONS:
            box = QGroupBox(title, self)
            box.setObjectName(box_name)
            form = QFormLayout(box)
            for key in keys:
                spec = SETTING_SPECS[key]
                field: EngineField
                if spec.low is None:  # a yes / no setting
                    field = QCheckBox(setting_label(spec), box)
                    field.setObjectName(field_name(key, "Check"))
                    field.setToolTip(setting_help(key))
                    form.addRow("", field)
                else:
                    field = spin_for(key, box)
                    field.setMinimumWidth(120)
                    row = QHBoxLayout()
                    row.addWidget(field)
                    accepted = QLabel(range_text(key), box)
                    accepted.setProperty("role", "hint")
                    row.addWidget(accepted, 1)
                    label = QLabel(f"{setting_label(spec)}:", box)
                    labels.append(label)
                    form.addRow(label, row)
                self.engine_fields[key] = field
            if box_name == "engineStartBox":
                note = QLabel(
                    "A change takes effect when Batch Calls or a worker starts again.", box
                )
                note.setObjectName("engineRestartNote")
                note.setProperty("role", "hint")
                note.setWordWrap(True)
                form.addRow("", note)
            outer.addWidget(box)
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:  # the sections' fields in one column
            label.setMinimumWidth(width)
        cap = self.engine_fields["max_attempts_per_number_24h"]
        assert isinstance(cap, QSpinBox)
        cap.setSpecialValueText("No cap")
        self.show_settings(settings)
        outer.addStretch(1)

    def show_settings(self, settings: AppSettings) -> None:
        """Show the stored values, and remember them to save only what changes."""
        for key, field in self.engine_fields.items():
            value = getattr(settings, key)
            if isinstance(field, QCheckBox):
                field.setChecked(bool(value))
                self._engine_shown[key] = field.isChecked()
            elif isinstance(field, QSpinBox):
                field.setValue(int(value))
                self._engine_shown[key] = field.value()
            else:
                field.setValue(float(value))
                self._engine_shown[key] = field.value()

    def changed_values(self) -> dict[str, Any]:
        """The engine settings changed since they were shown (a field's text is checked
        by the dialog first: see SettingsDialog.engine_values)."""
        values: dict[str, Any] = {}
        for key, field in self.engine_fields.items():
            value = field.isChecked() if isinstance(field, QCheckBox) else field.value()
            if value != self._engine_shown.get(key):
                values[key] = value
        return values
