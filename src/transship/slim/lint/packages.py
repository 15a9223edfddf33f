"""Recognise package-manager commands: which manager, what it does, which packages, which options.

Managers are grouped in families that share a cache: ``apt`` (apt-get, apt, aptitude),
``apk``, ``dnf`` (dnf, yum, microdnf, tdnf), ``zypper``, ``pip`` (pip, ``python -m pip``,
``uv pip``), ``npm`` (npm, yarn, pnpm) and ``gem``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from transship.slim.lint.shell import ShellCommand

INSTALL = "install"
UPDATE = "update"  # refresh package lists
REMOVE = "remove"
CLEAN = "clean"  # the manager's own cache cleanup
OTHER = "other"

_APT = {"apt-get", "apt", "aptitude"}
_DNF = {"dnf", "yum", "microdnf", "tdnf", "dnf5"}
_PIP = re.compile(r"^pip(\d+(\.\d+)?)?$")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")

# Options that take a separate value, per family (so the value is not taken for a package).
_VALUE_OPTIONS = {
    "apt": {"-o", "-t", "-c", "--target-release", "--option", "--config-file"},
    "apk": {
        "-t",
        "--virtual",
        "-X",
        "--repository",
        "-p",
        "--root",
        "--arch",
        "--cache-dir",
        "--repositories-file",
    },
    "dnf": {
        "--setopt",
        "--enablerepo",
        "--disablerepo",
        "--repo",
        "--releasever",
        "--installroot",
        "-c",
        "--config",
        "--exclude",
        "-x",
        "--repofrompath",
        "--nobest",
        "--forcearch",
    },
    "zypper": {"-r", "--repo", "-t", "--type", "--from"},
    "pip": {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--trusted-host",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--progress-bar",
        "--cache-dir",
        "-e",
        "--editable",
        "--src",
        "--python",
    },
    "npm": {
        "--prefix",
        "--registry",
        "--cache",
        "--omit",
        "--include",
        "-w",
        "--workspace",
        "--modules-folder",
        "--cache-folder",
        "--store-dir",
    },
    "gem": {
        "-v",
        "--version",
        "-i",
        "--install-dir",
        "-n",
        "--bindir",
        "-s",
        "--source",
        "--platform",
    },
}
_ACTIONS = {
    "apt": {
        "install": INSTALL,
        "reinstall": INSTALL,
        "build-dep": INSTALL,
        "source": INSTALL,
        "update": UPDATE,
        "upgrade": INSTALL,
        "dist-upgrade": INSTALL,
        "full-upgrade": INSTALL,
        "remove": REMOVE,
        "purge": REMOVE,
        "autoremove": REMOVE,
        "clean": CLEAN,
        "autoclean": CLEAN,
    },
    "apk": {"add": INSTALL, "upgrade": INSTALL, "fix": INSTALL, "update": UPDATE, "del": REMOVE},
    "dnf": {
        "install": INSTALL,
        "groupinstall": INSTALL,
        "localinstall": INSTALL,
        "reinstall": INSTALL,
        "update": INSTALL,
        "upgrade": INSTALL,
        "group": INSTALL,
        "module": INSTALL,
        "makecache": UPDATE,
        "remove": REMOVE,
        "erase": REMOVE,
        "autoremove": REMOVE,
        "clean": CLEAN,
    },
    "zypper": {
        "install": INSTALL,
        "in": INSTALL,
        "update": INSTALL,
        "up": INSTALL,
        "dist-upgrade": INSTALL,
        "dup": INSTALL,
        "refresh": UPDATE,
        "ref": UPDATE,
        "remove": REMOVE,
        "rm": REMOVE,
        "clean": CLEAN,
        "cc": CLEAN,
    },
    "pip": {"install": INSTALL, "uninstall": REMOVE, "download": OTHER},
    "npm": {
        "install": INSTALL,
        "i": INSTALL,
        "ci": INSTALL,
        "add": INSTALL,
        "update": INSTALL,
        "isntall": INSTALL,
        "remove": REMOVE,
        "uninstall": REMOVE,
        "rm": REMOVE,
    },
    "gem": {"install": INSTALL, "update": INSTALL, "uninstall": REMOVE},
}


@dataclass
class PackageCommand:
    family: str  # apt, apk, dnf, zypper, pip, npm, gem
    program: str  # apt-get, yum, yarn, ...
    action: str  # INSTALL, UPDATE, REMOVE, CLEAN, OTHER
    verb: str  # the subcommand as written
    packages: list[str] = field(default_factory=list)  # names, versions stripped
    options: list[str] = field(default_factory=list)  # every option word, values joined (--x=y)
    command: ShellCommand | None = None

    def has_option(self, *names: str) -> bool:
        """True when any option is one of `names` (``--x`` or ``--x=value``)."""
        return any(
            opt == name or opt.startswith(name + "=") for opt in self.options for name in names
        )

    def option_values(self, name: str) -> list[str]:
        prefix = name + "="
        return [opt[len(prefix) :] for opt in self.options if opt.startswith(prefix)]


def classify(command: ShellCommand) -> PackageCommand | None:
    """What a shell command does as a package manager, or None if it is not one."""
    argv = list(command.argv)
    if not argv:
        return None
    program = posixpath.basename(argv[0])
    family = _family(program)
    if program == "uv" and len(argv) > 2 and argv[1] == "pip":
        family, argv = "pip", argv[1:]
    elif _PYTHON.match(program) and len(argv) > 2 and argv[1] == "-m" and _PIP.match(argv[2]):
        family, argv = "pip", argv[2:]
    if family is None:
        return None
    return _parse(family, program, argv[1:], command)


def _family(program: str) -> str | None:
    if program in _APT:
        return "apt"
    if program == "apk":
        return "apk"
    if program in _DNF:
        return "dnf"
    if program == "zypper":
        return "zypper"
    if _PIP.match(program):
        return "pip"
    if program in ("npm", "yarn", "pnpm"):
        return "npm"
    if program == "gem":
        return "gem"
    return None


def _parse(family: str, program: str, args: list[str], command: ShellCommand) -> PackageCommand:
    value_options = _VALUE_OPTIONS.get(family, set())
    options: list[str] = []
    positional: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word.startswith("-") and word != "-":
            if word in value_options and index + 1 < len(args):
                options.append(f"{word}={args[index + 1]}")
                index += 2
                continue
            options.append(word)
        else:
            positional.append(word)
        index += 1
    verb = positional[0] if positional else ""
    action = _ACTIONS.get(family, {}).get(verb, OTHER)
    if family == "npm" and program == "yarn" and not positional:
        action, verb = INSTALL, "install"  # a bare `yarn` installs
    if family == "apk" and verb == "cache" and positional[1:2] in (["clean"], ["purge"]):
        action = CLEAN
    if family == "pip" and verb == "cache" and positional[1:2] in (["purge"], ["remove"]):
        action = CLEAN
    if family == "npm" and verb in ("cache", "store") and positional[1:2] in (["clean"], ["prune"]):
        action = CLEAN
    packages = (
        [package_name(word) for word in positional[1:]] if action in (INSTALL, REMOVE) else []
    )
    return PackageCommand(
        family, program, action, verb, [p for p in packages if p], options, command
    )


_VERSION_SPLIT = re.compile(r"[=<>~!;\[@ ]")


def package_name(word: str) -> str:
    """``gcc=4:12`` → ``gcc``, ``debugpy==1.8`` → ``debugpy``, ``libc6:amd64`` → ``libc6``.

    Local files, URLs and unexpanded variables are not names: they give ``""``.
    """
    if "/" in word and not word.startswith("@") or word.startswith("$") or word in (".", ".."):
        return ""
    if word.startswith("@") and "/" in word:  # npm scoped package, maybe @scope/name@1.2
        return word.rsplit("@", 1)[0].lower() if word.count("@") > 1 else word.lower()
    name = _VERSION_SPLIT.split(word, 1)[0]
    name = name.split(":", 1)[0]
    if name.endswith((".deb", ".rpm", ".whl", ".tar.gz", ".zip", ".apk")):
        return ""
    return name.lower()
