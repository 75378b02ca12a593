"""The working directories C keeps (umlpy/_native/workdir.c) against a
model: what Python sets is what C keys a thread's calls by; a freed box
is nobody's, even to the tids that pointed at it; and a chdir C looked up
before any change Python made (a rename moving a cwd, a rmdir removing it,
a clear of the path cache) never lands after it."""
from hypothesis import given, settings, strategies as st

from umlpy._native._tracer import ffi, lib
from umlpy.kernel.fastpath import NativeWorkdirs
from umlpy.tracer import Tracer

TIDS = (101, 102, 103, 104)
PATHS = ("/", "/usr", "/usr/lib", "/tmp/a b", "/x" * 40)


def c_view(cache, tid):
    buf = ffi.new("char[]", 4097)
    n = lib.umlpy_cwd_of(cache, tid, buf, len(buf))
    return ffi.string(buf).decode() if n >= 0 else None


ops = st.lists(st.one_of(
    st.tuples(st.just("new"), st.sampled_from(PATHS)),
    st.tuples(st.just("set"), st.integers(0, 3), st.sampled_from(PATHS + (None,))),
    st.tuples(st.just("attach"), st.sampled_from(TIDS), st.integers(-1, 3)),
    st.tuples(st.just("free"), st.integers(0, 3)),
    st.tuples(st.just("bump")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("look"), st.sampled_from(TIDS)),
    st.tuples(st.just("move"), st.integers(0, 3), st.sampled_from(PATHS)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_workdirs_against_a_model(steps):
    tracer = Tracer()
    cache = lib.umlpy_tracer_cache(tracer._t)
    store = NativeWorkdirs(tracer)
    boxes = []              # ours, in order made: (box id, or None once freed)
    path_of = {}            # box -> path (None: removed)
    tid_box = {}            # tid -> box
    looked = []             # (tid, epoch, still valid?) of C's lookups begun
    for step in steps:
        kind = step[0]
        if kind == "new":
            box = store.new()
            assert box is not None
            store.set(box, step[1])
            boxes.append(box)
            path_of[box] = step[1]
            looked = [(t, e, False) for t, e, _ in looked]
        elif kind == "set" and step[1] < len(boxes) and boxes[step[1]] is not None:
            box = boxes[step[1]]
            seq = store.seq(box)
            assert store.set(box, step[2]) != seq
            path_of[box] = step[2]
            looked = [(t, e, False) for t, e, _ in looked]
        elif kind == "attach":
            box = boxes[step[2]] if 0 <= step[2] < len(boxes) else None
            store.attach(step[1], -1 if box is None else box)
            tid_box[step[1]] = box
        elif kind == "free" and step[1] < len(boxes) and boxes[step[1]] is not None:
            box = boxes[step[1]]
            store.free(box)
            boxes[step[1]] = None
            del path_of[box]
            for tid, b in list(tid_box.items()):
                if b == box:
                    tid_box[tid] = None
        elif kind == "bump":
            store.bump()
            looked = [(t, e, False) for t, e, _ in looked]
        elif kind == "clear":
            lib.umlpy_cache_clear(cache)
            looked = [(t, e, False) for t, e, _ in looked]
        elif kind == "look":
            looked.append((step[1], lib.umlpy_cwd_epoch(cache), True))
        elif kind == "move" and step[1] < len(looked):
            tid, epoch, valid = looked.pop(step[1])
            box = tid_box.get(tid)
            landed = lib.umlpy_cwd_move(cache, tid, step[2].encode(), epoch)
            assert landed == (1 if valid and box is not None else 0), (tid, valid, box)
            if landed:
                path_of[box] = step[2]
        for tid in TIDS:
            box = tid_box.get(tid)
            want = path_of.get(box) if box is not None else None
            assert c_view(cache, tid) == want, (tid, box)
        for box, path in path_of.items():
            assert store.get(box) == path


def test_python_sees_a_move_c_made():
    """FsContext reads through the box: a chdir C served shows in Python."""
    from umlpy.kernel.vfs.vfs import FsContext
    tracer = Tracer()
    cache = lib.umlpy_tracer_cache(tracer._t)
    store = NativeWorkdirs(tracer)
    ctx = FsContext("/", "/usr", store)
    ctx.attach(4242)
    assert c_view(cache, 4242) == "/usr"
    assert lib.umlpy_cwd_move(cache, 4242, b"/usr/lib", lib.umlpy_cwd_epoch(cache)) == 1
    assert ctx.cwd == "/usr/lib" and not ctx.gone
    ctx.remove()
    assert ctx.gone and ctx.cwd == "/usr/lib" and c_view(cache, 4242) is None
    copy = ctx.copy(store)
    assert copy.gone and copy.cwd == "/usr/lib"
    assert lib.umlpy_cwd_move(cache, 4242, b"/", lib.umlpy_cwd_epoch(cache)) == 1
    assert ctx.cwd == "/" and not ctx.gone
    ctx.release()
    assert c_view(cache, 4242) is None


def test_no_chdir_lands_after_a_change_python_made():
    """The orders the model may not reach often: a lookup begun, then the
    path cache cleared (the guest kernel changed the tree), a cwd moved by
    a rename, or one removed; the chdir is then Python's to make again."""
    tracer = Tracer()
    cache = lib.umlpy_tracer_cache(tracer._t)
    store = NativeWorkdirs(tracer)
    box = store.new()
    store.set(box, "/a")
    store.attach(7, box)
    for change in (lambda: lib.umlpy_cache_clear(cache), lambda: store.set(box, "/b"),
                   lambda: store.set(box, None), store.bump):
        epoch = lib.umlpy_cwd_epoch(cache)
        change()
        before = c_view(cache, 7)
        assert lib.umlpy_cwd_move(cache, 7, b"/c", epoch) == 0
        assert c_view(cache, 7) == before
    assert lib.umlpy_cwd_move(cache, 7, b"/c", lib.umlpy_cwd_epoch(cache)) == 1
    assert c_view(cache, 7) == "/c"
