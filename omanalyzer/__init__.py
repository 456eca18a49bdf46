"""omanalyzer: part of the omview suite."""
