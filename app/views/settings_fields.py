"""The fields of the shared settings in the Settings dialog: labels, ranges, help and spin
boxes, all from the one table (app.services.setting_specs) that validation and the CLI
read, so the dialog, the store and `batchcalls settings set` agree on every range.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox, QWidget

from app.services.setting_specs import SETTING_SPECS, SettingSpec
from app.services.settings import AppSettings
from app.views import formatting


def setting_label(spec: SettingSpec) -> str:
    """A setting's form label: The poll interval -> Poll interval."""
    label = spec.label.removeprefix("The ")
    return label[:1].upper() + label[1:]


def range_text(key: str) -> str:
    """The values a setting takes, in the application's locale: "0.1 to 300 seconds",
    "1 to 10,000" ("0,1 to 300 seconds", "1 to 10.000" in German)."""
    spec = SETTING_SPECS[key]
    if spec.low is None or spec.high is None:
        return spec.describe_values()
    values = f"{_bound(spec.low)} to {_bound(spec.high)}"
    return values + " seconds" if key.endswith("_seconds") else values


def _bound(value: float) -> str:
    """A range's end as the locale writes it, with no needless decimals (0.01, 60)."""
    if float(value).is_integer():
        return formatting.count(int(value))
    decimals = len(f"{value:g}".partition(".")[2])
    return formatting.number(value, decimals)


def setting_help(key: str) -> str:
    """The tooltip of a setting's field: what it means and the values it takes."""
    spec = SETTING_SPECS[key]
    meaning = spec.meaning[:1].upper() + spec.meaning[1:]
    return f"{meaning}.\nAccepted: {range_text(key)}. Setting: {key}."


def field_name(key: str, suffix: str) -> str:
    """The object name of a setting's field: poll_interval_seconds -> pollIntervalSecondsSpin."""
    first, *rest = key.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest) + suffix


def spin_for(key: str, parent: QWidget) -> QSpinBox | QDoubleSpinBox:
    """A spin box with the setting's range, help and object name (int or float by the
    setting's type)."""
    if isinstance(getattr(AppSettings(), key), int):
        return int_spin_for(key, parent)
    return float_spin_for(key, parent)


def int_spin_for(key: str, parent: QWidget) -> QSpinBox:
    spec = SETTING_SPECS[key]
    assert spec.low is not None and spec.high is not None
    spin = QSpinBox(parent)
    spin.setRange(int(spec.low), int(spec.high))
    spin.setGroupSeparatorShown(True)  # 14,400 s, as the range beside it is written
    _describe_spin(spin, key)
    return spin


def float_spin_for(key: str, parent: QWidget) -> QDoubleSpinBox:
    spec = SETTING_SPECS[key]
    assert spec.low is not None and spec.high is not None
    spin = QDoubleSpinBox(parent)
    spin.setDecimals(2)
    spin.setRange(spec.low, spec.high)
    _describe_spin(spin, key)
    return spin


def _describe_spin(spin: QSpinBox | QDoubleSpinBox, key: str) -> None:
    spin.setObjectName(field_name(key, "Spin"))
    spin.setToolTip(setting_help(key))
    spin.setAccelerated(True)
    if key.endswith("_seconds"):
        spin.setSuffix(" s")


def field_problem(key: str, field: QObject) -> str | None:
    """Why the text typed in a setting's spin box is not a value it takes, if it is not."""
    if isinstance(field, QSpinBox | QDoubleSpinBox) and not field.hasAcceptableInput():
        return (
            f"{setting_label(SETTING_SPECS[key])} must be from {range_text(key)}; "
            f"“{field.cleanText()}” is not."
        )
    return None
