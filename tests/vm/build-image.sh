#!/usr/bin/env bash
# Builds (or reuses) the VM lab's guest: a Debian bookworm root filesystem with systemd and udev,
# the collector at /usr/bin/forensic-collector, its unit enabled, and the lab's configuration
# (tests/vm/guest/). Prints the directory holding rootfs.img, vmlinuz and initrd.img.
#
#   tests/vm/build-image.sh BINARY          (root; called by tests/vm/run.sh)
#
# Two cached stages under $VM_CACHE (default /var/tmp/fc-vm), each keyed by a hash of its inputs:
#   base-KEY/   mmdebstrap's tree, kernel and initrd (≈ 40 s; the key is this script), rebuilt only
#               when the package list or the hooks below change;
#   image-KEY/  rootfs.img = base + binary + unit + guest/ (≈ 5 s with mkfs.ext4 -d; the key adds
#               those files), so a new build of the collector costs seconds, not a debootstrap.
# No loop mounts: mkfs.ext4 -d writes the tree into the image file directly.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BINARY=${1:?usage: build-image.sh BINARY}
CACHE=${VM_CACHE:-/var/tmp/fc-vm}
UNIT=$REPO/systemd/forensic-collector.service
# 1 GiB, sparse: the tree takes ≈ 630 MB; the guest writes to a QEMU snapshot overlay, never here.
IMG_SIZE=1G
mkdir -p "$CACHE"

# The mirror this machine's apt already uses: the guest's packages come from the same place.
host_mirror() {
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep . ||
    awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}

# The base: minbase + what a collector instance runs: systemd (the unit, poweroff), udev (the
# /dev/disk links the daemon watches), kmod (udev loads nvme on hot-plug), iproute2 for debugging.
# The initrd needs only virtio (root disk) and ext4: MODULES=list keeps it ≈ 7 MB.
# Root gets no password, the serial getty is masked (its vhangup() swallows service output on
# the console), timers that would only cost CPU under TCG are masked.
# These arguments are the base's cache key: changing them rebuilds it, nothing else does.
# The hooks are single-quoted on purpose: mmdebstrap runs them with $1 = the new root.
# shellcheck disable=SC2016,SC2054
BASE_ARGS=(
  --variant=minbase --mode=root --quiet
  --include=systemd,systemd-sysv,udev,linux-image-amd64,kmod,util-linux,iproute2,procps
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"; echo MODULES=list > "$1/etc/initramfs-tools/conf.d/lab.conf"; printf "virtio_pci\nvirtio_blk\next4\n" > "$1/usr/share/initramfs-tools/modules.d/lab"'
  --customize-hook='chroot "$1" /bin/sh -ec "
     echo fc-vm > /etc/hostname; passwd -d root;
     echo LABEL=ROOT / ext4 rw,noatime 0 1 > /etc/fstab;
     systemctl enable systemd-networkd systemd-networkd-wait-online;
     systemctl mask serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
       e2scrub_all.timer fstrim.timer systemd-timesyncd.service"'
  bookworm
)
base_key=$(printf '%s\n' "${BASE_ARGS[@]}" | sha256sum | cut -c1-16)
base=$CACHE/base-$base_key
if [ ! -f "$base/done" ]; then
  mirror=$(host_mirror)
  [ -n "$mirror" ] || { echo "build-image: no apt mirror found in /etc/apt" >&2; exit 1; }
  rm -rf "$base" "$base.tmp"
  mkdir -p "$base.tmp"
  echo "build-image: mmdebstrap bookworm from $mirror (≈ 40 s, once per change of BASE_ARGS)" >&2
  timeout 900 mmdebstrap "${BASE_ARGS[@]}" "$base.tmp/root" "$mirror" >&2
  cp -L "$base.tmp"/root/boot/vmlinuz-* "$base.tmp/vmlinuz"
  cp -L "$base.tmp"/root/boot/initrd.img-* "$base.tmp/initrd.img"
  touch "$base.tmp/done"
  mv "$base.tmp" "$base"
  # Older bases are dead weight (≈ 650 MB each).
  find "$CACHE" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" -exec rm -rf {} +
fi

image_key=$( { echo "$base_key"; sha256sum "$BINARY" "$UNIT" "$HERE/build-image.sh";
  (cd "$HERE/guest" && find . -type f | sort | xargs sha256sum); } | sha256sum | cut -c1-16)
image=$CACHE/image-$image_key
if [ ! -f "$image/rootfs.img" ]; then
  rm -rf "$image.tmp"
  mkdir -p "$image.tmp"
  # A hard-linked copy of the base (≈ 1 s); files are only added to it, or replaced with
  # --remove-destination, so the base's inodes are never written.
  cp -al "$base/root" "$image.tmp/root"
  cp -r --remove-destination "$HERE/guest/." "$image.tmp/root/"
  # Without debug info (as a package ships it): 160 MB less to write into every image.
  strip --strip-debug -o "$image.tmp/root/usr/bin/forensic-collector" "$BINARY"
  chmod 0755 "$image.tmp/root/usr/bin/forensic-collector"
  # Where a package puts it (bookworm's /lib is /usr/lib), enabled as `systemctl enable` would.
  install -m 0644 "$UNIT" "$image.tmp/root/usr/lib/systemd/system/forensic-collector.service"
  mkdir -p "$image.tmp/root/etc/systemd/system/multi-user.target.wants"
  ln -sf /usr/lib/systemd/system/forensic-collector.service \
    "$image.tmp/root/etc/systemd/system/multi-user.target.wants/forensic-collector.service"
  truncate -s "$IMG_SIZE" "$image.tmp/rootfs.img"
  mkfs.ext4 -q -F -L ROOT -d "$image.tmp/root" "$image.tmp/rootfs.img"
  rm -rf "$image.tmp/root"
  ln "$base/vmlinuz" "$image.tmp/vmlinuz"
  ln "$base/initrd.img" "$image.tmp/initrd.img"
  mv "$image.tmp" "$image"
  # Keep only the newest image: each is a 1 GiB sparse file (≈ 630 MB on disk).
  find "$CACHE" -maxdepth 1 -name 'image-*' ! -name "image-$image_key" -exec rm -rf {} +
fi
echo "$image"
