"""omanalyzer and omhistory: the cluster's history, drawn (HOWTO 10.7).

omanalyzer shows the load and memory overviews of a history written by omcollector, with
checkpoints and per-node statistics; omhistory browses the process lists of the past with a time
slider. Both read the history store (omview.core.history) only, never the nodes.
"""
