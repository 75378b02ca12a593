"""A cache bounded by bytes, not entries (issue 12): what a guest can make
the guest kernel remember (listings, path lookups, socket names) must not
grow umlpy's memory without bound, however the guest varies the keys (new
fds, new threads, new paths to the same object).  Sizes are estimates of
the Python objects kept; the least recently used entries go first."""
from collections import OrderedDict

# What a small Python object costs beyond its text: a str's header, a
# tuple's, a dict slot's (CPython, 64-bit).
OBJECT_BYTES = 64


def text_bytes(*texts):
    """An estimate of the memory some str/bytes keys or values take."""
    return sum(len(t) + OBJECT_BYTES for t in texts)


class ByteBoundedCache:
    """key -> value, holding at most limit bytes (as the sizes given with
    each value say), least recently used first out.  A value larger than
    the limit alone is kept alone (the one being used: a huge directory's
    listing is still read in one pass) until the next one comes."""
    __slots__ = ("limit", "used", "_items")

    def __init__(self, limit):
        self.limit = limit
        self.used = 0
        self._items = OrderedDict()     # key -> (value, size)

    def get(self, key, default=None):
        item = self._items.get(key)
        if item is None:
            return default
        self._items.move_to_end(key)
        return item[0]

    def __contains__(self, key):
        return key in self._items

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    def put(self, key, value, size):
        """Keep value under key (size: its estimated bytes, key included)."""
        self.pop(key)
        self._items[key] = (value, size)
        self.used += size
        while self.used > self.limit and len(self._items) > 1:
            _key, (_value, gone) = self._items.popitem(last=False)
            self.used -= gone
        return value

    def pop(self, key, default=None):
        item = self._items.pop(key, None)
        if item is None:
            return default
        self.used -= item[1]
        return item[0]

    def clear(self):
        self._items.clear()
        self.used = 0
