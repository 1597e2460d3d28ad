"""The lab's Debian 12 base image: a data-only recipe, its hash, and the build that executes it.

Everything that changes the image's content lives in :class:`ImageRecipe` (packages, mirror,
files written into the root filesystem, commands run in it, kernel command line, the admin
path), so ``recipe_hash`` is a faithful cache key: an unchanged recipe reuses
``.lab/images/<hash>/``, any change builds a new image next to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from citadelle.errors import CitadelleError

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEFAULT_ADMIN_USER = "citadelle-admin"
DEFAULT_ADMIN_GROUP = "citadelle-admins"
DEFAULT_IMAGE_SIZE_MIB = 4096
# What GRUB adds to every kernel command line of the lab (its only console is the serial port).
DEFAULT_KERNEL_CMDLINE = "console=ttyS0"
# The root partition starts at 1 MiB: the gap before it holds GRUB's core image (BIOS boot).
PARTITION_OFFSET_MIB = 1
ROOT_LABEL = "citadelle-root"
# Run as init by the image's first boot (direct kernel boot): installs GRUB, then powers off.
GRUB_INSTALLER = "/usr/local/sbin/citadelle-install-grub"
GRUB_INSTALLED_MARKER = "citadelle-lab: grub installed"
GRUB_INSTALL_TIMEOUT_S = 900.0

# What a Debian 12 server needs to boot under qemu and be driven by Ansible over SSH.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd-sysv", "systemd", "udev", "dbus", "openssh-server", "python3", "python3-apt",
    "sudo", "linux-image-amd64", "iproute2", "procps", "kmod", "ca-certificates", "netbase",
    "grub-pc",
)
# Pre-installed so a hardening converge under TCG does not spend minutes downloading.
HARDENING_PACKAGES: tuple[str, ...] = (
    "nftables", "chrony", "auditd", "aide", "aide-common", "libpam-pwquality",
    "unattended-upgrades", "systemd-journal-remote", "apparmor", "acct",
)
# The initramfs only needs to find an ext4 root on a virtio disk: 6 MB instead of 36 MB.
INITRAMFS_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
MASKED_UNITS: tuple[str, ...] = (
    "systemd-firstboot.service",  # prompts on the console when /etc/machine-id is empty
    "systemd-networkd-wait-online.service",  # adds a 2-minute stall to boot under TCG
)
# Disabled, not masked: hardening roles may enable them (unattended upgrades, AIDE checks).
DISABLED_UNITS: tuple[str, ...] = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "dailyaidecheck.timer",
    "e2scrub_all.timer", "fstrim.timer",
)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that determines the image's bytes; hashed into the cache key."""

    mirror: str
    security_mirror: str
    admin_authorized_key: str
    admin_password_sha256: str
    suite: str = SUITE
    packages: tuple[str, ...] = BASE_PACKAGES + HARDENING_PACKAGES
    admin_user: str = DEFAULT_ADMIN_USER
    admin_group: str = DEFAULT_ADMIN_GROUP
    kernel_cmdline: str = DEFAULT_KERNEL_CMDLINE
    image_size_mib: int = DEFAULT_IMAGE_SIZE_MIB
    initramfs_modules: tuple[str, ...] = INITRAMFS_MODULES
    masked_units: tuple[str, ...] = MASKED_UNITS
    disabled_units: tuple[str, ...] = DISABLED_UNITS
    # path in the guest -> (octal mode, content)
    files: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Run in the new root filesystem with ``sh -c``, in order, ADMIN_PASSWORD in the environment.
    commands: tuple[str, ...] = ()

    def as_json(self) -> str:
        data = dataclasses.asdict(self)
        data["files"] = {k: list(v) for k, v in sorted(self.files.items())}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


# init of the image's first boot: the root filesystem is mounted read-write by the initramfs,
# /dev, /proc and /sys are moved onto it; the script removes itself so clones never see it.
# SysRq u remounts read-only (this script is still open, so `mount -o remount,ro` is refused).
_GRUB_INSTALLER_SCRIPT = f"""#!/bin/sh
set -e
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
grub-install --target=i386-pc /dev/vda
update-grub
rm -f "$0"
sync
echo u > /proc/sysrq-trigger
echo '{GRUB_INSTALLED_MARKER}'
echo o > /proc/sysrq-trigger
sleep 60
"""


def recipe_hash(recipe: ImageRecipe) -> str:
    """sha256 of the canonical JSON form of the recipe."""
    return hashlib.sha256(recipe.as_json().encode()).hexdigest()


