"""omprocs: part of the omview suite."""
