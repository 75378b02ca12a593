"""umlpy export and umlpy import: a named sandbox as an OCI image layout
(oci_layout.py) and back, to move it to another machine.

The image's layers are the sandbox's lower layers as they are (each tar
image of --rootfs and --layer; a directory --rootfs packed into one) and
its upper layer last, with OCI whiteouts and the owners its guest sees
(layer_tar.py, upper_owners.py).  Its run options travel in the image
config's label RUN_OPTIONS, its INIT as the config's Cmd.  Import
verifies every blob and makes a new record over the layers it copied
into the record's directory, with an empty upper layer.  Their command
line is oci_commands.py's."""
import json
import os
import sys
import tempfile

from ..errors import BadInput
from . import oci_layout as L

RUN_OPTIONS = "org.umlpy.run-options"
# Run options that reach the host: an archive may come from anyone, so
# import keeps them only when told (--keep-host-options).  A --bind names
# a path of the machine the sandbox was made on, besides.
HOST_OPTIONS = ("binds", "host_root", "preserve_fds", "breaks", "id_block")
# The lower layers and the upper are the image's own.
LAYER_OPTIONS = ("rootfs", "layers", "upper")


# umlpy run's option words ------------------------------------------------------

def option_spans(words, what):
    """umlpy run's option words -> [(keyword, [its words], value)], without
    checking values (they may name another machine's paths)."""
    from ..config.options import COMMAND_LINE
    from ..config.words import value_after
    by_flag = {f: opt for opt in COMMAND_LINE for f in opt.flags}
    spans, i = [], 0
    while i < len(words):
        word = words[i]
        if not isinstance(word, str):
            raise BadInput(f"{what}: {word!r} is not an option word")
        if word == "--":
            break
        key, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = by_flag.get(key)
        if opt is None:
            raise BadInput(f"{what}: {word!r} is no option of umlpy run")
        if opt.metavar is None:
            spans.append((opt.name, [word], True))
        else:
            j, value = value_after(words, i, inline if eq else None,
                                   f"{what}: {key} needs a value")
            if not isinstance(value, str):
                raise BadInput(f"{what}: {value!r} is not an option word")
            spans.append((opt.name, words[i:j + 1], value))
            i = j
        i += 1
    return spans


def _given(spans):
    given = {}
    for name, _words, value in spans:
        if name in ("layers", "binds", "tmpfs", "env", "breaks"):
            given.setdefault(name, []).append(value)
        else:
            given[name] = value
    return given


def _absolute(path, cwd):
    return os.path.normpath(os.path.join(cwd or "/", path))


# export ----------------------------------------------------------------------------

def _carried_words(spans, cwd):
    """The options that travel: all but the layers, a --bind's host path
    made absolute (it was relative to where create ran)."""
    out = []
    for name, words, value in spans:
        if name in LAYER_OPTIONS:
            continue
        if name == "binds" and not value.startswith("/"):
            out += [words[0] if len(words) == 2 else "--bind", _absolute(value, cwd)]
            continue
        out += list(words)
    return out


def _image_config(given, carried, init, diff_ids):
    config = {"Labels": {RUN_OPTIONS: json.dumps(carried)}}
    if given.get("env"):
        config["Env"] = list(given["env"])
    if init:
        config["Cmd"] = list(init)
    if given.get("cwd"):
        config["WorkingDir"] = _absolute(given["cwd"], "/")
    created = L.now_rfc3339()
    return {"created": created, "architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": "umlpy export"}]}


def _packed(pack_into, where):
    """A temporary file in the directory where, filled by pack_into(file)."""
    fd, path = tempfile.mkstemp(prefix=".umlpy-export.", suffix=".tar", dir=where)
    try:
        with os.fdopen(fd, "wb") as f:
            pack_into(f)
    except BaseException:
        os.unlink(path)
        raise
    return path


def export_sandbox(record, out_path):
    """Write the sandbox of record as an OCI image layout to out_path (a
    tar file, replaced only when complete; '-': stdout)."""
    from . import layer_tar, upper_owners
    data = record.data()
    cwd = data.get("cwd") or "/"
    spans = option_spans(list(data["words"]), f"umlpy export: {record.name}'s record")
    given = _given(spans)
    if given.get("rootfs") is None:
        raise BadInput(f"umlpy export: sandbox {record.name!r} runs over the host's own tree, "
                       "which cannot be exported: make it with --rootfs DIR or IMG.tar")
    rootfs = _absolute(given["rootfs"], cwd)
    images = [_absolute(p, cwd) for p in given.get("layers", [])]
    for path in [rootfs, *images]:
        if not os.path.exists(path):
            raise BadInput(f"umlpy export: {path}: No such file or directory (a lower layer "
                           f"of {record.name!r})")
    to_stdout = out_path == "-"
    if to_stdout and os.isatty(1):
        raise BadInput("umlpy export: refusing to write an archive to a terminal (-o FILE.tar)")
    where = tempfile.mkdtemp(prefix="umlpy-export.") if to_stdout else \
        os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(where):
        raise BadInput(f"umlpy export: -o {out_path}: {where} is not a directory")
    made = []
    try:
        if os.path.isdir(rootfs):
            made.append(_packed(lambda f: layer_tar.pack(rootfs, f), where))
            lowers = [made[-1]]
        else:
            lowers = [rootfs, *images]
        ids = upper_owners.layer_ids(upper_owners.guest_map(given, record.upper))
        made.append(_packed(lambda f: layer_tar.pack(record.upper, f, ids, upper=True), where))
        if to_stdout:
            sys.stdout.flush()
            _write_layout(os.fdopen(os.dup(1), "wb"), lowers + [made[-1]], given,
                          _carried_words(spans, cwd), data.get("init"), record.name)
        else:
            _write_layout_file(out_path, where, lowers + [made[-1]], given,
                               _carried_words(spans, cwd), data.get("init"), record.name)
    finally:
        for path in made:
            os.unlink(path)
        if to_stdout:
            os.rmdir(where)


