"""omview: the openMosixview cluster administration suite for stock Linux."""

__version__ = "0.1.0"
