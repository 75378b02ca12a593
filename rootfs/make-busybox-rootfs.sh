#!/bin/sh
# Build a minimal guest root directory from Debian's busybox-static:
#   rootfs/make-busybox-rootfs.sh DIR && umlpy run --rootfs DIR -- /bin/sh
set -eu
dest=${1:?usage: $0 DIR}
busybox=$(command -v busybox) || { echo "$0: busybox not found (apt-get install busybox-static)" >&2; exit 2; }
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    case "$(ldd "$busybox" 2>&1)" in
        *"not a dynamic executable"*) ;;
        *) echo "$0: $busybox is not static (apt-get install busybox-static)" >&2; exit 2 ;;
    esac
fi
mkdir -p "$dest/bin" "$dest/etc" "$dest/tmp" "$dest/root" "$dest/proc" "$dest/dev"
cp "$busybox" "$dest/bin/busybox"
for tool in $("$dest/bin/busybox" --list); do
    [ -e "$dest/bin/$tool" ] || ln -s busybox "$dest/bin/$tool"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$dest/etc/passwd"
echo "root:x:0:" > "$dest/etc/group"
echo "umlpy-guest" > "$dest/etc/hostname"
chmod 1777 "$dest/tmp"
echo "guest root in $dest: umlpy run --rootfs $dest -- /bin/sh"