def _write_layout_file(out_path, where, layers, given, carried, init, name):
    fd, tmp = tempfile.mkstemp(prefix=".umlpy-export.", dir=where)
    try:
        _write_layout(os.fdopen(fd, "wb"), layers, given, carried, init, name)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_layout(out, layers, given, carried, init, name):
    with out:
        writer = L.LayoutWriter(out)
        descs = [writer.add_file(L.LAYER_TAR, path) for path in layers]
        config = writer.add_json(L.CONFIG, _image_config(
            given, carried, init, [d["digest"] for d in descs]))
        manifest = writer.add_json(L.MANIFEST, {
            "schemaVersion": 2, "mediaType": L.MANIFEST, "config": config, "layers": descs,
            "annotations": {RUN_OPTIONS: json.dumps(carried),
                            L.CREATED: L.now_rfc3339()}})
        writer.finish(manifest, L.ref_name(name))


# import ----------------------------------------------------------------------------

def _words_of_image(config, tar_path, keep_host):
    """(run option words, INIT or None, [notes]) from an image config."""
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise L.LayoutError(f"umlpy import: {tar_path}: the image config's 'config' is not "
                            "an object")
    labels = inner.get("Labels") or {}
    notes = []
    if isinstance(labels, dict) and RUN_OPTIONS in labels:
        what = f"umlpy import: {tar_path}: label {RUN_OPTIONS}"
        try:
            words = json.loads(labels[RUN_OPTIONS])
        except (TypeError, ValueError):
            raise L.LayoutError(f"{what} is not a JSON list") from None
        if not isinstance(words, list):
            raise L.LayoutError(f"{what} is not a JSON list")
        kept = []
        for name, span, _value in option_spans(words, what):
            if name in LAYER_OPTIONS:
                continue
            if name in HOST_OPTIONS and not keep_host:
                notes.append(f"umlpy import: not kept (it reaches the host; "
                             f"--keep-host-options keeps it): {' '.join(span)}")
                continue
            kept += span
    else:
        kept = [f"--env={item}" for item in inner.get("Env") or [] if _is_text(item)]
        if _is_text(inner.get("WorkingDir")) and inner["WorkingDir"]:
            kept.append(f"--cwd={inner['WorkingDir']}")
    init = []
    for key in ("Entrypoint", "Cmd"):
        part = inner.get(key)
        if isinstance(part, list) and all(_is_text(w) for w in part):
            init += part
    return kept, init or None, notes


def _is_text(value):
    return isinstance(value, str) and "\0" not in value


def _check_image(path, tar_path, n):
    """A layer umlpy could not run over is refused now, not at start (its
    index is built meanwhile, and kept beside it)."""
    from ..kernel.vfs.tarimage import open_image
    try:
        open_image(path, progress=False).close()
    except BadInput as e:
        detail = str(e).rpartition(": not a valid tar image: ")[2]
        raise L.LayoutError(f"umlpy import: {tar_path}: layer {n} is no tar image umlpy "
                            f"can read ({detail})") from None


def import_sandbox(tar_path, name, keep_host=False):
    """Make the sandbox name from the image layout in tar_path; [notes]
    (options not kept).  Nothing is left behind when it fails."""
    from ..kernel.vfs.tmpdirs import remove_tree
    from .registry import Record
    record = Record(name)
    if record.exists():
        raise BadInput(f"umlpy: a sandbox named {name!r} already exists")
    root = os.path.dirname(record.dir)
    os.makedirs(root, mode=0o711, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".import-{name}.", dir=root)
    try:
        with L.Layout(tar_path) as layout:
            manifest, config = layout.image()
            words, init, notes = _words_of_image(config, tar_path, keep_host)
            os.mkdir(os.path.join(staging, "layers"), 0o755)
            diff_ids = config["rootfs"]["diff_ids"]
            for n, desc in enumerate(manifest["layers"]):
                dest = os.path.join(staging, "layers", f"{n}.tar")
                diff_id = layout.copy_layer(desc, dest, f"layer {n}")
                L.check_diff_id(tar_path, diff_id, diff_ids[n], n)
                os.chmod(dest, 0o644)
                _check_image(dest, tar_path, n)
        layers = [os.path.join(record.dir, "layers", f"{n}.tar")
                  for n in range(len(manifest["layers"]))]
        lower = ["--rootfs", layers[0]]
        for path in layers[1:]:
            lower += ["--layer", path]
        record.create(lower + words, init, record.dir)
        try:
            with record.locked():
                os.rename(os.path.join(staging, "layers"), record.path("layers"))
        except BaseException:
            record.remove()
            raise
    finally:
        remove_tree(staging)
    return notes
