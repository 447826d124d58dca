#!/bin/busybox sh
# The guest's /init (see xtask/src/vmtest/qemu.rs): mount the host's root
# read-only over virtio-9p under a tmpfs overlay, give it the kernel
# filesystems netwatch uses, run /cmd chrooted into it and report its exit
# status on the console, then power off. @WORDS@ are filled in by xtask.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
MARK='@MARKER@'
die() {
	echo "xtask vm (guest): $*"
	echo
	echo "$MARK setup-failed"
	poweroff -f
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
@TRACE@
for module in /early/*.ko; do
	[ -e "$module" ] || continue
	insmod "$module" || die "insmod $module failed"
done
# msize: bigger messages make 9p much faster; older kernels lower it to their maximum.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /lower ||
	die "mounting the host's root over virtio-9p failed"
mount -t tmpfs -o mode=0755 rw /rw && mkdir /rw/upper /rw/work || die "tmpfs for the overlay failed"
# Writes land in guest memory and vanish at power-off; the host never sees them.
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	die "the overlay on the host's root failed"
R=/newroot
mount -t proc proc $R/proc || die "proc"
mount -t sysfs sysfs $R/sys || die "sysfs"
mount -t devtmpfs devtmpfs $R/dev || die "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o mode=0620,ptmxmode=0666 devpts $R/dev/pts || die "devpts"
mount -t tmpfs -o mode=1777 shm $R/dev/shm || die "/dev/shm"
# The host's /run (its network namespaces, sockets) means nothing here.
mount -t tmpfs -o mode=0755 run $R/run || die "/run"
mount -t tracefs tracefs $R/sys/kernel/tracing || die "tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || die "debugfs"
mount -t bpf bpf $R/sys/fs/bpf || die "bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || die "cgroup2"
# The kernel runs /sbin/modprobe from this initramfs to autoload modules
# (inet_diag, tcp_diag, udp_diag, veth...): busybox's modprobe reads the
# guest kernel's own modules, bound where both roots expect them.
mkdir -p /lib/modules/@RELEASE@ $R/lib/modules/@RELEASE@
mount -o bind '/lower@MODULES@' /lib/modules/@RELEASE@ || die "binding the modules"
mount -o bind '/lower@MODULES@' $R/lib/modules/@RELEASE@ || die "binding the modules in the host root"
# The device nodes kmod makes at boot on a real system (modules.devname):
# opening one loads its module, e.g. /dev/fuse for podman's fuse-overlayfs.
while read -r module name dev; do
	case "$dev" in [cb][0-9]*:[0-9]*) ;; *) continue ;; esac
	numbers=${dev#?}
	case "$name" in */*) mkdir -p "$R/dev/${name%/*}" ;; esac
	[ -e "$R/dev/$name" ] || mknod "$R/dev/$name" "${dev%"$numbers"}" "${numbers%:*}" "${numbers#*:}" ||
		die "mknod /dev/$name for $module"
done </lib/modules/@RELEASE@/modules.devname
ip link set lo up || die "lo up"
hostname netwatch-vm
cp /cmd $R/run/netwatch-vm-cmd
chroot $R /usr/bin/env -i /bin/sh /run/netwatch-vm-cmd
status=$?
echo
echo "$MARK $status"
poweroff -f
