"""Watching a lab: connectivity matrix, topology picture, status page, looking glass.

matrix.py   which AS reaches which (pure: targets, probe script, parsing, JSON, grid, HTML, diff;
            impure: run_matrix through the lab's exec machinery)
graph.py    the topology as a Graphviz picture (AS level or router level, link states)
lg.py       the looking glass: allow-list of read-only vtysh `show` commands
nodes.py    running a command in a lab node (netns or docker backend), shared by the above
page.py     the status page and its JSON, served by the controller's REST listener
cli.py      `minet matrix`, `minet graph`, `minet lg`
"""
