"""Watching a lab: connectivity matrix, topology picture, status page, looking glass.

matrix.py   which AS reaches which (pure: targets, probe script, parsing, JSON, grid, HTML, diff;
            impure: run_matrix through the nodes' places)
graph.py    the topology as a Graphviz picture (AS level or router level, link states)
lg.py       the looking glass: allow-list of read-only vtysh `show` commands
nodes.py    running a command in a node at its place (topology/places.py), shared by the above
page.py     the status page and its JSON, installed by `minet controller` on its REST listener
            (rest/page.py is the extension point; the controller itself knows no view)
cli.py      `minet matrix`, `minet graph`, `minet lg`
"""
