"""omcollector: part of the omview suite."""
