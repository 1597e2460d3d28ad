"""The lab itself: image, golden snapshot, clones, and the files that describe them.

Layout under ``root`` (default ``.lab/``, gitignored)::

    cache/                         debootstrap's .deb cache
    images/<recipe-hash>/          disk.qcow2 (GRUB installed), recipe.json, timings.json
    images/<recipe-hash>/golden-<machine-key>/   disk.qcow2 (overlay), state, golden.json
    keys/id_ed25519                lab SSH key (0600)       secrets/admin-password (0600)

and under ``run_dir`` (default: ``root``)::

    clones/<name>/                 disk.qcow2 (overlay of the golden disk), pid, clone.json,
                                   console.log, qemu.log, qmp.sock, hostkeys/
    ssh_config  inventory.yml  cm/ (SSH ControlMaster sockets)
    stack-outputs.json             the environment's outputs as the clones realise them
                                   (written by the lab target, citadelle.lab.target)
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.lab import volume
from citadelle.lab.collector import Collector
from citadelle.lab.credentials import LabCredentials, ensure_credentials
from citadelle.lab.image import (
    DEFAULT_ADMIN_GROUP,
    DEFAULT_ADMIN_USER,
    BuiltImage,
    ImageRecipe,
    build_image,
    default_recipe,
    find_image,
    tool,
)
from citadelle.lab.outputs import ROLES, Clone, LabInventory, lab_role_vars, write_outputs
from citadelle.lab.qmp import QMP, QMPError
from citadelle.lab.supervisor import alive, launch, stop
from citadelle.lab.vm import (
    SET_CLOCK_LINES,
    MachineSpec,
    SSHTarget,
    console_tail,
    create_overlay,
    free_port,
    kvm_usable,
    process_rss_mib,
    qemu_version,
    ssh_run,
    sudo_script,
    sudo_script_with_clock,
    vm_args,
    wait_for_ssh,
)
from citadelle.paths import LAB_DIR
from citadelle.sockets import UNIX_PATH_MAX, control_path, socket_dir

CLONE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
COLD_BOOT_TIMEOUT_S = 900.0
RESTORE_SSH_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Golden:
    """A booted VM saved after SSH answered: the disk at that instant plus its RAM state."""

    directory: Path
    image: BuiltImage
    spec: MachineSpec

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @property
    def timings(self) -> dict[str, float]:
        data: dict[str, float] = json.loads((self.directory / "golden.json").read_text())[
            "timings"]
        return data


@dataclass(frozen=True)
class CloneStatus:
    name: str
    role: str
    port: int
    pid: int
    alive: bool
    rss_mib: float | None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def qmp_path(vm_dir: Path) -> Path:
    """The VM's QMP socket: in its directory when the path fits in sun_path."""
    return socket_dir(vm_dir, UNIX_PATH_MAX - len("/qmp.sock")) / "qmp.sock"


def _qemu_marker(clone_dir: Path) -> str:
    # Every qemu of the lab has its QMP socket path on its command line: a PID is only ever
    # signalled when it still belongs to that clone (PIDs get reused).
    return str(qmp_path(clone_dir))


