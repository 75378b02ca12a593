"""cffi build script for umlpy's native tracer (API mode, out-of-line).

setup.py names it in ``cffi_modules``; it can also be run by hand:
``python umlpy/_native/build_tracer.py`` builds the extension in place.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "tracer_api.h")) as f:
    ffibuilder.cdef(f.read())

ffibuilder.set_source(
    "umlpy._native._tracer",
    '#include "tracer_api.h"\n',
    sources=[os.path.relpath(os.path.join(HERE, name)) for name in ("tracer.c", "pathcache.c", "pathtree.c", "workdir.c", "notify.c",
                                                             "opener.c")],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.dirname(HERE)))
    ffibuilder.compile(verbose=False)
