"""The classroom: every AS a group of students, an SSH door per group into its own AS and nothing
else (docs/class.md).

settings.py     the topology's `class:` section (pure)
credentials.py  users, passwords, host keys and TA keys of an instance, kept across lab up/down
sshd.py         one sshd_config per door (pure)
cgroups.py      per-group resource bounds: cgroup v1, v2 or rlimits (plan pure, apply thin)
goto.py         the door shell's command parsing and device list (pure)
shell.py        the door shell students land in (unprivileged; asks the broker to enter a device)
broker.py       the root broker: checks who asks, enters the device in a sandbox (sandbox.py)
doors.py        bring every door of this machine up or down (users, brokers, sshd)
cli.py          `minet class doors|passwd`, `minet configs save|restore`
"""
from ..errors import UserError


class ClassError(UserError):
    """Bad class input or a door that cannot be made: reported as one line, exit code 2."""
