"""``--json`` and ``--record FILE``: one JSON object per syscall (JSON
lines), for notebooks and scripts, and the input of ``--compare``.

Fields of each object:
  seq        order of entry (1, 2, ...)
  pid        the calling thread's tid as the guest sees it (strace's pid)
  host_pid   the same thread's tid on the host
  syscall    name;  nr: x86_64 number
  args       the raw argument registers (integers)
  decoded    the arguments as strace prints them (strings)
  ret        the raw result: negative errno on failure, null if the call
             never returned (exit_group, a thread killed in a call)
  errno      the error's name (ENOENT), or null
  retstr     the result as strace prints it
  enter      wall-clock time of the entry (seconds since the epoch)
  duration   seconds from entry to exit, or null
  injected   "INJECTED" or "DELAYED" when -e inject= changed the call, else null
"""
import json

from ..abi import MASK64
from ..errors import BadInput
from .consts import errno_name


def rec_to_dict(rec):
    r = rec.result
    d = rec.decoded
    return {
        "seq": rec.seq, "pid": rec.pid, "host_pid": rec.tid, "syscall": rec.name,
        "nr": rec.nr, "args": [a & MASK64 for a in rec.args],
        "decoded": list(d.args) if d is not None else None,
        "ret": r,
        "errno": errno_name(-r) if r is not None and -4096 < r < 0 else None,
        "retstr": d.ret if d is not None else None,
        "enter": round(rec.t0, 6),
        "duration": None if rec.t1 is None or r is None else round(rec.t1 - rec.t0, 6),
        "injected": rec.note,
    }


class JsonSink:
    def __init__(self, out):
        from .format import guarded
        self.out = guarded(out)

    def exit(self, rec):
        self.out.write(json.dumps(rec_to_dict(rec), separators=(",", ":")) + "\n")

    def close(self):
        self.out.flush()


def load(path):
    """The records of a --record/--json file, as dicts; BadInput when it
    is missing or not JSON lines."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise BadInput(f"umlpy trace: --compare {path}: {e.strerror}") from None
    records = []
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise BadInput(f"umlpy trace: --compare {path}:{n}: not a JSON line") from None
            if not isinstance(obj, dict) or "syscall" not in obj or "pid" not in obj:
                raise BadInput(f"umlpy trace: --compare {path}:{n}: not a umlpy trace record")
            records.append(obj)
    return records
