"""Light and dark palettes, and the few colours the delegates paint with.

The delegates draw lamps and bars themselves, so their colours must follow the palette: a green
that reads on white is too bright on near-black. `colors()` picks the set for the active palette.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class Colors:
    up: QColor
    down: QColor
    connecting: QColor
    load: QColor
    load_high: QColor
    memory: QColor
    lcd_back: QColor
    lcd_text: QColor
    bar_back: QColor


_LIGHT = Colors(
    up=QColor("#1f9d3a"),
    down=QColor("#d32f2f"),
    connecting=QColor("#9e9e9e"),
    load=QColor("#2e7dd7"),
    load_high=QColor("#e0661b"),
    memory=QColor("#7b52c7"),
    lcd_back=QColor("#1d2a1d"),
    lcd_text=QColor("#7dff8a"),
    bar_back=QColor("#e4e6ea"),
)
_DARK = Colors(
    up=QColor("#43c463"),
    down=QColor("#ff5a52"),
    connecting=QColor("#8a8a8a"),
    load=QColor("#4d9bf0"),
    load_high=QColor("#ff8a3d"),
    memory=QColor("#a07ef0"),
    lcd_back=QColor("#0d150d"),
    lcd_text=QColor("#6cf57a"),
    bar_back=QColor("#3a3d44"),
)


def is_dark(palette: QPalette | None = None) -> bool:
    pal = palette or QApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def colors(palette: QPalette | None = None) -> Colors:
    return _DARK if is_dark(palette) else _LIGHT


def dark_palette() -> QPalette:
    p = QPalette()
    c = QColor
    roles = QPalette.ColorRole
    p.setColor(roles.Window, c("#2b2d31"))
    p.setColor(roles.WindowText, c("#e6e6e6"))
    p.setColor(roles.Base, c("#1f2024"))
    p.setColor(roles.AlternateBase, c("#272930"))
    p.setColor(roles.ToolTipBase, c("#35373d"))
    p.setColor(roles.ToolTipText, c("#f0f0f0"))
    p.setColor(roles.PlaceholderText, c("#8c8c8c"))
    p.setColor(roles.Text, c("#e6e6e6"))
    p.setColor(roles.Button, c("#35373d"))
    p.setColor(roles.ButtonText, c("#e6e6e6"))
    p.setColor(roles.BrightText, c("#ff6b6b"))
    p.setColor(roles.Light, c("#4a4d55"))
    p.setColor(roles.Midlight, c("#3d4047"))
    p.setColor(roles.Mid, c("#2f3137"))
    p.setColor(roles.Dark, c("#18191c"))
    p.setColor(roles.Shadow, c("#000000"))
    p.setColor(roles.Highlight, c("#3d7bd9"))
    p.setColor(roles.HighlightedText, c("#ffffff"))
    p.setColor(roles.Link, c("#6aa9ff"))
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(disabled, role, c("#7a7c82"))
    p.setColor(disabled, roles.Base, c("#26272b"))
    p.setColor(disabled, roles.Button, c("#2f3136"))
    return p


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    return style.standardPalette() if style else QPalette()


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion everywhere (identical look under every desktop); 'dark'/'light' force a palette."""
    app.setStyle("Fusion")
    if theme == "dark":
        app.setPalette(dark_palette())
    elif theme == "light":
        app.setPalette(light_palette())


def tune_indicators(widget: QWidget) -> None:
    """Fusion rings radio/check indicators in Window.darker(140) and fills them with Base; on our
    dark palette the two are nearly equal and an unchecked box vanishes. Lift Base for these
    widgets only (tables keep their dark Base)."""
    pal = widget.palette()
    if not is_dark(pal):
        return
    pal.setColor(QPalette.ColorRole.Base, pal.color(QPalette.ColorRole.Window).lighter(175))
    widget.setPalette(pal)
