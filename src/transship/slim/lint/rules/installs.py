"""SZ009–SZ012: what gets installed into the image and does not need to be there.

Only stages whose layers reach the image count: a builder stage may hold compilers and
debuggers at no cost to the final image.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from transship.slim.lint.packages import INSTALL, REMOVE, PackageCommand
from transship.slim.lint.rules.base import Hit, LintContext, Severity, hit, rule
from transship.slim.lint.rules.caches import package_commands
from transship.slim.lint.stages import Stage, Step

SYSTEM_FAMILIES = frozenset({"apt", "apk", "dnf", "zypper"})

SSH_SERVERS = ("openssh-server", "openssh", "dropbear", "ssh")
DEBUG_TOOLS = (
    "gdb",
    "gdbserver",
    "strace",
    "ltrace",
    "valgrind",
    "tcpdump",
    "perf",
    "linux-perf",
    "linux-tools-*",
    "bpftrace",
    "bpfcc-tools",
    "lsof",
    "nmap",
    "netcat",
    "netcat-*",
    "ncat",
    "telnet",
    "vim",
    "vim-*",
    "nano",
    "emacs",
    "emacs-*",
    "htop",
    "iotop",
    "iftop",
)
PIP_DEBUG_TOOLS = ("debugpy", "ipdb", "pdbpp", "pudb", "remote-pdb")
BUILD_TOOLS = (
    "gcc",
    "gcc-*",
    "g++",
    "g++-*",
    "gcc-c++",
    "clang",
    "clang-*",
    "llvm",
    "llvm-*",
    "make",
    "cmake",
    "ninja-build",
    "build-essential",
    "build-base",
    "alpine-sdk",
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "pkgconf",
    "pkgconfig",
    "bison",
    "flex",
    "git",
    "golang",
    "golang-*",
    "go",
    "rustc",
    "cargo",
    "rust",
    "maven",
    "gradle",
    "ant",
    "default-jdk",
    "default-jdk-headless",
    "openjdk-*-jdk",
    "openjdk-*-jdk-headless",
    "openjdk*-jdk",
    "java-*-openjdk-devel",
    "*-dev",
    "*-devel",
    "linux-headers",
    "linux-headers-*",
    "kernel-headers",
    "@development-tools",
    "development tools",
)
DOC_PACKAGES = (
    "*-doc",
    "*-docs",
    "*-doc-*",
    "man-db",
    "man",
    "manpages",
    "manpages-*",
    "man-pages",
    "man-pages-*",
    "mandoc",
    "info",
)
SOURCE_PACKAGES = ("*-src", "*-source", "linux-source", "linux-source-*")

# Images made for building, or full images that carry compilers and headers.
BUILD_IMAGES = frozenset(
    {
        "golang",
        "rust",
        "maven",
        "gradle",
        "gcc",
        "buildpack-deps",
        "sbt",
        "clojure",
        "haskell",
        "swift",
    }
)
FULL_IMAGES_WITH_COMPILERS = frozenset({"python", "node", "ruby", "perl"})
JDK_TAGGED_IMAGES = frozenset({"eclipse-temurin", "sapmachine", "ibm-semeru-runtimes"})


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass
class Installed:
    name: str
    command: PackageCommand


def installed_packages(step: Step) -> list[Installed]:
    """Packages a RUN installs and does not remove again in the same RUN."""
    commands = package_commands(step)
    removed: set[str] = set()
    for command in commands:
        if command.action == REMOVE:
            removed.update(command.packages)
            if command.family == "apk" and command.command is not None:
                removed.update(w.lower() for w in command.command.argv[2:] if not w.startswith("-"))
    purges_apt = _purges_apt_installs(step)
    result: list[Installed] = []
    for command in commands:
        if command.action != INSTALL or (purges_apt and command.family == "apt"):
            continue
        virtual = command.option_values("--virtual") + command.option_values("-t")
        if any(name.lower() in removed for name in virtual):
            continue  # apk add --virtual .deps … && apk del .deps
        result.extend(Installed(name, command) for name in command.packages if name not in removed)
    return result


def _purges_apt_installs(step: Step) -> bool:
    """``apt-mark auto '.*'`` then ``apt-get purge --auto-remove``: every package the step
    installed goes again (the pattern of the official images)."""
    marks_auto = any(c.name == "apt-mark" and c.argv[1:2] == ["auto"] for c in step.commands)
    auto_removes = any(
        p.family == "apt"
        and (p.verb == "autoremove" or p.has_option("--auto-remove", "--autoremove"))
        for p in package_commands(step)
    )
    return marks_auto and auto_removes


def _shipped_runs(context: LintContext) -> list[Step]:
    return [step for step in context.shipped_steps() if step.keyword == "RUN"]


def _names(items: list[Installed]) -> str:
    return ", ".join(dict.fromkeys(item.name for item in items))


@rule("SZ009", "debug-tools", Severity.WARNING)
def debug_tools(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    for step in context.shipped_steps():
        if step.keyword == "EXPOSE":
            ports = [word.split("/", 1)[0] for word in step.text.split()]
            if "22" in ports:
                hits.append(hit(step, "lint.SZ009.message.port", "lint.SZ009.fix"))
            continue
        if step.keyword != "RUN":
            continue
        found = [
            item
            for item in installed_packages(step)
            if (
                item.command.family in SYSTEM_FAMILIES
                and _matches(item.name, SSH_SERVERS + DEBUG_TOOLS)
            )
            or (item.command.family == "pip" and _matches(item.name, PIP_DEBUG_TOOLS))
        ]
        if found:
            hits.append(hit(step, "lint.SZ009.message", "lint.SZ009.fix", packages=_names(found)))
    return hits


def _configured_earlier(steps: list[Step], step: Step, setting: str) -> bool:
    """True when an earlier RUN (or a COPY heredoc) wrote a package-manager setting."""
    for earlier in steps:
        if earlier is step:
            return False
        if (
            earlier.keyword in ("RUN", "COPY", "ADD")
            and setting.lower() in earlier.instruction.source.lower()
        ):
            return True
    return False


def _recommends_off(command: PackageCommand) -> bool:
    if command.family == "apt":
        if command.has_option("--no-install-recommends"):
            return True
        return any("install-recommends" in value.lower() for value in command.option_values("-o"))
    values = command.option_values("--setopt")
    return any(value.lower().replace(" ", "").startswith("install_weak_deps=") for value in values)


@rule("SZ010", "recommended-packages", Severity.WARNING)
def recommended_packages(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    steps = context.shipped_steps()
    for step in _shipped_runs(context):
        for command in package_commands(step):
            if command.action != INSTALL or not command.packages:
                continue
            if command.family == "apt" and command.verb == "install":
                setting = "Install-Recommends"
            elif (
                command.family == "dnf"
                and command.program in ("dnf", "dnf5")
                and command.verb == "install"
            ):
                setting = "install_weak_deps"
            else:
                continue
            if _recommends_off(command) or _configured_earlier(steps, step, setting):
                continue
            hits.append(
                hit(
                    step,
                    f"lint.SZ010.message.{command.family}",
                    f"lint.SZ010.fix.{command.family}",
                    tool=command.program,
                )
            )
            break
    return hits


@rule("SZ011", "docs-or-sources", Severity.INFO)
def docs_or_sources(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    for step in _shipped_runs(context):
        installed = [
            item for item in installed_packages(step) if item.command.family in SYSTEM_FAMILIES
        ]
        docs = [item for item in installed if _matches(item.name, DOC_PACKAGES)]
        sources = [item for item in installed if _matches(item.name, SOURCE_PACKAGES)]
        if docs or sources:
            hits.append(
                hit(
                    step,
                    "lint.SZ011.message.packages",
                    "lint.SZ011.fix.packages",
                    packages=_names(docs + sources),
                )
            )
        for command in package_commands(step):
            if command.family == "apt" and command.verb == "source":
                hits.append(hit(step, "lint.SZ011.message.apt_source", "lint.SZ011.fix.apt_source"))
            elif (
                command.family == "gem"
                and command.action == INSTALL
                and not _gem_without_docs(command)
            ):
                hits.append(hit(step, "lint.SZ011.message.gem", "lint.SZ011.fix.gem"))
    return hits


def _gem_without_docs(command: PackageCommand) -> bool:
    return command.has_option("--no-document", "-N") or (
        command.has_option("--no-ri") and command.has_option("--no-rdoc")
    )


def split_image(reference: str) -> tuple[str, str, str | None, str | None]:
    """``registry, repository, tag, digest`` with Docker Hub's defaults filled in."""
    name, _, digest = reference.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, repository = parts[0], "/".join(parts[1:])
    else:
        registry, repository = "docker.io", name
        if "/" not in repository:
            repository = "library/" + repository
    return registry, repository.lower(), tag, digest or None


