"""Who owns a sandbox's upper files, as its guest sees them.

The host owners of an upper layer are the guest's ids through the user
namespace map the sandbox ran with (kernel/identity.py): as root, a block
of 65536 host ids (the one the upper's top directory belongs to, or
--id-block), or host ids themselves with --host-root; as an ordinary
user, the user (the guest's own id, 0 with --root) and the user's
subordinate ids, or the user alone.  An exported layer must hold the
guest's ids, which mean the same on any host; a host id the map does not
cover shows as the overflow id, as Linux shows it to the guest."""
import os

from ..config import values as V
from ..kernel import identity as I
from ..kernel.vfs.creds import IdMap


def _compose(first, then):
    """Host id -> guest id through two maps: host -> namespace (first),
    namespace -> guest (then), each as IdMap ranges (inside, outside)."""
    out = []
    for mid, host, count in first:
        for guest, mid2, count2 in then:
            lo, hi = max(mid, mid2), min(mid + count, mid2 + count2)
            if lo < hi:
                out.append((guest + lo - mid2, host + lo - mid, hi - lo))
    return out


def guest_map(given, upper):
    """The IdMap the sandbox's guest saw its upper layer's owners through
    (given: the record's run options, parsed; upper: its directory)."""
    entered = I.entered_ids()
    if os.geteuid() == 0 and entered is None:
        if given.get("host_root"):
            return IdMap()
        first = given.get("id_block")
        first = V.host_id_block("--id-block", first) if first is not None \
            else I.block_of_upper(upper)
        if first is None:
            return IdMap()          # never run: nothing in it has an owner of the guest's
        uids, gids = I.block_maps(first)
        return IdMap(uid_ranges=uids, gid_ranges=gids)
    uid, gid = entered if entered is not None else (os.geteuid(), os.getegid())
    own_uid, own_gid = (0, 0) if given.get("root") else (uid, gid)
    if entered is not None:
        # in the user's subordinate namespace (umlpy export enters it to
        # read every file): owners show as its ids, the guest's through
        # the map umlpy run gave the guest there
        uids, gids = I.entered_maps(own_uid, own_gid)
        return IdMap(uid_ranges=uids, gid_ranges=gids)
    sub = I.subordinate_maps(uid, gid)
    if sub is None:
        return IdMap(uid_ranges=[(own_uid, uid, 1)], gid_ranges=[(own_gid, gid, 1)])
    # host -> the user's subordinate namespace (the user 0, subordinate
    # ids 1..) -> the guest's ids in it (identity.entered_maps)
    host_uids, host_gids, _, _ = sub
    guest_uids, guest_gids = I.entered_maps(own_uid, own_gid)
    return IdMap(uid_ranges=_compose(host_uids, guest_uids),
                 gid_ranges=_compose(host_gids, guest_gids))


def layer_ids(idmap):
    """(host uid, host gid) -> (guest uid, guest gid), for layer_tar.pack."""
    return lambda uid, gid: (idmap.uid_in(uid), idmap.gid_in(gid))
