"""Named struct layouts: a ``struct.Struct`` whose fields have names.

A layout is declared as its fields in order, each ``(name, code)`` with
a ``struct`` code (``None`` as the name for padding, e.g. ``(None, "4x")``);
x86_64 little-endian, with the C compiler's padding written out, so that
the offsets are Linux's.  ``pack``/``unpack``/``unpack_from`` are the
``Struct``'s own (positional, in field order); ``todict``/``fromdict``
go through names, ``get`` reads one field, ``offset`` says where it is."""
import struct


class Layout:
    __slots__ = ("name", "fields", "offsets", "size", "format", "struct", "pack",
                 "pack_into", "unpack", "unpack_from", "_codes", "_one", "_specs")

    def __init__(self, name, fields):
        self.name = name
        self._specs = tuple(fields)
        codes, names, offsets, one = [], [], {}, {}
        off = 0
        for fname, code in self._specs:
            if fname is not None:
                names.append(fname)
                offsets[fname] = off
                one[fname] = code
            codes.append(code)
            off += struct.calcsize("<" + code)
        self.format = "<" + "".join(codes)
        self.struct = s = struct.Struct(self.format)
        assert s.size == off, name
        self.size = s.size
        self.fields = tuple(names)
        self.offsets = offsets
        self._codes = one
        self._one = {}
        self.pack, self.pack_into = s.pack, s.pack_into
        self.unpack, self.unpack_from = s.unpack, s.unpack_from

    def offset(self, field):
        return self.offsets[field]

    def code(self, field):
        """The field's struct code ("I", "Q", "65s"...)."""
        return self._codes[field]

    def field_size(self, field):
        return struct.calcsize("<" + self._codes[field])

    def get(self, data, field, offset=0):
        """One field's value, read from data at offset (where the struct starts)."""
        s = self._one.get(field)
        if s is None:
            s = self._one[field] = struct.Struct("<" + self._codes[field])
        return s.unpack_from(data, offset + self.offsets[field])[0]

    def todict(self, data, offset=0):
        return dict(zip(self.fields, self.unpack_from(data, offset)))

    def fromdict(self, values):
        """The bytes of a struct with these fields (others zero)."""
        return self.pack(*(values.get(f, b"" if self._codes[f].endswith("s") else 0)
                           for f in self.fields))

    def prefix(self, last):
        """The layout of the struct's first fields, up to and including last
        (what a reader that needs only those reads)."""
        specs = []
        for spec in self._specs:
            specs.append(spec)
            if spec[0] == last:
                return Layout(self.name, specs)
        raise KeyError(last)

    def __repr__(self):
        return f"<Layout {self.name} {self.format} ({self.size} bytes)>"
