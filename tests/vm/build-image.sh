#!/usr/bin/env bash
# Builds (or reuses) the VM lab's guest: a Debian bookworm root filesystem with systemd and udev,
# the collector's .deb installed with dpkg as on a collector AMI (its unit enabled by the package,
# not by this script), and the lab's additions (tests/vm/guest/). Prints the directory holding
# rootfs.img, vmlinuz and initrd.img.
#
#   tests/vm/build-image.sh PACKAGE.deb     (root; called by tests/vm/run.sh)
#
# Two cached stages under $VM_CACHE (default /var/tmp/fc-vm), each keyed by a hash of its inputs:
#   base-KEY/   mmdebstrap's tree, kernel and initrd (≈ 40-90 s; the key is the arguments below),
#               rebuilt only when the package list or the hooks change;
#   image-KEY/  rootfs.img = base + `dpkg -i PACKAGE.deb` + guest/ (≈ 10 s with mkfs.ext4 -d; the
#               key adds those files), so a new package costs seconds, not a debootstrap.
# No loop mounts: mkfs.ext4 -d writes the tree into the image file directly.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEB=${1:?usage: build-image.sh PACKAGE.deb}
CACHE=${VM_CACHE:-/var/tmp/fc-vm}
# 1 GiB, sparse: the tree takes ≈ 630 MB; the guest writes to a QEMU snapshot overlay, never here.
IMG_SIZE=1G
mkdir -p "$CACHE"

# The mirror this machine's apt already uses: the guest's packages come from the same place.
host_mirror() {
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep . ||
    awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}

# The base: minbase + what a collector instance runs: systemd (the unit, poweroff), udev (the
# /dev/disk links the daemon watches), kmod (udev loads nvme on hot-plug), ca-certificates (the
# package's dependency, installed here because dpkg -i resolves nothing), qemu-guest-agent (the
# host runs commands in the guest through it, as SSM Run Command does on EC2), iproute2 for
# debugging.
# The initrd needs only virtio (root disk) and ext4: MODULES=list keeps it ≈ 7 MB.
# Root gets no password, the serial getty is masked (its vhangup() swallows service output on
# the console), timers that would only cost CPU under TCG are masked.
# These arguments are the base's cache key: changing them rebuilds it, nothing else does.
# The hooks are single-quoted on purpose: mmdebstrap runs them with $1 = the new root.
# shellcheck disable=SC2016,SC2054
BASE_ARGS=(
  --variant=minbase --mode=root --quiet
  --include=systemd,systemd-sysv,udev,linux-image-amd64,kmod,util-linux,iproute2,procps,ca-certificates,qemu-guest-agent
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

image_key=$( { echo "$base_key"; sha256sum "$DEB" "$HERE/build-image.sh";
  (cd "$HERE/guest" && find . -type f | sort | xargs sha256sum); } | sha256sum | cut -c1-16)
image=$CACHE/image-$image_key
if [ ! -f "$image/rootfs.img" ]; then
  rm -rf "$image.tmp"
  mkdir -p "$image.tmp"
  # A full copy of the base (≈ 3 s): dpkg writes into the tree, so no hard links to it.
  cp -a "$base/root" "$image.tmp/root"
  # The package, installed as an AMI build installs it: its postinst enables the unit (no systemd
  # runs in the chroot, so nothing is started), its config file lands as a conffile.
  cp "$DEB" "$image.tmp/root/tmp/forensic-collector.deb"
  chroot "$image.tmp/root" dpkg -i /tmp/forensic-collector.deb >&2
  rm "$image.tmp/root/tmp/forensic-collector.deb"
  [ -L "$image.tmp/root/etc/systemd/system/multi-user.target.wants/forensic-collector.service" ] ||
    { echo "build-image: the package did not enable forensic-collector.service" >&2; exit 1; }
  cp -r --remove-destination "$HERE/guest/." "$image.tmp/root/"
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
