#!/bin/bash
# Runs in the fresh namespaces run.sh made (network: loopback only; mount; pid): mounts what a
# booted machine has in ROOT, makes ROOT the root of the namespace and execs COMMAND in it.
#   enter.sh ROOT plain|systemd COMMAND...
# systemd: a read-only /sys with the namespace's own cgroup2 tree and a /run tmpfs, for
# systemd as PID 1 (the container interface: env container=...).
set -euo pipefail
r=$1 mode=$2
shift 2
ip link set lo up
# "/" of the chroot is a mount point, as on a real machine; every mount ends with the namespace.
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
if [ "$mode" = systemd ]; then
  mount -t sysfs -o ro sysfs "$r/sys"
  mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
  mount -t tmpfs -o mode=755,size=64m tmpfs "$r/run"
else
  mount --rbind /sys "$r/sys"
fi
mount -t tmpfs -o mode=755,size=16m tmpfs "$r/dev"
for d in null zero full random urandom tty; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=1777,size=512m tmpfs "$r/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
# pivot_root, not a bare chroot: the kernel refuses unprivileged user namespaces (bwrap,
# Chromium) to a chrooted process, so the new tree becomes the root of the namespace.
cd "$r" && mkdir -p .oldroot && pivot_root . .oldroot
exec chroot . /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot && exec "$@"' enter "$@"
