#!/usr/bin/env bash
# Installs the Debian packages the test suite uses as independent checkers and fixture builders
# (mkfs, fsck, debugfs, mtools, ntfs-3g, sfdisk/sgdisk, partclone, qemu), the Ceph radosgw
# the S3 tests run against (scripts/ceph-rgw-up.sh), and chromium for the dashboard's browser
# tests (driven headless by playwright-core). Idempotent; skips apt
# entirely when everything is present.
set -euo pipefail
pkgs=(e2fsprogs dosfstools mtools ntfs-3g fdisk gdisk parted partclone qemu-utils fuse3 attr util-linux
      qemu-system-x86 syslinux syslinux-common syslinux-efi grub-pc-bin grub-common grub2-common ovmf busybox-static cpio
      zstd libzstd1
      ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl
      chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
