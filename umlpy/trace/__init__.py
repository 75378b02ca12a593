"""``umlpy trace``: strace for the sandbox.

The guest kernel stops every syscall in ``Mode.TRACE_ALL``; a
``TraceSession`` (session.py) observes each call at its entry and exit
(``GuestKernel.observe``) and hands finished records to sinks: strace's
text lines (format.py), JSON lines (record.py), the ``-c`` table
(summary.py) and the HTML timeline (timeline.py).  Arguments are decoded
the way strace prints them (decode.py, with the name tables in consts.py);
``-e trace=`` sets (filters.py) select the calls; ``-e inject=`` faults
(inject.py) are hooks that skip a call or make its thread sleep; compare.py
aligns two recorded runs.  cli.py parses the options and runs the sandbox
through ``umlpy run``'s own option handling.

Modules are imported only by ``umlpy trace``, never at ``umlpy run``'s
start-up.
"""
