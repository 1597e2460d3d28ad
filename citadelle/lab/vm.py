"""qemu processes and SSH for the lab: the machine definition, launch/kill by PID, SSH waits.

A restored clone must be started with exactly the qemu arguments of the VM that was saved,
except the disk path, the forwarded port and the per-VM files (serial log, QMP socket): the
:class:`MachineSpec` renders those shared arguments, and its key is part of the golden
snapshot's cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from citadelle.errors import CitadelleError
from citadelle.lab.image import BuiltImage, tool
from citadelle.lab.supervisor import alive

QEMU = "qemu-system-x86_64"


def kvm_usable(cpuinfo: Path = Path("/proc/cpuinfo"), kvm: Path = Path("/dev/kvm")) -> bool:
    """KVM only when the CPU advertises vmx/svm: without them /dev/kvm stalls stock kernels."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    has_flag = any(
        line.startswith("flags") and ({"vmx", "svm"} & set(line.split(":", 1)[1].split()))
        for line in flags.splitlines()
    )
    return has_flag and kvm.exists() and os.access(kvm, os.R_OK | os.W_OK)


def qemu_version() -> str:
    try:
        proc = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise CitadelleError(f"lab: {QEMU} not usable ({err}); run scripts/install") from None
    return proc.stdout.splitlines()[0].strip()


@dataclass(frozen=True)
class MachineSpec:
    """The virtual hardware shared by the golden VM and every clone restored from it."""

    memory_mib: int = 1024
    cpus: int = 1
    kvm: bool = False

    def __post_init__(self) -> None:
        if not 256 <= self.memory_mib <= 65536:
            raise CitadelleError(f"lab memory {self.memory_mib} MiB out of range 256..65536")
        if not 1 <= self.cpus <= 64:
            raise CitadelleError(f"lab cpus {self.cpus} out of range 1..64")

    def accel_args(self) -> list[str]:
        if self.kvm:
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi", "-cpu", "qemu64"]

    def shared_args(self, image: BuiltImage) -> list[str]:
        return [
            QEMU, "-machine", "pc", *self.accel_args(),
            "-m", str(self.memory_mib), "-smp", str(self.cpus),
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", image.kernel_cmdline,
            "-display", "none", "-monitor", "none", "-nodefaults",
            "-device", "virtio-rng-pci", "-device", "vmgenid",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-drive", "file={disk},if=virtio,format=qcow2,cache=unsafe",
        ]

    def key(self, image: BuiltImage, version: str) -> str:
        """Golden snapshot cache key: image recipe hash, qemu version and shared arguments."""
        data = json.dumps([image.recipe_hash, version, self.shared_args(image)])
        return hashlib.sha256(data.encode()).hexdigest()


def vm_args(spec: MachineSpec, image: BuiltImage, *, disk: Path, port: int, serial: Path,
            qmp: Path, incoming: Path | None = None) -> list[str]:
    args = [a.format(port=port, disk=disk) for a in spec.shared_args(image)]
    args += ["-serial", f"file:{serial}", "-qmp", f"unix:{qmp},server=on,wait=off"]
    if incoming is not None:
        args += ["-incoming", f"exec:cat '{incoming}'"]
    return args


# sun_path is 108 bytes; ssh appends 17 characters to a ControlPath while creating it.
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def create_overlay(backing: Path, overlay: Path) -> None:
    """A qcow2 overlay whose backing file is recorded relative to it (the lab can move)."""
    relative = os.path.relpath(backing, overlay.parent)
    proc = subprocess.run(
        [tool("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", relative,
         str(overlay)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CitadelleError(f"lab: qemu-img create {overlay} failed: {proc.stderr.strip()}")


def process_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        return None
    return None


@dataclass(frozen=True)
class SSHTarget:
    """How to reach one lab VM's sshd through its forwarded loopback port."""

    port: int
    user: str
    key: Path
    control_path: str | None = None

    def options(self) -> list[str]:
        opts = [
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10",
        ]
        if self.control_path:
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}",
                     "-o", "ControlPersist=60s"]
        else:
            opts += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        return opts

    def command(self, remote: str | None, *, user: str | None = None) -> list[str]:
        """The ssh argv; ``remote=None`` opens an interactive login shell."""
        argv = [tool("ssh"), *self.options(), "-i", str(self.key), "-p", str(self.port),
                f"{user or self.user}@127.0.0.1"]
        return argv if remote is None else [*argv, remote]


def ssh_run(target: SSHTarget, remote: str, *, stdin: str | None = None, timeout: float = 120,
            user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``remote`` on the VM; returns the completed process (check returncode yourself)."""
    try:
        return subprocess.run(target.command(remote, user=user), input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CitadelleError(f"lab: ssh to 127.0.0.1:{target.port} timed out after "
                             f"{timeout:.0f}s running {remote!r}") from None


def sudo_script(target: SSHTarget, password: str, script: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root: sudo reads the password line, then sh reads the script."""
    return ssh_run(target, "sudo -S -p '' sh -s", stdin=f"{password}\n{script}",
                   timeout=timeout)


CLOCK_READY = "citadelle-lab-clock-ready"
# Script lines that take the host's clock: the host sends its time only once the guest asks,
# so neither SSH nor sudo latency ends up in the guest's clock.
SET_CLOCK_LINES: tuple[str, ...] = (
    f"echo {CLOCK_READY}", "read -r now", 'date -u -s "@$now" >/dev/null')


def sudo_script_with_clock(target: SSHTarget, password: str, script: str,
                           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """:func:`sudo_script` for a script containing :data:`SET_CLOCK_LINES`."""
    argv = target.command("sudo -S -p '' sh -s")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        proc.stdin.write(f"{password}\n{script}")
        proc.stdin.flush()
        before = []
        for line in proc.stdout:
            if line.strip() == CLOCK_READY:
                proc.stdin.write(f"{time.time():.6f}\n")
                proc.stdin.flush()
                break
            before.append(line)
        proc.stdin.close()
        proc.stdin = None  # communicate() would flush the closed pipe
        out, err = proc.communicate()
    finally:
        timer.cancel()
    return subprocess.CompletedProcess(argv, proc.returncode, "".join(before) + out, err)


def console_tail(serial: Path, lines: int = 5) -> str:
    try:
        text = serial.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no console output)"
    return " | ".join(line.strip() for line in text[-lines:])


def wait_for_ssh(target: SSHTarget, pid: int, marker: str, serial: Path,
                 timeout: float) -> float:
    """Poll until the admin user logs in with the lab key; returns seconds waited."""
    start = time.monotonic()
    while True:
        if not alive(pid, marker):
            raise CitadelleError(f"lab: qemu PID {pid} exited before SSH answered; console: "
                                 + console_tail(serial))
        proc = ssh_run(target, "true", timeout=30)
        if proc.returncode == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise CitadelleError(f"lab: no SSH on 127.0.0.1:{target.port} after {timeout:.0f}s"
                                 f" ({proc.stderr.strip()}); console: " + console_tail(serial))
        time.sleep(0.5)
