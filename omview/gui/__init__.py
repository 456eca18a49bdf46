"""Qt pieces shared by the suite's GUI apps (bridge, workers, models, delegates, theme)."""

from omview.gui.qtfix import immortalize_singletons

immortalize_singletons()
