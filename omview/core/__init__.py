"""The suite's Qt-free core: model, configuration, transports, agent, sessions, cluster.

Nothing here may import Qt or a GUI app (checked by import-linter in `make test`).
"""
