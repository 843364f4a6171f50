#!/usr/bin/env python3
"""Pi readiness: run faced in an emulated Raspberry Pi OS userland and compare its answers with the host's.

    sudo .venv/bin/python tools/pi_check.py            # what .ci/run does after the tests

What it does, and caches (outside the repository: $FACED_PI_CACHE, default /var/cache/faced-pi-check):

1. an arm64 Debian bookworm userland built with debootstrap: the userland of 64-bit Raspberry Pi OS bookworm
   (Python 3.11, glibc 2.36), from the Debian mirror named in this machine's apt sources ($FACED_PI_MIRROR
   overrides it). Cached per debootstrap settings.
2. the aarch64 wheels of faced's dependencies (pyproject.toml `dependencies`), downloaded on the host for
   CPython 3.11 / manylinux <= glibc 2.36, pinned to the versions in the host's venv so that both sides run the
   same libraries; and a venv inside the userland with them installed by the userland's own pip from those
   files only. Cached per (dependencies, pins): a dependency change refreshes the wheels and the venv only.
3. faced's own wheel (`pip wheel --no-deps .` on a copy of the working tree), installed into that venv on
   every run; the wheel carries the models as data files (share/faced/models).
4. tools/pi_smoke.py (doctor, detection, compare, liveness, enrol + search, in one process) under qemu
   user-mode emulation as a Raspberry Pi 4 (QEMU_CPU=cortex-a72) and a Pi 5 (cortex-a76), each with a Pi-style
   /proc/cpuinfo, and the same script on the host; the answers must agree (same faces, boxes within
   --box-tolerance px, scores within --score-tolerance).
5. what emulation cannot show: every ELF file in that venv is aarch64 with LOAD segments aligned to at least
   16 KiB (a Pi 5 kernel uses 16 KiB pages; a 4 KiB-aligned library does not load there).

Exit status 0 when everything agrees, 1 otherwise. Needs root (debootstrap, chroot, mounts, binfmt_misc) and
installs qemu-user-static, binfmt-support and debootstrap with apt-get when they are missing. Every mount is
made in a private mount namespace (unshare), so nothing stays mounted if the check is interrupted.
FACED_PI_CHECK=skip skips the whole check (for machines that cannot run it), saying so.
Timings under emulation mean nothing (about 30x slower overall, some kernels 250x): none are compared.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SUITE = "bookworm"  # Raspberry Pi OS bookworm's userland: Python 3.11, glibc 2.36
ARCH = "arm64"
PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36
DEBOOTSTRAP_PACKAGES = ["python3", "python3-venv", "python3-pip", "ca-certificates"]
# Bump to force a rebuild of the cached userland or wheels when this script changes how it makes them.
ROOTFS_REVISION = 1
WHEELS_REVISION = 1
PAGE_16K = 16 * 1024
EM_AARCH64 = 183
PT_LOAD = 1
STALE_MARK = ".faced-complete"
SMOKE = "pi_smoke.py"  # tools/pi_smoke.py: the same script on the host and in the userland
SMOKE_TIMEOUT = 1800  # seconds per smoke run (a warm emulated run takes 1.5-2.5 minutes)
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Pi-style /proc/cpuinfo for each emulated board. qemu-user passes the host's (x86) /proc/cpuinfo through, and
# XNNPACK's CPU detection then crashes LiteRT; the board's own file also makes the CPU part numbers right.
PI_FEATURES = {
    "cortex-a72": "fp asimd evtstrm crc32 cpuid",
    "cortex-a76": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                  "asimddp",
}
BOARDS = {
    # name: (QEMU_CPU, CPU variant, CPU part, revision, board revision code, model)
    "pi4": ("cortex-a72", "0x0", "0xd08", "3", "c03112", "Raspberry Pi 4 Model B Rev 1.2"),
    "pi5": ("cortex-a76", "0x4", "0xd0b", "1", "d04170", "Raspberry Pi 5 Model B Rev 1.0"),
}


def log(message: str) -> None:
    print(f"pi_check: {message}", flush=True)


class CheckError(Exception):
    pass


def cpuinfo_text(board: str) -> str:
    cpu, variant, part, revision, code, model = BOARDS[board]
    cores = "".join(
        f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {PI_FEATURES[cpu]}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n"
        for n in range(4))
    return f"{cores}Revision\t: {code}\nSerial\t\t: 10000000faced000\nModel\t\t: {model}\n"


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure raise CheckError with the tail of its output."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.STDOUT)
    result = subprocess.run(command, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout or "")[-4000:]
        raise CheckError(f"{shlex.join(command[:6])}{' ...' if len(command) > 6 else ''} exited "
                         f"{result.returncode}\n{output}")
    return result


# ------------------------------------------------------------------------------------------- host set-up
def ensure_host_tools() -> None:
    if os.geteuid() != 0:
        raise CheckError("needs root (debootstrap, chroot, mounts); run as root, or set FACED_PI_CHECK=skip")
    missing = [tool for tool in ("debootstrap", "unshare", "chroot") if not shutil.which(tool)]
    if not shutil.which("qemu-aarch64-static") and not Path("/usr/libexec/qemu-binfmt").is_dir():
        missing.append("qemu-aarch64-static")
    if missing:
        if not shutil.which("apt-get"):
            raise CheckError(f"missing {', '.join(missing)} and no apt-get to install them")
        log(f"installing qemu-user-static binfmt-support debootstrap (missing: {', '.join(missing)})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "qemu-user-static", "binfmt-support", "debootstrap"]
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
            run(["apt-get", "update", "-q"], env=env)
            run(command, env=env)
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
    entry = binfmt / "qemu-aarch64"
    if not entry.exists() and shutil.which("update-binfmts"):
        run(["update-binfmts", "--enable", "qemu-aarch64"])
    if not entry.exists():
        raise CheckError(f"no qemu-aarch64 entry in {binfmt}: install qemu-user-static and binfmt-support")
    text = entry.read_text()
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if not text.startswith("enabled") or "F" not in flags:
        raise CheckError(f"{entry} must be enabled with flag F (fix binary) so that a chroot can run arm64 "
                         f"programs; it says: {text.strip()!r}")


def apt_mirror() -> str:
    """The Debian mirror this machine's apt sources name (one-line .list and deb822 .sources files)."""
    if os.environ.get("FACED_PI_MIRROR"):
        return os.environ["FACED_PI_MIRROR"]
    entries: list[tuple[str, list[str]]] = []  # (uri, suites)
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.name.endswith(".list"):
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]]))
        elif path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                    for uri in fields.get("uris", "").split():
                        entries.append((uri, fields.get("suites", "").split()))
    for uri, suites in entries:
        if SUITE in suites:
            return uri.rstrip("/")
    for uri, suites in entries:  # a Debian archive mirror carries every suite
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise CheckError("no Debian mirror in /etc/apt/sources.list*: set FACED_PI_MIRROR to one")


def mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if (p + "/").startswith(prefix)]


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    if mounted_under(path):
        raise CheckError(f"refusing to delete {path}: something is mounted under it ({mounted_under(path)[0]})")
    shutil.rmtree(path)


# ---------------------------------------------------------------------------------------- cached pieces
class Cache:
    def __init__(self, root: Path, host_python: str):
        self.root = root
        self.host_python = host_python
        root.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)

    # ----------------------------------------------------------------------------------- userland
    def rootfs(self) -> Path:
        key = digest({"suite": SUITE, "arch": ARCH, "variant": "minbase", "include": DEBOOTSTRAP_PACKAGES,
                      "revision": ROOTFS_REVISION})
        target = self.root / f"rootfs-{key}"
        if target.is_dir():
            log(f"userland: cached ({target.name})")
            return target
        partial = self.root / f"rootfs-{key}.partial"
        remove_tree(partial)
        mirror = apt_mirror()
        log(f"userland: debootstrap {SUITE} {ARCH} from the apt sources' mirror (about 3 minutes)")
        started = time.monotonic()
        command = ["unshare", "--mount", "--propagation", "private", "debootstrap", f"--arch={ARCH}",
                   "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_PACKAGES)}", SUITE, str(partial), mirror]
        with open(self.root / "logs" / "debootstrap.log", "w") as output:
            if subprocess.run(command, stdout=output, stderr=subprocess.STDOUT).returncode:
                raise CheckError(f"debootstrap failed; see {self.root / 'logs' / 'debootstrap.log'}")
        for path in ("mnt/data", "mnt/wheels", "mnt/faced", "mnt/check"):
            (partial / path).mkdir(parents=True, exist_ok=True)
        partial.rename(target)
        for old in self.root.glob("rootfs-*"):
            if old != target:
                log(f"userland: removing the old {old.name}")
                remove_tree(old)
        log(f"userland: built in {time.monotonic() - started:.0f} s")
        return target

    # -------------------------------------------------------------------------------------- wheels
    def dependencies(self, source: Path) -> list[str]:
        with open(source / "pyproject.toml", "rb") as handle:
            return list(tomllib.load(handle)["project"]["dependencies"])

    def host_pins(self, dependencies: list[str]) -> dict[str, str]:
        """name -> version in the host's venv, for faced's dependencies and everything they require."""
        code = r"""
import json, re, sys
from importlib import metadata
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
todo = [re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group(0) for r in json.loads(sys.argv[1])]
pins = {}
while todo:
    name = norm(todo.pop())
    if name in pins:
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    pins[name] = dist.version
    for req in dist.requires or []:
        if "extra ==" not in req.replace("extra==", "extra =="):
            todo.append(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0))
print(json.dumps(pins, sort_keys=True))
"""
        result = run([self.host_python, "-c", code, json.dumps(dependencies)], stderr=subprocess.PIPE)
        return json.loads(result.stdout)

    def wheels(self, dependencies: list[str]) -> tuple[Path, str, dict]:
        pins = self.host_pins(dependencies)
        host_version = run([self.host_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout
        if host_version.strip() != PYTHON_VERSION:
            # pip download checks wheel tags and Requires-Python for the target, but evaluates environment
            # markers (`; python_version < "3.11"`) for the Python that runs it.
            log(f"note: the host Python is {host_version.strip()}, the Pi's {PYTHON_VERSION}: a dependency with a "
                "python_version marker may be missing from the wheels (the install in the userland then says so)")
        platforms = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, GLIBC_MINOR + 1)]
        key = digest({"dependencies": dependencies, "pins": pins, "python": PYTHON_VERSION,
                      "platforms": platforms, "revision": WHEELS_REVISION})
        target = self.root / f"wheels-{key}"
        if (target / "requirements.txt").is_file():
            log(f"wheels: cached ({target.name}, {len(list(target.glob('*.whl')))} files)")
            return target, key, json.loads((target / "pins.json").read_text())
        partial = self.root / f"wheels-{key}.partial"
        remove_tree(partial)
        partial.mkdir()
        (partial / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        command = [self.host_python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                   "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
                   *[arg for p in platforms for arg in ("--platform", p)], "-d", str(partial)]
        log(f"wheels: downloading aarch64 wheels for CPython {PYTHON_VERSION} (pinned to the host's versions)")
        started = time.monotonic()
        result = subprocess.run(command + ["-c", str(partial / "constraints.txt"), *dependencies],
                                text=True, capture_output=True)
        used_pins = pins
        if result.returncode:
            log("wheels: the host's versions have no aarch64 wheel for every package; taking the newest ones "
                "(answers may then differ for that reason):\n" + result.stderr.strip()[-1500:])
            used_pins = {}
            for wheel in partial.glob("*.whl"):
                wheel.unlink()
            run(command + list(dependencies))
        (partial / "requirements.txt").write_text("".join(f"{d}\n" for d in dependencies))
        (partial / "pins.json").write_text(json.dumps(used_pins, indent=1, sort_keys=True))
        partial.rename(target)
        for old in self.root.glob("wheels-*"):
            if old != target:
                remove_tree(old)
        log(f"wheels: {len(list(target.glob('*.whl')))} files in {time.monotonic() - started:.0f} s")
        return target, key, used_pins


def build_faced_wheel(host_python: str, workdir: Path) -> tuple[Path, Path]:
    """A copy of the working tree (tracked and untracked, not ignored files) and faced's wheel built from it.

    Building from a copy leaves the repository as it was (no build/ or *.egg-info written by this check) and
    gives the host and the emulated Pi exactly the same code, even while someone edits the tree.
    """
    source = workdir / "src"
    listing = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True)
    if listing.returncode == 0:
        for name in listing.stdout.decode().split("\0"):
            if not name or not (REPO / name).is_file():
                continue  # deleted in the working tree, or a submodule
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    else:  # not a git checkout
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "out", "*.egg-info", "__pycache__", "*.db", "*.db-*"))
    dist = workdir / "dist"
    run([host_python, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", ".", "-w",
         str(dist)], cwd=source)
    wheels = sorted(dist.glob("faced-*.whl"))
    if len(wheels) != 1:
        raise CheckError(f"expected one faced wheel in {dist}, found {[w.name for w in wheels]}")
    return source, wheels[0]