def host_mirrors(sources_dir: Path = Path("/etc/apt/sources.list.d"),
                 sources_list: Path = Path("/etc/apt/sources.list")) -> tuple[str, str]:
    """The host's Debian and Debian-security mirrors (deb822 first, then one-line format)."""
    main = security = ""
    entries: list[tuple[str, str]] = []  # (uri, suites)
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if fields.get("types", "").split()[:1] == ["deb"] and "uris" in fields:
                entries.append((fields["uris"].split()[0], fields.get("suites", "")))
    if sources_list.is_file():
        for line in sources_list.read_text().splitlines():
            match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match:
                entries.append((match.group(1), match.group(2)))
    for uri, suites in entries:
        if f"{SUITE}-security" in suites.split():
            security = security or uri.rstrip("/")
        elif SUITE in suites.split():
            main = main or uri.rstrip("/")
    return main or DEFAULT_MIRROR, security or DEFAULT_SECURITY_MIRROR


def default_recipe(
    *,
    admin_authorized_key: str,
    admin_password: str,
    mirror: str | None = None,
    security_mirror: str | None = None,
    admin_user: str = DEFAULT_ADMIN_USER,
    admin_group: str = DEFAULT_ADMIN_GROUP,
    image_size_mib: int = DEFAULT_IMAGE_SIZE_MIB,
) -> ImageRecipe:
    """The lab's recipe; mirrors default to the host's (``CITADELLE_LAB_MIRROR`` overrides)."""
    host_main, host_security = host_mirrors()
    mirror = (mirror or os.environ.get("CITADELLE_LAB_MIRROR") or host_main).rstrip("/")
    security_mirror = (security_mirror or os.environ.get("CITADELLE_LAB_SECURITY_MIRROR")
                       or host_security).rstrip("/")
    if not re.fullmatch(r"https?://[^\s'\"]+", mirror):
        raise CitadelleError(f"lab mirror {mirror!r} is not an http(s) URL")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", admin_user):
        raise CitadelleError(f"lab admin user {admin_user!r} is not a valid user name "
                             "(lowercase letters, digits, '-' and '_', at most 32)")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", admin_group):
        raise CitadelleError(f"lab admin group {admin_group!r} is not a valid group name")
    if not admin_authorized_key.startswith("ssh-ed25519 "):
        raise CitadelleError("lab admin key must be an ssh-ed25519 public key line")
    home = f"/home/{admin_user}"
    files: dict[str, tuple[str, str]] = {
        "/etc/hostname": ("0644", "citadelle-lab\n"),
        "/etc/hosts": ("0644", "127.0.0.1\tlocalhost\n127.0.1.1\tcitadelle-lab\n"
                               "::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "/etc/fstab": ("0644", f"LABEL={ROOT_LABEL}\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"),
        # GRUB on the serial console only (the lab has no display), the lab's console on the
        # kernel command line; the roles add theirs in their own drop-in (99-...), after this one.
        # quiet: kernel messages (audit, martians) on an emulated serial port slow boot down.
        "/etc/default/grub.d/10-citadelle-lab.cfg": ("0644", (
            "GRUB_TIMEOUT=1\nGRUB_TERMINAL=serial\n"
            'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n'
            f'GRUB_CMDLINE_LINUX="{DEFAULT_KERNEL_CMDLINE}"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
            "GRUB_DISABLE_OS_PROBER=true\n")),
        GRUB_INSTALLER: ("0755", _GRUB_INSTALLER_SCRIPT),
        # qemu user-mode networking: DHCP on the one virtio NIC, DNS forwarder at 10.0.2.3.
        "/etc/systemd/network/80-lab-dhcp.network": (
            "0644", "[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n"),
        "/etc/resolv.conf": ("0644", "nameserver 10.0.2.3\n"),
        "/etc/apt/sources.list.d/debian.sources": ("0644", (
            f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security_mirror}\nSuites: {SUITE}-security\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")),
        "/etc/apt/apt.conf.d/80-citadelle-lab": ("0644", 'Acquire::Languages "none";\n'),
        # Key-only SSH for the admin user from the start; reverse DNS would stall every login.
        "/etc/ssh/sshd_config.d/10-citadelle-lab.conf": ("0644", (
            "UseDNS no\nPermitRootLogin no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n")),
        # Password-protected sudo, so hardening roles can forbid NOPASSWD (BP-028 R39).
        f"/etc/sudoers.d/10-{admin_group}": ("0440", f"%{admin_group} ALL=(ALL:ALL) ALL\n"),
        "/etc/initramfs-tools/conf.d/citadelle-lab": ("0644", "MODULES=list\n"),
        "/etc/initramfs-tools/modules": ("0644", "".join(f"{m}\n" for m in INITRAMFS_MODULES)),
    }
    commands = (
        f"groupadd {admin_group}",
        f"useradd --create-home --shell /bin/bash --user-group --groups {admin_group} "
        f"{admin_user}",
        'printf "%s:%s\\n" ' + admin_user + ' "$ADMIN_PASSWORD" | chpasswd',
        "passwd --lock root",
        f"install -d -m 0700 -o {admin_user} -g {admin_user} {home}/.ssh",
        f"printf '%s\\n' {shlex.quote(admin_authorized_key.strip())} > {home}/.ssh/authorized_keys",
        f"chown {admin_user}:{admin_user} {home}/.ssh/authorized_keys "
        f"&& chmod 0600 {home}/.ssh/authorized_keys",
        "rm -f /etc/apt/sources.list /var/lib/dbus/machine-id && : > /etc/machine-id",
        # No NTP pool from the lab: clones get the host's clock over SSH after a restore.
        "sed -i 's/^pool /#pool /' /etc/chrony/chrony.conf",
        "systemctl enable systemd-networkd.service ssh.service",
        "systemctl mask " + " ".join(MASKED_UNITS),
        "for u in " + " ".join(DISABLED_UNITS) + '; do if systemctl cat "$u" >/dev/null 2>&1;'
        ' then systemctl disable "$u"; fi; done',
        "update-initramfs -u -k all",
        # Later grub-pc upgrades reinstall GRUB where the first boot put it, without asking.
        "echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | debconf-set-selections",
        "apt-get clean",
    )
    return ImageRecipe(
        mirror=mirror,
        security_mirror=security_mirror,
        admin_authorized_key=admin_authorized_key.strip(),
        admin_password_sha256=hashlib.sha256(admin_password.encode()).hexdigest(),
        admin_user=admin_user,
        admin_group=admin_group,
        image_size_mib=image_size_mib,
        files=files,
        commands=commands,
    )


@dataclass(frozen=True)
class BuiltImage:
    """A built image directory: a qcow2 disk with GRUB installed, booted from its own disk."""

    directory: Path
    recipe_hash: str

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def timings(self) -> dict[str, float]:
        path = self.directory / "timings.json"
        data: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
        return data


def find_image(images_dir: Path, recipe: ImageRecipe) -> BuiltImage | None:
    """The cached image for this recipe, if a complete build exists."""
    digest = recipe_hash(recipe)
    image = BuiltImage(images_dir / digest, digest)
    if (image.directory / "complete").is_file():
        return image
    return None


def tool(name: str) -> str:
    """Absolute path of a host tool, or one actionable line saying how to get it."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise CitadelleError(f"lab: {name} not found; run scripts/install (qemu-system-x86 "
                             "qemu-utils debootstrap e2fsprogs fdisk openssh-client)")
    return path


def _run(cmd: list[str], *, env: Mapping[str, str] | None = None, what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(env) if env else None,
                          check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CitadelleError(f"lab image: {what} failed (exit {proc.returncode}): "
                             + " | ".join(tail))


def build_image(images_dir: Path, cache_dir: Path, recipe: ImageRecipe,
                admin_password: str, accel_args: list[str]) -> BuiltImage:
    """Build the image for ``recipe`` unless cached; needs root (debootstrap, mkfs -d).

    ``accel_args`` are the qemu accelerator arguments of the first boot (GRUB install).
    """
    cached = find_image(images_dir, recipe)
    if cached is not None:
        return cached
    if os.geteuid() != 0:
        raise CitadelleError("lab image build needs root (debootstrap and mkfs.ext4 -d "
                             "preserve ownership): run it with sudo once, the image is cached")
    digest = recipe_hash(recipe)
    final = images_dir / digest
    work = images_dir / f"{digest}.build"
    _remove_build_dir(work)
    shutil.rmtree(final, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    start = time.monotonic()
    _run([tool("debootstrap"), "--variant=minbase", f"--include={','.join(recipe.packages)}",
          f"--cache-dir={cache_dir.resolve()}", recipe.suite, str(rootfs), recipe.mirror],
         what="debootstrap")
    timings["debootstrap_s"] = round(time.monotonic() - start, 1)

    start = time.monotonic()
    _customise(rootfs, recipe, admin_password)
    timings["customise_s"] = round(time.monotonic() - start, 1)

    start = time.monotonic()
    _make_disk(rootfs, work, recipe)
    timings["image_s"] = round(time.monotonic() - start, 1)
    timings["rootfs_mib"] = round(_tree_size(rootfs) / 2**20, 1)
    shutil.rmtree(rootfs)
    start = time.monotonic()
    _install_grub(work, accel_args)
    timings["grub_install_boot_s"] = round(time.monotonic() - start, 1)
    start = time.monotonic()
    _run([tool("qemu-img"), "convert", "-O", "qcow2", str(work / "disk.raw"),
          str(work / "disk.qcow2")], what="qemu-img convert")
    (work / "disk.raw").unlink()
    timings["convert_s"] = round(time.monotonic() - start, 1)
    timings["qcow2_mib"] = round((work / "disk.qcow2").stat().st_size / 2**20, 1)
    (work / "recipe.json").write_text(recipe.as_json() + "\n")
    (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    (work / "complete").write_text(digest + "\n")
    work.rename(final)
    return BuiltImage(final, digest)


def _customise(rootfs: Path, recipe: ImageRecipe, admin_password: str) -> None:
    for guest_path, (mode, content) in sorted(recipe.files.items()):
        target = rootfs / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_text(content)
        target.chmod(int(mode, 8))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ADMIN_PASSWORD": admin_password,
           "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    for command in recipe.commands:
        _run([tool("chroot"), str(rootfs), "sh", "-ec", command], env=env,
             what=command.split()[0])


def _make_disk(rootfs: Path, work: Path, recipe: ImageRecipe) -> None:
    """disk.raw: one bootable MBR partition from 1 MiB holding the root filesystem, plus the
    kernel and initramfs copied out for the first boot (the GRUB install)."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise CitadelleError("lab image: no kernel or initramfs in the root filesystem /boot")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrds[-1], work / "initrd.img")
    raw = work / "disk.raw"
    with raw.open("wb") as handle:
        handle.truncate(recipe.image_size_mib * 1024 * 1024)
    table = (f"label: dos\nstart={PARTITION_OFFSET_MIB * 2048}, type=83, bootable\n")
    proc = subprocess.run([tool("sfdisk"), "--quiet", "--no-reread", "--no-tell-kernel",
                           str(raw)], input=table, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CitadelleError(f"lab image: sfdisk failed: {proc.stderr.strip()}")
    size_mib = recipe.image_size_mib - PARTITION_OFFSET_MIB
    _run([tool("mkfs.ext4"), "-q", "-L", ROOT_LABEL, "-d", str(rootfs),
          "-E", f"offset={PARTITION_OFFSET_MIB * 2**20}", str(raw), f"{size_mib}M"],
         what="mkfs.ext4")


def _install_grub(work: Path, accel_args: list[str]) -> None:
    """First boot of the image, kernel given by qemu, init = the GRUB installer: it writes
    GRUB to the disk and grub.cfg from the image's own /etc/default/grub, then powers off."""
    console = work / "install-console.log"
    args = [tool("qemu-system-x86_64"), "-machine", "pc", *accel_args, "-m", "1024",
            "-smp", "1", "-display", "none", "-monitor", "none", "-nodefaults",
            "-no-reboot", "-serial", f"file:{console}",
            "-kernel", str(work / "vmlinuz"), "-initrd", str(work / "initrd.img"),
            "-append", f"root=/dev/vda1 rw console=ttyS0 panic=1 init={GRUB_INSTALLER}",
            "-drive", f"file={work / 'disk.raw'},if=virtio,format=raw,cache=unsafe"]
    try:
        proc = subprocess.run(args, capture_output=True, text=True,
                              timeout=GRUB_INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise CitadelleError(f"lab image: the GRUB install boot did not power off within "
                             f"{GRUB_INSTALL_TIMEOUT_S:.0f} s; see {console}") from None
    text = console.read_text(errors="replace") if console.is_file() else ""
    if proc.returncode != 0 or GRUB_INSTALLED_MARKER not in text:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-4:])
        raise CitadelleError(f"lab image: GRUB install boot failed (qemu exit "
                             f"{proc.returncode}): {tail or proc.stderr.strip()}")
    for name in ("vmlinuz", "initrd.img"):
        (work / name).unlink()


def _remove_build_dir(work: Path) -> None:
    """Delete a previous build, first unmounting what an interrupted debootstrap left mounted
    in it (/proc, /sys): rmtree must never walk into the host's proc or sys filesystems."""
    prefix = str(work.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        _run([tool("umount"), "--lazy", mount], what=f"umount {mount}")
    shutil.rmtree(work, ignore_errors=True)


def _tree_size(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.lstat().st_size
    return total
