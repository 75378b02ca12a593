"""An OCI image layout (image-spec v1.0: ``oci-layout``, ``index.json``,
``blobs/sha256/``) as one uncompressed tar file: written by
``umlpy export``, read and verified by ``umlpy import``.

Reading trusts nothing of the archive: its own members must be plain
files and directories with relative names and no '..' (a symlink, a hard
link or a device is refused, and so is a name given twice); nothing is
extracted by a member's name, only blobs by their digest, each verified
(digest and size) as it is copied."""
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
import time
import zlib

from ..errors import BadInput

LAYOUT_VERSION = "1.0.0"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# what docker save writes, and skopeo copies as is
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"

_DIGEST = re.compile(r"sha256:([a-f0-9]{64})\Z")
# the image-spec's grammar of a reference name
_REF = re.compile(r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
                  r"(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*\Z")
_JSON_MAX = 4 << 20          # a manifest, a config or an index bigger than this is no one's


class LayoutError(BadInput):
    """The archive is no OCI image layout umlpy can import (one line)."""


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ref_name(name):
    return name if _REF.match(name) else "latest"


def _json_bytes(data):
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


def sha256_file(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(shutil.COPY_BUFSIZE)
            if not chunk:
                return h.hexdigest(), size
            h.update(chunk)
            size += len(chunk)


# writing ---------------------------------------------------------------------

class _Hashing:
    """A file object read through, checked against the digest it had."""

    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def read(self, n=-1):
        data = self.f.read(n)
        self.h.update(data)
        return data


class LayoutWriter:
    """Writes an image layout, blob by blob, into the file object out."""

    def __init__(self, out):
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
        self.mtime = int(time.time())
        self.seen = set()
        self._add_bytes("oci-layout", _json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.mtime
            self.tar.addfile(info)

    def _add_bytes(self, name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, self.mtime
        self.tar.addfile(info, io.BytesIO(data))

    def add_json(self, media_type, data):
        """A JSON blob; its descriptor."""
        raw = _json_bytes(data)
        hexdigest = hashlib.sha256(raw).hexdigest()
        if hexdigest not in self.seen:
            self.seen.add(hexdigest)
            self._add_bytes(f"blobs/sha256/{hexdigest}", raw)
        return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": len(raw)}

    def add_file(self, media_type, path):
        """The file at path as a blob (hashed first: its name is its
        digest); its descriptor.  A file that changes meanwhile is refused."""
        hexdigest, size = sha256_file(path)
        if hexdigest not in self.seen:
            self.seen.add(hexdigest)
            info = tarfile.TarInfo(f"blobs/sha256/{hexdigest}")
            info.size, info.mode, info.mtime = size, 0o644, self.mtime
            with open(path, "rb") as f:
                reader = _Hashing(f)
                self.tar.addfile(info, reader)
                if reader.h.hexdigest() != hexdigest or f.read(1):
                    raise BadInput(f"umlpy export: {path} changed during the export")
        return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": size}

    def finish(self, manifest_desc, ref):
        manifest_desc = dict(manifest_desc, annotations={REF_NAME: ref},
                             platform={"architecture": "amd64", "os": "linux"})
        self._add_bytes("index.json", _json_bytes({
            "schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]}))
        self.tar.close()


# reading ---------------------------------------------------------------------

_KINDS = {tarfile.SYMTYPE: "a symlink", tarfile.LNKTYPE: "a hard link",
          tarfile.CHRTYPE: "a device", tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a fifo"}


def _safe_name(name):
    """The member name normalised, or None for one umlpy must not take."""
    if name.startswith("/") or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


class Layout:
    """An image layout in a tar file, its members checked; blobs are read
    only by digest, and verified."""

    def __init__(self, path):
        self.path = path
        try:
            self.file = open(path, "rb")
        except OSError as e:
            raise LayoutError(f"umlpy import: {path}: {e.strerror}") from None
        try:
            self.tar = tarfile.open(fileobj=self.file, mode="r:")
            self.members = self._check_members(self.tar)
        except tarfile.TarError as e:
            self.file.seek(0)
            if self.file.read(2) == b"\x1f\x8b":
                self.close()
                raise LayoutError(f"umlpy import: {path}: gzip-compressed; decompress it "
                                  "first (umlpy export writes an uncompressed tar)") from None
            self.close()
            raise LayoutError(f"umlpy import: {path}: truncated, or no uncompressed tar file "
                              f"({e})") from None
        except BaseException:
            self.close()
            raise

    def _check_members(self, tar):
        members = {}
        for m in tar:
            name = _safe_name(m.name)
            if name is None:
                raise LayoutError(f"umlpy import: {self.path}: refusing member {m.name!r} "
                                  "(an absolute name or one with '..')")
            if not (m.isreg() or m.isdir()):
                raise LayoutError(f"umlpy import: {self.path}: refusing member {m.name!r}, "
                                  f"{_KINDS.get(m.type, 'a special file')} (an OCI image "
                                  "layout holds only files and directories)")
            if name in members:
                raise LayoutError(f"umlpy import: {self.path}: member {name!r} is given twice")
            members[name] = m
        return members

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _member(self, name, what):
        m = self.members.get(name)
        if m is None or not m.isreg():
            raise LayoutError(f"umlpy import: {self.path}: no {what} ({name}): not an OCI "
                              "image layout, or an incomplete one")
        return m

    def _read_member(self, m, limit):
        if m.size > limit:
            raise LayoutError(f"umlpy import: {self.path}: {m.name} is too big ({m.size} bytes)")
        try:
            data = self.tar.extractfile(m).read()
        except (tarfile.TarError, OSError) as e:
            raise LayoutError(f"umlpy import: {self.path}: {m.name}: {e} (truncated?)") \
                from None
        if len(data) != m.size:
            raise LayoutError(f"umlpy import: {self.path}: {m.name} is truncated")
        return data

    def _json(self, raw, what):
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise LayoutError(f"umlpy import: {self.path}: {what} is not JSON ({e})") from None
        if not isinstance(data, dict):
            raise LayoutError(f"umlpy import: {self.path}: {what} is not a JSON object")
        return data

    def _blob(self, desc, what):
        if not isinstance(desc, dict):
            raise LayoutError(f"umlpy import: {self.path}: bad descriptor of the {what}")
        found = _DIGEST.match(str(desc.get("digest", "")))
        size = desc.get("size")
        if found is None or not isinstance(size, int) or size < 0:
            raise LayoutError(f"umlpy import: {self.path}: the {what}'s descriptor has no "
                              "sha256 digest and size")
        return found.group(1), size, self._member(f"blobs/sha256/{found.group(1)}",
                                                  f"blob of the {what}")

    def json_blob(self, desc, what):
        hexdigest, size, m = self._blob(desc, what)
        raw = self._read_member(m, _JSON_MAX)
        if len(raw) != size or hashlib.sha256(raw).hexdigest() != hexdigest:
            raise LayoutError(f"umlpy import: {self.path}: the {what} does not match its "
                              "digest (a corrupt archive)")
        return self._json(raw, f"the {what}")

    def copy_layer(self, desc, dest, what):
        """Verify the layer blob desc and write it uncompressed to dest;
        the sha256 hex digest of what was written (its diff_id)."""
        hexdigest, size, m = self._blob(desc, what)
        media = desc.get("mediaType")
        if m.size != size:
            raise LayoutError(f"umlpy import: {self.path}: the {what} is {m.size} bytes, "
                              f"its descriptor says {size} (a corrupt archive)")
        try:
            src = _Hashing(self.tar.extractfile(m))
            with open(dest, "wb") as out:
                if media in (LAYER_GZIP, DOCKER_LAYER_GZIP):
                    unpacked = _Hashing(gzip.GzipFile(fileobj=src, mode="rb"))
                    shutil.copyfileobj(unpacked, out, shutil.COPY_BUFSIZE)
                    while src.read(shutil.COPY_BUFSIZE):
                        pass        # the whole blob is hashed, not just the gzip stream
                    diff_id = unpacked.h.hexdigest()
                elif media == LAYER_TAR or media is None:
                    shutil.copyfileobj(src, out, shutil.COPY_BUFSIZE)
                    diff_id = src.h.hexdigest()
                else:
                    raise LayoutError(f"umlpy import: {self.path}: the {what} is {media}; "
                                      "umlpy takes tar and tar+gzip layers")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise LayoutError(f"umlpy import: {self.path}: the {what} is unreadable ({e})") \
                from None
        if src.h.hexdigest() != hexdigest:
            raise LayoutError(f"umlpy import: {self.path}: the {what} does not match its "
                              "digest (a corrupt archive)")
        return diff_id

    def image(self):
        """(manifest, config) of the layout's one image, each verified."""
        layout = self._json(self._read_member(self._member("oci-layout", "oci-layout file"),
                                              _JSON_MAX), "oci-layout")
        if layout.get("imageLayoutVersion") != LAYOUT_VERSION:
            raise LayoutError(f"umlpy import: {self.path}: image layout version "
                              f"{layout.get('imageLayoutVersion')!r}, not {LAYOUT_VERSION}")
        index = self._json(self._read_member(self._member("index.json", "index.json"),
                                             _JSON_MAX), "index.json")
        if index.get("schemaVersion") != 2 or not isinstance(index.get("manifests"), list):
            raise LayoutError(f"umlpy import: {self.path}: index.json is not an OCI image index")
        manifests = [d for d in index["manifests"]
                     if isinstance(d, dict) and d.get("mediaType") == MANIFEST]
        if len(manifests) != 1:
            raise LayoutError(f"umlpy import: {self.path}: holds {len(manifests)} image "
                              "manifests; umlpy import takes one")
        manifest = self.json_blob(manifests[0], "manifest")
        if manifest.get("schemaVersion") != 2 or \
                manifest.get("mediaType", MANIFEST) != MANIFEST or \
                not isinstance(manifest.get("layers"), list) or not manifest["layers"]:
            raise LayoutError(f"umlpy import: {self.path}: the manifest is not an OCI image "
                              "manifest with layers")
        config_desc = manifest.get("config")
        if not isinstance(config_desc, dict) or config_desc.get("mediaType") != CONFIG:
            raise LayoutError(f"umlpy import: {self.path}: the manifest's config is not "
                              f"{CONFIG}")
        config = self.json_blob(config_desc, "config")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids")
        if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest["layers"]):
            raise LayoutError(f"umlpy import: {self.path}: the config's rootfs.diff_ids do not "
                              "list the manifest's layers")
        return manifest, config


def check_diff_id(path, diff_id, wanted, n):
    if wanted != f"sha256:{diff_id}":
        raise LayoutError(f"umlpy import: {path}: layer {n} does not match the config's "
                          "diff_id (a corrupt archive)")