class Lab:
    """Debian 12 VMs under qemu standing in for the deployed servers.

    ``Lab(root).up({"bastion": "bastion", "gw": "gateway", "node1": "node"})`` builds or
    reuses the image and golden snapshot, restores one clone per entry and returns a
    :class:`LabInventory`; ``down()`` kills every clone by PID and removes its overlay.
    """

    def __init__(
        self,
        root: Path = LAB_DIR,
        *,
        run_dir: Path | None = None,
        memory_mib: int = 1024,
        cpus: int = 1,
        kvm: bool | None = None,
        admin_user: str = DEFAULT_ADMIN_USER,
        admin_group: str = DEFAULT_ADMIN_GROUP,
        mirror: str | None = None,
    ) -> None:
        self.root = root.resolve()
        self.run_dir = (run_dir or root).resolve()
        self.spec = MachineSpec(memory_mib=memory_mib, cpus=cpus,
                                kvm=kvm_usable() if kvm is None else kvm)
        self.admin_user = admin_user
        self.admin_group = admin_group
        self.mirror = mirror
        self.clones_dir = self.run_dir / "clones"
        self.control_path = control_path(self.run_dir / "cm")

    # -- credentials, image, golden snapshot ------------------------------------------------

    def credentials(self) -> LabCredentials:
        return ensure_credentials(self.root)

    def recipe(self) -> ImageRecipe:
        creds = self.credentials()
        return default_recipe(admin_authorized_key=creds.public_key_line,
                              admin_password=creds.password, mirror=self.mirror,
                              admin_user=self.admin_user, admin_group=self.admin_group)

    def build_image(self) -> BuiltImage:
        """Build the base image unless one with the same recipe hash is cached."""
        recipe = self.recipe()
        cached = find_image(self.root / "images", recipe)
        if cached is not None:
            return cached
        with _locked(self.root / "build.lock"):
            return build_image(self.root / "images", self.root / "cache", recipe,
                               self.credentials().password, self.spec.accel_args())

    def ensure_golden(self) -> Golden:
        """Boot the image cold once, wait for SSH, save RAM + disk; cached per machine key."""
        image = self.build_image()
        key = self.spec.key(image, qemu_version())
        golden = Golden(image.directory / f"golden-{key[:16]}", image, self.spec)
        if (golden.directory / "golden.json").is_file():
            return golden
        with _locked(self.root / "build.lock"):
            if (golden.directory / "golden.json").is_file():
                return golden
            self._save_golden(golden, key)
        return golden

    def _save_golden(self, golden: Golden, key: str) -> None:
        work = golden.directory.with_name(golden.directory.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        disk, state, serial, qmp = (work / "disk.qcow2", work / "state",
                                    work / "console.log", qmp_path(work))
        qmp.parent.mkdir(mode=0o700, exist_ok=True)
        create_overlay(golden.image.disk, disk)
        port = free_port()
        args = vm_args(self.spec, disk=disk, port=port, serial=serial, qmp=qmp)
        marker = str(qmp)
        start = time.monotonic()
        pid = launch(args, work / "qemu.log", work / "pid")
        try:
            target = self._target(port)
            cold = wait_for_ssh(target, pid, marker, serial, COLD_BOOT_TIMEOUT_S)
            # Let boot jobs finish so that clones do not resume half-started units.
            settle = ssh_run(target, "systemctl is-system-running --wait; sync", timeout=600)
            booted = time.monotonic() - start
            start = time.monotonic()
            with QMP(qmp) as session:
                session.execute("migrate-set-parameters", **{"max-bandwidth": 8 * 2**30})
                session.execute("stop")
                session.execute("migrate", uri=f"exec:cat > '{state}'")
                status = self._wait_migration(session)
                if status != "completed":
                    raise CitadelleError(f"lab: saving the golden snapshot ended {status!r}")
                session.execute("quit")
            saved = time.monotonic() - start
        finally:
            stop(pid, marker, what="qemu")
        timings = {"cold_boot_to_ssh_s": round(cold, 1), "boot_settled_s": round(booted, 1),
                   "snapshot_save_s": round(saved, 1),
                   "state_mib": round(state.stat().st_size / 2**20, 1)}
        meta = {"key": key, "args": args, "system_state": settle.stdout.strip(),
                "timings": timings}
        (work / "golden.json").write_text(json.dumps(meta, indent=2) + "\n")
        for transient in (qmp, work / "pid"):
            transient.unlink(missing_ok=True)
        if qmp.parent != work:
            shutil.rmtree(qmp.parent, ignore_errors=True)
        shutil.rmtree(golden.directory, ignore_errors=True)
        work.rename(golden.directory)

    @staticmethod
    def _wait_migration(session: QMP, timeout: float = 300.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info: dict[str, Any] = session.execute("query-migrate")
            status = str(info.get("status", ""))
            if status in ("completed", "failed", "cancelled"):
                return status
            time.sleep(0.1)
        return "timed out"

    # -- clones --------------------------------------------------------------------------------

    def _target(self, port: int) -> SSHTarget:
        return SSHTarget(port=port, user=self.admin_user, key=self.credentials().private_key)

    def _validate(self, clones: Mapping[str, str]) -> None:
        if not clones:
            raise CitadelleError("lab up: no clones requested (example: bastion=bastion)")
        for name, role in clones.items():
            if not CLONE_NAME.fullmatch(name):
                raise CitadelleError(f"lab clone name {name!r} invalid: lowercase letters, "
                                     "digits and '-', starting with a letter, at most 31")
            if role not in ROLES:
                raise CitadelleError(f"lab clone {name!r} role {role!r} invalid: one of "
                                     + ", ".join(ROLES))

    def _load(self, name: str) -> Clone | None:
        path = self.clones_dir / name / "clone.json"
        if not path.is_file():
            return None
        return Clone.from_json(path.parent, json.loads(path.read_text()))

    def up(self, clones: Mapping[str, str],
           volumes: Mapping[str, int] | None = None) -> LabInventory:
        """Restore one clone per ``name -> role`` (reusing live ones); write the outputs.

        ``volumes`` maps a clone name to the GiB of the encrypted data volume attached to it
        (``citadelle.lab.volume``).
        """
        volumes = dict(volumes or {})
        self._validate(clones)
        unknown = sorted(set(volumes) - set(clones))
        if unknown:
            raise CitadelleError(f"lab up: data volume for unknown clone {', '.join(unknown)}")
        golden = self.ensure_golden()
        with _locked(self.run_dir / "clones.lock"):
            fresh: dict[str, tuple[int, int]] = {}
            try:
                for name, role in clones.items():
                    existing = self._load(name)
                    if existing is not None and alive(existing.pid,
                                                          _qemu_marker(existing.directory)):
                        wanted = (role, volumes.get(name, 0))
                        if (existing.role, existing.data_volume_gb) != wanted:
                            raise CitadelleError(
                                f"lab clone {name!r} is already up as {existing.role!r} with "
                                f"{existing.data_volume_gb} GiB of data volume, not "
                                f"{wanted[0]!r} with {wanted[1]}; "
                                f"run `citadelle lab down {name}` first")
                        continue
                    self._remove(name)
                    fresh[name] = self._start_clone(golden, name)
                # Started and configured together: each clone is one busy host thread.
                with ThreadPoolExecutor(max_workers=max(1, len(fresh))) as pool:
                    futures = [pool.submit(self._finish_clone, name, clones[name], pid, port,
                                           volumes.get(name, 0))
                               for name, (pid, port) in fresh.items()]
                    for future in futures:
                        future.result()
            except BaseException:
                for name in fresh:
                    self._remove(name)
                raise
            # Each clone's identity towards the lab's log collector (bp028_audit, R71).
            Collector(self.root).issue(clones)
            return self._write_outputs()

    def _start_clone(self, golden: Golden, name: str) -> tuple[int, int]:
        directory = self.clones_dir / name
        directory.mkdir(parents=True)
        disk = directory / "disk.qcow2"
        create_overlay(golden.disk, disk)
        qmp_path(directory).parent.mkdir(mode=0o700, exist_ok=True)
        port = free_port()
        args = vm_args(self.spec, disk=disk, port=port,
                       serial=directory / "console.log", qmp=qmp_path(directory),
                       incoming=golden.state)
        (directory / "restore-start").write_text(f"{time.time():.3f}\n")
        return launch(args, directory / "qemu.log", directory / "pid"), port

    def _finish_clone(self, name: str, role: str, pid: int, port: int,
                      volume_gb: int) -> Clone:
        directory = self.clones_dir / name
        marker = _qemu_marker(directory)
        started = float((directory / "restore-start").read_text())
        try:
            self._resume(directory, pid, marker)
        except QMPError as err:
            # A restore with arguments that differ from the saved VM's fails here: qemu says why.
            raise CitadelleError(f"lab clone {name!r}: restore failed ({err.message}); qemu: "
                                 + console_tail(directory / "qemu.log", 2)) from None
        if volume_gb:
            # Attached after the restore: the saved VM had no such device (as Nova attaches).
            volume.create_image(directory, volume_gb)
            try:
                volume.attach(qmp_path(directory), directory)
            except QMPError as err:
                raise CitadelleError(f"lab clone {name!r}: data volume not attached "
                                     f"({err.message})") from None
        target = self._target(port)
        wait_for_ssh(target, pid, marker, directory / "console.log", RESTORE_SSH_TIMEOUT_S)
        restored = time.time() - started
        host_keys = self._host_keys(directory / "hostkeys", name)
        proc = sudo_script_with_clock(target, self.credentials().password,
                                      self._setup_script(name, host_keys))
        if proc.returncode != 0:
            raise CitadelleError(f"lab clone {name!r}: setup over SSH failed: "
                                 + (proc.stderr.strip().splitlines() or ["?"])[-1])
        # sshd re-executes on reload: the clone is ready once it answers with its new keys.
        wait_for_ssh(target, pid, marker, directory / "console.log", RESTORE_SSH_TIMEOUT_S)
        addresses = proc.stdout.split()
        clone = Clone(name=name, role=role, port=port, pid=pid,
                      private_ip=addresses[-1] if addresses else "",
                      host_key_ed25519=(directory / "hostkeys" / "ssh_host_ed25519_key.pub")
                      .read_text().strip(), directory=directory, data_volume_gb=volume_gb)
        data = clone.as_json() | {"restore_to_ssh_s": round(restored, 1),
                                  "ready_s": round(time.time() - started, 1)}
        (directory / "clone.json").write_text(json.dumps(data, indent=2) + "\n")
        return clone

    @staticmethod
    def _resume(directory: Path, pid: int, marker: str) -> None:
        """Wait until the incoming state is loaded, then make sure the VM runs."""
        with QMP(qmp_path(directory)) as session:
            deadline = time.monotonic() + 120
            while True:
                status = str(session.execute("query-status")["status"])
                if status == "running":
                    return
                if status not in ("inmigrate", "prelaunch"):
                    session.execute("cont")
                    return
                if time.monotonic() > deadline or not alive(pid, marker):
                    raise QMPError(f"still {status!r} after the state file was read")
                time.sleep(0.05)

    @staticmethod
    def _host_keys(directory: Path, name: str) -> dict[str, str]:
        """Fresh SSH host keys per clone (the golden VM's would be shared by all clones)."""
        directory.mkdir(mode=0o700, exist_ok=True)
        keys: dict[str, str] = {}
        for kind, extra in (("ed25519", []), ("ecdsa", ["-b", "256"]), ("rsa", ["-b", "3072"])):
            path = directory / f"ssh_host_{kind}_key"
            proc = subprocess.run([tool("ssh-keygen"), "-q", "-t", kind, *extra, "-N", "", "-C",
                                   f"root@{name}", "-f", str(path)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise CitadelleError(f"lab: ssh-keygen -t {kind} failed: {proc.stderr.strip()}")
            keys[path.name] = path.read_text()
            keys[path.name + ".pub"] = path.with_suffix(".pub").read_text()
        return keys

    @staticmethod
    def _setup_script(name: str, host_keys: Mapping[str, str]) -> str:
        lines = [
            "set -e",
            f"printf '%s\\n' {name} > /etc/hostname",
            f"hostname {name}",
            f"sed -i 's/^127\\.0\\.1\\.1.*/127.0.1.1\\t{name}/' /etc/hosts",
            "rm -f /etc/ssh/ssh_host_*",
            "umask 077",
        ]
        for filename, content in sorted(host_keys.items()):
            lines += [f"cat > /etc/ssh/{filename} <<'CITADELLE_KEY'", content.rstrip("\n"),
                      "CITADELLE_KEY"]
        lines += [
            "chmod 0644 /etc/ssh/ssh_host_*_key.pub",
            "systemctl reload ssh",
            # The restored clock is the golden VM's: take the host's.
            *SET_CLOCK_LINES,
            "ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1",
        ]
        return "\n".join(lines) + "\n"

    def _remove(self, name: str) -> None:
        directory = self.clones_dir / name
        pid_file = directory / "pid"
        if pid_file.is_file():
            stop(int(pid_file.read_text()), _qemu_marker(directory), what="qemu")
        shutil.rmtree(directory, ignore_errors=True)
        if qmp_path(directory).parent != directory:
            shutil.rmtree(qmp_path(directory).parent, ignore_errors=True)

    def _live(self) -> list[Clone]:
        if not self.clones_dir.is_dir():
            return []
        live = []
        for directory in sorted(self.clones_dir.iterdir()):
            clone = self._load(directory.name)
            if clone is not None and alive(clone.pid, _qemu_marker(directory)):
                live.append(clone)
        return live

    def clones(self) -> tuple[Clone, ...]:
        """The clones that are up."""
        return tuple(self._live())

    def access(self) -> Access:
        """How Ansible logs in to the clones, and what they impose on the roles."""
        creds = self.credentials()
        return Access(identity_file=creds.private_key, become_password_file=creds.password_file,
                      role_vars=lab_role_vars(self.root))

    def _write_outputs(self) -> LabInventory:
        Path(self.control_path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return write_outputs(self.root, self.run_dir, tuple(self._live()), user=self.admin_user,
                             group=self.admin_group, access=self.access())

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Kill clones by PID and delete their overlays (all when ``names`` is None)."""
        with _locked(self.run_dir / "clones.lock"):
            existing = sorted(p.name for p in self.clones_dir.iterdir()) \
                if self.clones_dir.is_dir() else []
            wanted = existing if names is None else list(names)
            unknown = sorted(set(wanted) - set(existing))
            if unknown:
                raise CitadelleError(f"lab down: no clone named {', '.join(unknown)} "
                                     f"(existing: {', '.join(existing) or 'none'})")
            for name in wanted:
                self._remove(name)
            self._write_outputs()
            return wanted

    def status(self) -> list[CloneStatus]:
        result: list[CloneStatus] = []
        if not self.clones_dir.is_dir():
            return result
        for directory in sorted(self.clones_dir.iterdir()):
            clone = self._load(directory.name)
            if clone is None:
                continue
            running = alive(clone.pid, _qemu_marker(directory))
            result.append(CloneStatus(name=clone.name, role=clone.role, port=clone.port,
                                      pid=clone.pid, alive=running,
                                      rss_mib=process_rss_mib(clone.pid) if running else None))
        return result

    def inventory(self) -> LabInventory:
        """Rewrite and return the outputs for the clones that are up."""
        with _locked(self.run_dir / "clones.lock"):
            return self._write_outputs()

    def target(self, name: str) -> SSHTarget:
        clone = self._load(name)
        if clone is None:
            raise CitadelleError(f"lab: no clone named {name!r}")
        return SSHTarget(port=clone.port, user=self.admin_user,
                         key=self.credentials().private_key, control_path=self.control_path)

    def ssh(self, name: str, command: str, *, sudo: bool = False,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command on a clone as the admin user, or as root through sudo."""
        target = self.target(name)
        if sudo:
            return sudo_script(target, self.credentials().password, command + "\n", timeout)
        return ssh_run(target, command, timeout=timeout)
