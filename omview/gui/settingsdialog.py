"""File → Settings: how often nodes report, and how SSH treats host keys.

These override what the cluster file says, per user (QSettings), because the same cluster file
is often shared by several administrators with different tastes and different known_hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from omview.core.config import MAX_INTERVAL, MIN_INTERVAL
from omview.gui.theme import THEMES, tune_indicators


@dataclass
class Prefs:
    interval: float | None = None  # None = as the cluster file says
    known_hosts: str | None = None  # None = as the cluster file says (else ~/.ssh/known_hosts)
    accept_new: bool = False
    theme: str = "system"


class SettingsDialog(QDialog):
    def __init__(self, prefs: Prefs, file_interval: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("omview settings")
        self.setMinimumWidth(480)
        form = QFormLayout()

        self.use_file_interval = QCheckBox("as the cluster file says")
        self.use_file_interval.setToolTip(f"Use the cluster file's interval ({file_interval:g} s)")
        self.interval = QDoubleSpinBox()
        self.interval.setRange(MIN_INTERVAL, MAX_INTERVAL)
        self.interval.setDecimals(1)
        self.interval.setSingleStep(0.5)
        self.interval.setSuffix(" s")
        self.interval.setToolTip("How often every node's agent sends a sample (applies on reconnect)")
        self.interval.setValue(prefs.interval if prefs.interval is not None else file_interval)
        self.use_file_interval.setChecked(prefs.interval is None)
        self.use_file_interval.toggled.connect(lambda on: self.interval.setEnabled(not on))
        self.interval.setEnabled(prefs.interval is not None)
        row = QHBoxLayout()
        row.addWidget(self.interval)
        row.addWidget(self.use_file_interval)
        row.addStretch(1)
        form.addRow("Refresh interval:", row)

        self.known_hosts = QLineEdit(prefs.known_hosts or "")
        self.known_hosts.setPlaceholderText("as the cluster file says, else ~/.ssh/known_hosts")
        self.known_hosts.setToolTip("The known_hosts file node host keys are checked against")
        browse = QPushButton("Browse…")
        browse.setToolTip("Choose a known_hosts file")
        browse.clicked.connect(self._browse)
        kh = QHBoxLayout()
        kh.addWidget(self.known_hosts, 1)
        kh.addWidget(browse)
        form.addRow("known_hosts:", kh)

        self.accept_new = QCheckBox("Accept a new node's host key (accept-new)")
        self.accept_new.setToolTip(
            "Like ssh's StrictHostKeyChecking=accept-new: an unknown key is recorded; a CHANGED key is always refused"
        )
        self.accept_new.setChecked(prefs.accept_new)
        for box in (self.use_file_interval, self.accept_new):
            tune_indicators(box)
        form.addRow("Host keys:", self.accept_new)

        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(prefs.theme)
        self.theme.setToolTip("Colours: follow the desktop, or force light or dark")
        form.addRow("Palette:", self.theme)

        note = QLabel("Changes reconnect every node of the open cluster.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "known_hosts file", self.known_hosts.text() or "")
        if path:
            self.known_hosts.setText(path)

    def prefs(self) -> Prefs:
        return Prefs(
            interval=None if self.use_file_interval.isChecked() else round(self.interval.value(), 1),
            known_hosts=self.known_hosts.text().strip() or None,
            accept_new=self.accept_new.isChecked(),
            theme=self.theme.currentText(),
        )
