"""Named, long-lived sandboxes (umlpy create/start/exec/ps/ls/stop/kill/rm).

- ``registry.py``: where a sandbox's record, upper layer, logs and control
  socket live, its lock, and its state (created, running, stopped, crashed).
- ``daemon.py``: ``umlpy start``: a guest kernel that lives on as a
  supervisor daemon, with umlpy-init (``_native/init.c``) as its pid 1.
- ``initproto.py``: the supervisor's side of umlpy-init's socket.
- ``control.py``: the control protocol (docs/CONTROL.md) both sides use.
- ``server.py``: the daemon's control socket: exec, ps, info, kill, stop.
- ``client.py``: the commands' side of it (exec with its terminal relay).
- ``commands.py``: the command line.
"""
