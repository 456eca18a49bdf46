"""Data files (icons, penguin art, .desktop files, systemd unit), found through importlib.resources."""