# ------------------------------------------------------------------------------------------- the chroot
class Userland:
    """Commands inside the arm64 userland, each in its own private mount namespace."""

    def __init__(self, rootfs: Path, workdir: Path):
        self.rootfs = rootfs
        self.workdir = workdir

    def command(self, board: str, binds: dict[str, Path], argv: list[str]) -> list[str]:
        """The host command that runs `argv` inside the userland as `board`, with `binds` (mount point in
        the userland -> host path) mounted read-only, /proc with the board's cpuinfo, sysfs and a fresh /tmp."""
        cpuinfo = self.workdir / f"cpuinfo-{board}"
        cpuinfo.write_text(cpuinfo_text(board))
        root = shlex.quote(str(self.rootfs))
        lines = ["set -e",
                 f"mount -t proc proc {root}/proc",
                 f"mount --bind {shlex.quote(str(cpuinfo))} {root}/proc/cpuinfo",
                 f"mount -t sysfs -o ro sysfs {root}/sys",
                 f"mount -t tmpfs -o mode=1777,size=1g tmpfs {root}/tmp"]
        for inside, host in binds.items():
            point = f"{root}/{inside.strip('/')}"
            lines += [f"mkdir -p {point}", f"mount --bind {shlex.quote(str(host))} {point}",
                      f"mount -o remount,bind,ro {point}"]
        environment = ["env", "-i", f"QEMU_CPU={BOARDS[board][0]}", f"PATH={CHROOT_PATH}", "HOME=/root",
                       "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"]
        lines.append("exec " + shlex.join([*environment, "chroot", str(self.rootfs), *argv]))
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)]

    def run(self, board: str, binds: dict[str, Path], argv: list[str], what: str) -> str:
        result = subprocess.run(self.command(board, binds, argv), text=True, capture_output=True)
        if result.returncode:
            raise CheckError(f"{what} failed in the arm64 userland (exit {result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-4000:]}")
        return result.stdout

    def venv(self, wheels: Path, key: str) -> str:
        """/opt/faced-venv-KEY with faced's dependencies from the downloaded wheels (cached in the userland)."""
        venv = f"/opt/faced-venv-{key}"
        host_venv = self.rootfs / venv.lstrip("/")
        if (host_venv / STALE_MARK).is_file():
            log(f"venv: cached ({venv})")
            return venv
        for old in (self.rootfs / "opt").glob("faced-venv-*"):
            remove_tree(old)
        log(f"venv: creating {venv} and installing the wheels with the userland's pip")
        started = time.monotonic()
        binds = {"/mnt/wheels": wheels}
        self.run("pi4", binds, ["python3", "-m", "venv", venv], "python3 -m venv")
        self.run("pi4", binds, [f"{venv}/bin/pip", "install", "-q", "--no-index", "--find-links", "/mnt/wheels",
                                "--disable-pip-version-check", "--no-cache-dir",
                                "-r", "/mnt/wheels/requirements.txt"], "pip install (dependencies)")
        (host_venv / STALE_MARK).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        log(f"venv: ready in {time.monotonic() - started:.0f} s")
        return venv

    def install_faced(self, venv: str, wheel: Path, wheels: Path) -> None:
        self.run("pi4", {"/mnt/faced": wheel.parent, "/mnt/wheels": wheels},
                 [f"{venv}/bin/pip", "install", "-q", "--no-index", "--find-links", "/mnt/wheels",
                  "--disable-pip-version-check", "--no-cache-dir", "--no-deps", "--force-reinstall",
                  f"/mnt/faced/{wheel.name}"], "pip install (faced's wheel)")


