"""The command line of umlpy export and umlpy import (oci.py does the
work): their help, their words, and their errors as one line."""
import sys

from ..errors import BadInput, UmlpyError
from .oci import export_sandbox, import_sandbox

ABOUT = {
    "export": ("NAME -o FILE.tar",
               "Write the sandbox as an OCI image layout in one tar file: its --rootfs\n"
               "and --layer images as they are (a directory --rootfs packed into a layer),\n"
               "then its upper layer, with OCI whiteouts for what the guest deleted and\n"
               "the owners the guest sees; its run options and INIT go with it.\n"
               "'umlpy import' makes a sandbox of it again, here or on another machine;\n"
               "skopeo, umoci and other OCI tools read it (oci-archive:FILE.tar).\n"
               "A sandbox over the host's own tree (no --rootfs) cannot be exported: make\n"
               "it with --rootfs.  A running sandbox may change its upper layer during the\n"
               "export, which then holds some of the changes (as docker export); stop it\n"
               "first for a consistent image.  -o - writes to stdout."),
    "import": ("[--keep-host-options] FILE.tar NAME",
               "Make the sandbox NAME from an OCI image layout in FILE.tar (umlpy export's,\n"
               "or any image with tar or tar+gzip layers): every blob is verified; its\n"
               "layers are kept in the sandbox's record, its upper layer starts empty.  The\n"
               "run options umlpy export kept come back, except those that reach the host\n"
               "(--bind, --host-root, --preserve-fds, --break, --id-block), which an\n"
               "archive from elsewhere must not choose: --keep-host-options keeps them.\n"
               "Another image's Env, WorkingDir and Entrypoint/Cmd become -e, -C and INIT."),
}


def usage(command):
    return f"usage: umlpy {command} {ABOUT[command][0]}"


def help_text(command):
    return f"{usage(command)}\n\n{ABOUT[command][1]}\n"


def _parse(command, words, flags, valued):
    """words -> ({keyword: value}, [other words]); options may come
    before and after the others."""
    given, rest, i = {}, [], 0
    while i < len(words):
        word = words[i]
        if word in ("-h", "--help"):
            sys.stdout.write(help_text(command))
            raise SystemExit(0)
        if word == "--":
            rest += words[i + 1:]
            break
        key, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if key in flags and not eq:
            given[flags[key]] = True
        elif key in valued:
            if not eq:
                i += 1
                if i >= len(words):
                    raise BadInput(f"umlpy {command}: {key} needs a value ({usage(command)})")
                inline = words[i]
            given[valued[key]] = inline
        elif word.startswith("-") and word != "-":
            raise BadInput(f"umlpy {command}: unknown option {word} ({usage(command)})")
        else:
            rest.append(word)
        i += 1
    return given, rest


def _one_line_errors(body):
    """An OSError (a full disk, an unreadable file) as umlpy's one line."""
    def wrapped(words):
        try:
            return body(words)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            command = body.__name__[len("cmd_"):]
            raise UmlpyError(f"umlpy {command}: {where}{e.strerror or e}") from None
    wrapped.__name__ = body.__name__
    wrapped.__doc__ = body.__doc__
    return wrapped


@_one_line_errors
def cmd_export(words):
    from .registry import Record
    given, rest = _parse("export", words, {}, {"-o": "output", "--output": "output"})
    if len(rest) != 1:
        raise BadInput(f"umlpy export: {usage('export')}")
    if not given.get("output"):
        raise BadInput(f"umlpy export: -o FILE.tar is needed ({usage('export')})")
    record = Record(rest[0])
    record.data()
    # An ordinary user's sandbox has files of the user's subordinate ids,
    # which only the user's namespace of them may read (as umlpy run does).
    from ..kernel.identity import enter_subordinate_namespace
    status = enter_subordinate_namespace(["export", *words])
    if status is not None:
        return status
    export_sandbox(record, given["output"])
    return 0


@_one_line_errors
def cmd_import(words):
    given, rest = _parse("import", words, {"--keep-host-options": "keep_host"}, {})
    if len(rest) != 2:
        raise BadInput(f"umlpy import: {usage('import')}")
    tar_path, name = rest
    for note in import_sandbox(tar_path, name, bool(given.get("keep_host"))):
        print(note, file=sys.stderr)
    print(name)
    return 0


COMMANDS = {"export": cmd_export, "import": cmd_import}


def main(command, words):
    """The command alone, as umlpy's main runs one: its errors as one line
    on stderr and their exit status."""
    from ..errors import one_line
    try:
        return COMMANDS[command](list(words))
    except UmlpyError as e:
        msg = one_line(str(e))
        print(msg if msg.startswith("umlpy") else f"umlpy: {msg}", file=sys.stderr)
        return e.exit_status