def build_image_reason(reference: str) -> bool:
    """True when an image is meant for building (compilers, JDK, SDK) rather than running."""
    if not reference or "$" in reference or reference == "scratch":
        return False
    _, repository, tag, digest = split_image(reference)
    short = repository.rsplit("/", 1)[-1]
    tag_text = (tag or "").lower()
    if short in BUILD_IMAGES or repository.endswith("dotnet/sdk"):
        return True
    if short == "openjdk":
        return "jre" not in tag_text
    if short in JDK_TAGGED_IMAGES:
        return "jdk" in tag_text
    if short in FULL_IMAGES_WITH_COMPILERS and repository.startswith("library/"):
        if tag is None and digest is not None:
            return False  # pinned by digest only: cannot tell the variant
        return not any(word in tag_text for word in ("slim", "alpine"))
    return False


def _installs_dev_dependencies(command: PackageCommand, step: Step) -> bool:
    if command.family != "npm" or command.action != INSTALL or command.packages:
        return False
    if command.has_option("-g", "--global", "--production", "--prod", "-P"):
        return False
    if "dev" in command.option_values("--omit") or command.option_values("--only"):
        return False
    environment = dict(step.variables)
    if command.command is not None:
        environment.update(command.command.assignments)
    return (environment.get("NODE_ENV") or "") != "production"


def _root_stage(context: LintContext) -> Stage:
    return context.model.target.lineage()[0]


@rule("SZ012", "build-tools-in-final-stage", Severity.WARNING)
def build_tools_in_final_stage(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    root = _root_stage(context)
    if build_image_reason(root.base):
        line = root.from_instruction.line
        hits.append(hit(line, "lint.SZ012.message.base", "lint.SZ012.fix.base", image=root.base))
    for step in _shipped_runs(context):
        tools = [
            item
            for item in installed_packages(step)
            if item.command.family in SYSTEM_FAMILIES and _matches(item.name, BUILD_TOOLS)
        ]
        if tools:
            hits.append(
                hit(
                    step,
                    "lint.SZ012.message.packages",
                    "lint.SZ012.fix.packages",
                    packages=_names(tools),
                )
            )
        for command in package_commands(step):
            if _installs_dev_dependencies(command, step):
                hits.append(
                    hit(
                        step,
                        "lint.SZ012.message.devdeps",
                        "lint.SZ012.fix.devdeps",
                        tool=command.program,
                    )
                )
                break
    return hits