# --------------------------------------------------------------------------------------- ELF alignment
def elf_load_segments(path: Path) -> tuple[int, list[tuple[int, int, int]]] | None:
    """(e_machine, [(p_offset, p_vaddr, p_align) of each PT_LOAD]) of an ELF file, None if not ELF."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            return None
        is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
        (machine,) = struct.unpack_from(order + "H", head, 18)
        if is64:
            (phoff,) = struct.unpack_from(order + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", head, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    segments = []
    for index in range(phnum):
        entry = table[index * phentsize:(index + 1) * phentsize]
        if is64:  # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align
            p_type, _, offset, vaddr, _, _, _, align = struct.unpack_from(order + "IIQQQQQQ", entry)
        else:  # Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align
            p_type, offset, vaddr, _, _, _, _, align = struct.unpack_from(order + "IIIIIIII", entry)
        if p_type == PT_LOAD:
            segments.append((offset, vaddr, align))
    return machine, segments


def check_alignment(venv_dir: Path) -> dict:
    """Every ELF file under the venv: aarch64, and each LOAD segment aligned (and congruent) to >= 16 KiB."""
    files, offending, smallest = 0, [], None
    for path in sorted(venv_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        parsed = elf_load_segments(path)
        if parsed is None:
            continue
        files += 1
        machine, segments = parsed
        name = str(path.relative_to(venv_dir))
        if machine != EM_AARCH64:
            offending.append(f"{name}: not aarch64 (e_machine {machine})")
            continue
        if not segments:
            continue
        align = min(a for _, _, a in segments)
        smallest = align if smallest is None else min(smallest, align)
        skewed = [s for s in segments if (s[1] - s[0]) % PAGE_16K]
        if align < PAGE_16K or skewed:
            offending.append(f"{name}: LOAD alignment {align} bytes" + (", offset/address not congruent "
                                                                        "modulo 16 KiB" if skewed else ""))
    return {"elf_files": files, "smallest_alignment": smallest, "offending": offending}


# ------------------------------------------------------------------------------------------ comparison
class Comparison:
    def __init__(self, box_tolerance: float, score_tolerance: float):
        self.box_tolerance = box_tolerance
        self.score_tolerance = score_tolerance
        self.differences: list[str] = []

    def differ(self, where: str, message: str) -> None:
        self.differences.append(f"{where}: {message}")

    def score(self, where: str, host, other) -> None:
        if host is None or other is None:
            if host is not other:
                self.differ(where, f"host {host}, here {other}")
        elif abs(float(host) - float(other)) > self.score_tolerance:
            self.differ(where, f"host {host}, here {other} (more than {self.score_tolerance} apart)")

    def same(self, where: str, host, other) -> None:
        if host != other:
            self.differ(where, f"host {host!r}, here {other!r}")

    def box_distance(self, a, b) -> float:
        return max(abs(float(x) - float(y)) for x, y in zip(a, b))

    def pair_boxes(self, where: str, host: list, other: list, box=lambda item: item["box"]) -> list[tuple]:
        """Pairs of (host item, other item) matched by nearest box; differences for count and distance."""
        if len(host) != len(other):
            self.differ(where, f"host found {len(host)}, here {len(other)}")
        pairs, free = [], list(other)
        for item in host:
            if not free:
                break
            nearest = min(free, key=lambda candidate: self.box_distance(box(item), box(candidate)))
            distance = self.box_distance(box(item), box(nearest))
            if distance > self.box_tolerance:
                self.differ(where, f"host box {box(item)} has no match here (nearest {box(nearest)}, "
                                   f"{distance:.1f} px)")
            free.remove(nearest)
            pairs.append((item, nearest))
        return pairs

    def compare(self, host: dict, other: dict) -> list[str]:
        self.differences = []
        for step, error in other.get("errors", {}).items():
            self.differ(step, f"failed: {error}")
        hs, os_ = host.get("steps", {}), other.get("steps", {})
        if "install" in os_ and not os_["install"].get("models_from_wheel"):
            self.differ("install", f"faced does not use the models its wheel installed ({os_['install']})")
        if "doctor" in os_:
            if not os_["doctor"]["ok"]:
                failed = {k: v["detail"] for k, v in os_["doctor"]["checks"].items() if not v["ok"]}
                self.differ("doctor", f"not ok: {failed}")
        if "detect" in hs and "detect" in os_:
            for h, o in self.pair_boxes("detect", hs["detect"]["faces"], os_["detect"]["faces"]):
                self.score(f"detect {h['box']} score", h["score"], o["score"])
        if "compare" in hs and "compare" in os_:
            h, o = hs["compare"], os_["compare"]
            self.score("compare score", h["score"], o["score"])
            self.score("compare cosine", h["cosine"], o["cosine"])
            self.same("compare same", h["same"], o["same"])
            for hf, of in self.pair_boxes("compare faces", h["faces"], o["faces"]):
                self.same(f"compare {hf['box']} gender", hf["gender"], of["gender"])
                if abs(hf["age"] - of["age"]) > 1.0:
                    self.differ(f"compare {hf['box']} age", f"host {hf['age']}, here {of['age']}")
        if "liveness" in hs and "liveness" in os_:
            h, o = hs["liveness"], os_["liveness"]
            self.same("liveness available", h.get("available"), o.get("available"))
            if h.get("available") and o.get("available"):
                for hf, of in self.pair_boxes("liveness", h["faces"], o["faces"]):
                    self.score(f"liveness {hf['box']} score", hf["liveness"]["score"], of["liveness"]["score"])
                    self.same(f"liveness {hf['box']} live", hf["liveness"]["live"], of["liveness"]["live"])
                    self.same(f"liveness {hf['box']} codes", hf["liveness"]["codes"], of["liveness"]["codes"])
        if "collection" in hs and "collection" in os_:
            h, o = hs["collection"], os_["collection"]
            self.same("enrol", h["enrolled"], o["enrolled"])
            self.same("faces stored", h["faces_stored"], o["faces_stored"])
            self.same("integrity", "ok", o["integrity"])
            for hs_, os2 in zip(h["searches"], o["searches"]):
                where = f"search {hs_['image']}"
                hm = {m["person"]: m for m in hs_["matches"]}
                om = {m["person"]: m for m in os2["matches"]}
                self.same(f"{where} persons", sorted(hm), sorted(om))
                for person in set(hm) & set(om):
                    self.score(f"{where} {person} score", hm[person]["score"], om[person]["score"])
                    if self.box_distance(hm[person]["box"], om[person]["box"]) > self.box_tolerance:
                        self.differ(f"{where} {person} box", f"host {hm[person]['box']}, here {om[person]['box']}")
                self.pair_boxes(f"{where} unknown", hs_["unknown"], os2["unknown"], box=lambda b: b)
        return self.differences


# ------------------------------------------------------------------------------------------------ report
def brief(step: str, answer: dict | None, error: str | None) -> str:
    """One cell of the answers table."""
    if error:
        return f"ERROR {error[:60]}"
    if answer is None:
        return "-"
    if step == "doctor":
        failed = [k for k, v in answer["checks"].items() if not v["ok"]]
        return "ok" if answer["ok"] else f"FAIL {', '.join(failed)}"
    if step == "detect":
        scores = ", ".join(f"{f['score']:.3f}" for f in answer["faces"])
        return f"{len(answer['faces'])} faces ({scores})"
    if step == "compare":
        ages = "/".join(f"{f['age']:.0f}{f['gender'][0]}" for f in answer["faces"])
        return f"score {answer['score']:.4f} cos {answer['cosine']:.4f} same={answer['same']} {ages}"
    if step == "liveness":
        if not answer.get("available"):
            return "not available"
        return "; ".join(f"{f['liveness']['score']} live={f['liveness']['live']}" for f in answer["faces"]) \
            or "no face"
    if step == "collection":
        enrolled = sum(p["accepted"] for p in answer["enrolled"])
        found = "; ".join(
            ", ".join(f"{m['person']} {m['score']:.4f}" for m in s["matches"]) + f" +{len(s['unknown'])} unknown"
            for s in answer["searches"])
        return f"{enrolled} faces enrolled; {found}"
    return json.dumps(answer)[:80]


def report(runs: dict[str, dict]) -> None:
    names = list(runs)
    rows = []
    for step in ("doctor", "detect", "compare", "liveness", "collection"):
        rows.append([step] + [brief(step, runs[n].get("steps", {}).get(step), runs[n].get("errors", {}).get(step))
                              for n in names])
    print("\nanswers (host vs emulated Pi):")
    for row in rows:
        print(f"  {row[0]}")
        for name, cell in zip(names, row[1:]):
            print(f"    {name:<18} {cell}")
    print("\nmodels (runtime, precision in use; manifest default for the machine):")
    for name in names:
        models = runs[name].get("steps", {}).get("models")
        if not models:
            continue
        loaded = ", ".join(f"{m} {v['precision']}" for m, v in models["loaded"].items())
        print(f"  {name:<18} {models['runtime']}: {loaded}")
    first = next((runs[n]["steps"]["models"] for n in names if "models" in runs[n].get("steps", {})), None)
    if first:
        print("  manifest defaults  " + ", ".join(f"{m} {p}" for m, p in first["manifest_default"].items()))


# ------------------------------------------------------------------------------------------------- main
def default_host_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def default_data() -> Path:
    env = os.environ.get("FACED_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def host_environment(source: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PYTHONPATH"] = str(source)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("FACED_PI_CACHE") or "/var/cache/faced-pi-check"))
    parser.add_argument("--data", type=Path, default=default_data(), help="the shared data (holds faces/)")
    parser.add_argument("--python", default=default_host_python(),
                        help="host Python with faced's dependencies (default: the project's .venv)")
    parser.add_argument("--board", action="append", choices=sorted(BOARDS),
                        help="emulated board (repeatable; default: all)")
    parser.add_argument("--box-tolerance", type=float, default=3.0, help="pixels (default 3)")
    parser.add_argument("--score-tolerance", type=float, default=0.01)
    parser.add_argument("--json", type=Path, help="write every answer and difference to this file")
    parser.add_argument("--fresh", action="store_true", help="drop the cache first (a cold run)")
    args = parser.parse_args(argv)
    if os.environ.get("FACED_PI_CHECK", "").lower() in ("skip", "0", "no", "off"):
        log("skipped (FACED_PI_CHECK=skip): the Raspberry Pi check did NOT run")
        return 0
    boards = args.board or sorted(BOARDS)
    started = time.monotonic()
    try:
        if not (args.data / "faces").is_dir():
            raise CheckError(f"face data not found at {args.data}: put ../shared/data beside the repository "
                             "or set FACED_TEST_DATA")
        ensure_host_tools()
        args.cache.mkdir(parents=True, exist_ok=True)
        with open(args.cache / "lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another pi_check using {args.cache}")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if args.fresh:
                for old in list(args.cache.glob("rootfs-*")) + list(args.cache.glob("wheels-*")):
                    remove_tree(old)
            return check(args, boards, started)
    except CheckError as exc:
        log(f"FAILED: {exc}")
        return 1


def check(args, boards: list[str], started: float) -> int:
    cache = Cache(args.cache, args.python)
    with tempfile.TemporaryDirectory(prefix="faced-pi-check-") as tmp:
        workdir = Path(tmp)
        source, wheel = build_faced_wheel(args.python, workdir)
        log(f"faced wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.0f} MB)")
        rootfs = cache.rootfs()
        wheels, key, pins = cache.wheels(cache.dependencies(source))
        userland = Userland(rootfs, workdir)
        venv = userland.venv(wheels, key)
        userland.install_faced(venv, wheel, wheels)
        log(f"faced installed in {venv}; running the smoke test on the host and on {', '.join(boards)} "
            f"(emulated, one process each)")

        jobs = {"host (x86-64)": ([args.python, str(source / "tools" / SMOKE), "--data", str(args.data.resolve())],
                                  host_environment(source))}
        for board in boards:
            argv = [f"{venv}/bin/python", f"/mnt/check/{SMOKE}", "--data", "/mnt/data"]
            binds = {"/mnt/data": args.data.resolve(), "/mnt/check": source / "tools"}
            jobs[f"{board} ({BOARDS[board][0]})"] = (userland.command(board, binds, argv), None)

        def execute(name: str) -> tuple[str, dict, float]:
            command, env = jobs[name]
            begun = time.monotonic()
            log_path = args.cache / "logs" / f"smoke-{name.split()[0]}.log"
            with open(log_path, "w") as stderr:
                try:
                    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                            timeout=SMOKE_TIMEOUT)
                except subprocess.TimeoutExpired:
                    return name, {"steps": {}, "errors": {"run": f"no answer within {SMOKE_TIMEOUT} s"}}, \
                        time.monotonic() - begun
            try:
                answers = json.loads(result.stdout)
            except json.JSONDecodeError:
                tail = log_path.read_text()[-3000:]
                answers = {"steps": {}, "errors": {"run": f"exit {result.returncode}, no answers; {log_path}:\n"
                                                          f"{tail}"}}
            return name, answers, time.monotonic() - begun

        runs: dict[str, dict] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            for name, answers, seconds in pool.map(execute, list(jobs)):
                runs[name] = answers
                log(f"smoke test {name}: finished in {seconds:.0f} s (wall time, not a benchmark)")

        alignment = check_alignment(rootfs / venv.lstrip("/"))

    host_name = next(iter(runs))
    host = runs[host_name]
    failures: list[str] = [f"host: {step} failed: {error}" for step, error in host.get("errors", {}).items()]
    comparison = Comparison(args.box_tolerance, args.score_tolerance)
    for name in list(runs)[1:]:
        failures += [f"{name}: {d}" for d in comparison.compare(host, runs[name])]
    report(runs)
    liveness = [n for n, r in runs.items() if r.get("steps", {}).get("liveness", {}).get("available") is False]
    if liveness:
        print(f"\nliveness: NOT AVAILABLE in this faced ({', '.join(liveness)}): "
              f"{runs[liveness[0]]['steps']['liveness'].get('reason')}")

    files = alignment["elf_files"]
    print(f"\n16 KiB pages (Pi 5): {files} ELF files in the venv, all aarch64 with LOAD segments aligned to "
          f">= 16 KiB" if not alignment["offending"] else
          f"\n16 KiB pages (Pi 5): {len(alignment['offending'])} of {files} ELF files would not load:")
    if alignment["smallest_alignment"]:
        print(f"  smallest LOAD alignment: {alignment['smallest_alignment'] // 1024} KiB")
    for item in alignment["offending"]:
        print(f"  {item}")
    failures += [f"16 KiB alignment: {item}" for item in alignment["offending"]]
    if not pins:
        print("note: the aarch64 wheels are not pinned to the host's versions")

    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "alignment": alignment, "pins": pins,
                                         "failures": failures}, indent=1))
    elapsed = time.monotonic() - started
    if failures:
        print(f"\npi_check: FAILED after {elapsed:.0f} s ({len(failures)} problems):")
        for failure in failures:
            print(f"  {failure}")
        return 1
    emulated = " and ".join(f"{b} ({BOARDS[b][0]})" for b in boards)
    print(f"\npi_check: OK in {elapsed:.0f} s: the answers on the emulated {emulated} match the host's "
          f"(boxes within {args.box_tolerance:g} px, scores within {args.score_tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
