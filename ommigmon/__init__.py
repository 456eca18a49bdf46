"""ommigmon: part of the omview suite."""
