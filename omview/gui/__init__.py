"""Qt pieces shared by the suite's GUI apps (bridge, workers, models, delegates, theme)."""
