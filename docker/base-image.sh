#!/usr/bin/env bash
# A Debian base image (bookworm: Python 3.11.2; trixie: Python 3.13; its venv module, pip) made without an image registry:
# debootstrap from the Debian mirror apt uses on this machine, then 'docker import'. The host's locally
# added CA certificates (/usr/local/share/ca-certificates, which update-ca-certificates puts in the system
# bundle) go into the image, and pip's cert points at that bundle: behind a TLS-inspecting proxy, pip in a
# container reaches the package registry the way the host's pip does only then.
#
#   docker/base-image.sh [NAME]      # default seq2cnn-base:bookworm; seq2cnn-base:trixie for Debian 13; the tag
#                                    # names the Debian suite; about 1.5 minutes; needs root and debootstrap
#
# Then: docker build --network host --build-arg BASE_IMAGE=seq2cnn-base:bookworm ... (docker/test.sh does).
set -euo pipefail

name=${1:-seq2cnn-base:bookworm}
suite=${name##*:}

fail() { echo "docker/base-image.sh: $*" >&2; exit 2; }

case "$suite" in bookworm|trixie) ;; *) fail "the image's tag names the Debian suite: seq2cnn-base:bookworm (Python 3.11) or seq2cnn-base:trixie (Python 3.13), not '$suite'";; esac

[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root: run it as root (sudo docker/base-image.sh)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed: apt-get install debootstrap"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers (docker info): start one, or run docker/test.sh, which does"

# The mirror apt uses here: the first deb822 'URIs:' line, else the first 'deb' line of sources.list.
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /var/tmp/seq2cnn-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; fail "debootstrap failed (log above)"; }
rm -f "$rootfs.log"

shopt -s nullglob
local_cas=(/usr/local/share/ca-certificates/*.crt)
if [ ${#local_cas[@]} -gt 0 ]; then
    cp "${local_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates > /dev/null
    echo "added the host's local CA certificates: ${local_cas[*]##*/}"
fi
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$name" > /dev/null
echo "made $name: $(docker run --rm "$name" python3 --version)"
