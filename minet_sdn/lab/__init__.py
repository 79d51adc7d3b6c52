"""The embedded multi-server lab: every server of a topology emulated on one machine.

emulation  names, paths, the emulated servers (namespaces, OvS, sshd) and their teardown
lab        lab_up / lab_down / lab_status / exec_in_node / rest_call
cli        add_lab_commands(subparsers): `lab up|down|status FILE`, `exec FILE NODE -- CMD`
"""
