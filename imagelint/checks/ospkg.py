"""OS package-manager rules (apt, apk, dnf/yum/microdnf, zypper) and the build-toolchain rule.

These need more than a declarative ``match``: options that take a separate value
(``apt-get -o Dpkg::Options::=--force-confold install``) hide the subcommand from
``Command.subcommand``; a cache is only cleaned by a clean command that runs
*after* the install; package names come through shell variables
(``buildDeps='gcc make'; apt-get install $buildDeps; apt-get purge $buildDeps``);
and settings can come from config files written earlier in the stage.
"""
from __future__ import annotations

import fnmatch
import os
import re

from ..rules import Problem

# -- parsing package-manager command lines --------------------------------------

# Options that take their value as the next word; without this table the value
# would be read as the subcommand or as a package name.
_VALUE_OPTS = {
    "apt": {"-o", "--option", "-c", "--config-file", "-t", "--target-release", "--default-release",
            "-a", "--host-architecture", "-P", "--build-profiles"},
    "apk": {"-X", "--repository", "-p", "--root", "--arch", "--cache-dir", "--keys-dir",
            "--repositories-file", "-t", "--virtual", "--wait", "--cache-max-age", "--timeout"},
    "dnf": {"-c", "--config", "-d", "--debuglevel", "-e", "--errorlevel", "--installroot",
            "--releasever", "--enablerepo", "--disablerepo", "--repo", "--repoid", "-x", "--exclude",
            "--setopt", "--forcearch", "--downloaddir", "--destdir", "--color", "--rpmverbosity",
            "--comment", "--advisory", "--advisories", "--bz", "--cve", "--sec-severity",
            "--secseverity", "--repofrompath", "--enableplugin", "--disableplugin"},
    "zypper": {"-c", "--config", "-R", "--root", "-D", "--reposd-dir", "-C", "--cache-dir",
               "--raw-cache-dir", "--solv-cache-dir", "--pkg-cache-dir", "-t", "--type", "-r",
               "--repo", "--from", "-p", "--plus-repo", "--installroot"},
}
_FAMILY = {
    "apt-get": "apt", "apt": "apt", "aptitude": "apt",
    "apk": "apk",
    "dnf": "dnf", "dnf5": "dnf", "dnf-3": "dnf", "yum": "dnf", "microdnf": "dnf",
    "zypper": "zypper",
}


class PkgCall:
    """One package-manager command: ``tool``, ``sub`` (subcommand), ``operands``, ``opts``."""

    __slots__ = ("tool", "family", "sub", "operands", "opts", "cmd", "index")

    def __init__(self, tool: str, family: str, sub: str, operands: list, opts: list, cmd, index: int):
        self.tool = tool  # apt-get, apt, aptitude, apk, dnf, yum, microdnf, zypper
        self.family = family  # apt, apk, dnf, zypper
        self.sub = sub
        self.operands = operands  # positionals after the subcommand (packages, mostly)
        self.opts = opts  # [(name, value or None)]
        self.cmd = cmd
        self.index = index  # position of the command in the RUN

    def has(self, *names: str) -> bool:
        """Option present (``-y`` also inside ``-qy``)."""
        return self.cmd.has_flag(*names)

    def opt_values(self, *names: str) -> list:
        return [v for k, v in self.opts if k in names and v is not None]

    def __repr__(self) -> str:
        return f"PkgCall({self.tool} {self.sub} {self.operands})"


def parse_pkg_call(cmd, index: int = 0):
    """A :class:`PkgCall` for a package-manager command, else None."""
    tool = cmd.name
    family = _FAMILY.get(tool)
    if family is None:
        return None
    takes_value = _VALUE_OPTS[family]
    argv = cmd.argv
    sub = ""
    operands: list = []
    opts: list = []
    i = 1
    only_operands = False
    while i < len(argv):
        a = argv[i]
        if only_operands or not a.startswith("-") or a == "-":
            if not sub:
                sub = a
            else:
                operands.append(a)
        elif a == "--":
            only_operands = True
        elif a.startswith("--"):
            name, eq, value = a.partition("=")
            if eq:
                opts.append((name, value))
            elif name in takes_value and i + 1 < len(argv):
                opts.append((name, argv[i + 1]))
                i += 1
            else:
                opts.append((name, None))
        else:
            short = a[:2]
            if short in takes_value:
                if len(a) > 2:  # -oFoo=1, -o=Foo=1
                    opts.append((short, a[2:].lstrip("=")))
                elif i + 1 < len(argv):
                    opts.append((short, argv[i + 1]))
                    i += 1
                else:
                    opts.append((short, None))
            else:
                opts.extend(("-" + ch, None) for ch in a[1:])
        i += 1
    return PkgCall(tool, family, sub, operands, opts, cmd, index)


def pkg_calls(ins) -> list:
    """Package-manager commands of a RUN, in order."""
    out = []
    for i, cmd in enumerate(ins.commands):
        call = parse_pkg_call(cmd, i)
        if call is not None:
            out.append(call)
    return out


# subcommands per family that install packages (and so download metadata)
_INSTALL = {
    "apt": {"install", "reinstall"},
    "apk": {"add"},
    "dnf": {"install", "groupinstall", "localinstall", "reinstall", "builddep", "in"},
    "zypper": {"install", "in", "source-install", "si"},
}
_GROUP_SUBS = {"group", "groups", "module"}  # dnf group install X, dnf module install X


def is_install(call: PkgCall) -> bool:
    if call.sub in _INSTALL[call.family]:
        return True
    return call.family == "dnf" and call.sub in _GROUP_SUBS and call.operands[:1] == ["install"]


def install_operands(call: PkgCall) -> list:
    """Packages named by an install call (``dnf group install X`` → [X])."""
    if call.family == "dnf" and call.sub in _GROUP_SUBS:
        return call.operands[1:]
    return call.operands


def _stage_chain(ins) -> list:
    """The stage of ``ins`` and its FROM-ancestors, root first."""
    return ins.stage.chain() if ins.stage is not None else []


def _root_image(stage) -> str:
    seen = []
    while stage is not None and stage.parent is not None and stage not in seen:
        seen.append(stage)
        stage = stage.parent
    return stage.image if stage is not None else ""


class _ConfigWrites:
    """Where the Dockerfile writes a package-manager setting matching ``value_rx`` into a
    config file named by ``path_hints`` — ``echo 'APT::Install-Recommends "false";' >
    /etc/apt/apt.conf.d/x`` in a RUN, a COPY/ADD heredoc, or a COPY of build-context files
    into the config directory. Scanned once per check, on first use.
    """

    def __init__(self, df, ctx, value_rx, path_hints):
        self.df, self.ctx, self.rx, self.hints = df, ctx, value_rx, path_hints
        self._at = None  # stage index → indexes of instructions that write the setting

    def _scan(self) -> dict:
        at: dict = {}
        for o in self.df.instructions:  # ONBUILD triggers are skipped: they run in a child image
            if o.stage is not None and self._writes(o):
                at.setdefault(o.stage.index, []).append(o.index)
        return at

    def _writes(self, o) -> bool:
        hints = self.hints
        if o.keyword == "RUN":
            return bool(self.rx.search(o.raw)) and any(h in o.raw for h in hints)
        if o.keyword not in ("COPY", "ADD"):
            return False
        words = o.args.split()
        if not any(h in o.raw for h in hints):
            return False
        if o.heredocs:
            return any(self.rx.search(h.body) for h in o.heredocs)
        ctx = self.ctx
        if o.flag("from") is None and ctx is not None and ctx.context_dir:
            return any(_context_file_matches(ctx.context_dir, src, self.rx) for src in words[:-1])
        return False

    def before(self, ins) -> bool:
        """Is the setting written by ``ins`` or earlier in its stage, or in a stage it builds on?"""
        if self._at is None:
            self._at = self._scan()
        for st in _stage_chain(ins):
            for idx in self._at.get(st.index, ()):
                if st is not ins.stage or idx <= ins.index:
                    return True
        return False


def _context_file_matches(context_dir: str, src: str, value_rx) -> bool:
    path = os.path.normpath(os.path.join(context_dir, src.lstrip("/")))
    if not path.startswith(os.path.normpath(context_dir)):
        return False
    paths = [path]
    if os.path.isdir(path):
        try:
            paths = [os.path.join(path, n) for n in sorted(os.listdir(path))[:50]]
        except OSError:
            return False
    for p in paths:
        try:
            if os.path.isfile(p) and os.path.getsize(p) < 65536:
                with open(p, encoding="utf-8", errors="replace") as f:
                    if value_rx.search(f.read()):
                        return True
        except OSError:
            continue
    return False


def _cache_mounted(ins, paths) -> bool:
    """A cache/tmpfs mount on a cache directory, a parent of it or a directory inside it."""
    for target in ins.cache_mount_targets():
        t = target.rstrip("/") or "/"
        if any(t == p or p.startswith(t + "/") or t.startswith(p + "/") for p in paths):
            return True
    return False


def _rm_targets(cmd) -> list:
    if cmd.name != "rm":
        return []
    return [a for a in cmd.args if not a.startswith("-")]


def _removes_path(cmd, dirs) -> bool:
    """``rm -rf /var/cache/dnf``, ``/var/cache/dnf/*`` or a parent like ``/var/cache/*``."""
    for t in _rm_targets(cmd):
        t = t.rstrip("/")
        if t.endswith("/*"):
            t = t[:-2]
        for d in dirs:
            if t == d or (t and d.startswith(t + "/")):
                return True
    return False


def _fmt_names(names: list, limit: int = 6) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- IL1001 apt-update-without-install -------------------------------------------

# apt subcommands that use the freshly downloaded lists
_APT_USES_LISTS = {"install", "reinstall", "upgrade", "dist-upgrade", "full-upgrade", "safe-upgrade",
                   "build-dep", "source", "download", "satisfy"}
_APT_HELPERS = {"install_packages", "apt-install", "add-apt-repository", "apt-fast"}


def _runs_script(cmd) -> bool:
    """A local script or a piped installer: it may well install packages itself."""
    name = cmd.argv[0] if cmd.argv else ""
    if cmd.name in ("sh", "bash", "dash", "ash", "zsh") and (cmd.positionals() or cmd.op == "|"):
        return True
    if name.endswith(".sh") or name.startswith(("./", "../")):
        return True
    return "/" in name and not name.startswith(("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/"))


def apt_update_without_install(df, ctx):
    for ins in df.walk("RUN", shipped_only=ctx.rule.stages == "shipped"):
        cmds = ins.commands
        last_update = None
        for i, cmd in enumerate(cmds):
            call = parse_pkg_call(cmd, i)
            if call is not None and call.family == "apt" and call.sub == "update":
                last_update = i
        if last_update is None:
            continue
        used = False
        for cmd in cmds[last_update + 1:]:
            call = parse_pkg_call(cmd)
            if call is not None and call.family == "apt" and call.sub in _APT_USES_LISTS:
                used = True
            elif cmd.name in _APT_HELPERS or _runs_script(cmd):
                used = True
        if not used:
            yield Problem.at(ins)


# -- IL1003 apt-no-install-recommends -------------------------------------------

_APT_RECOMMENDS_OFF = re.compile(r"Install-Recommends\W{0,6}(?:false|0|no|off)\b", re.I)


def _apt_recommends_off(call) -> bool:
    if call.tool == "aptitude":
        return call.has("-R", "--without-recommends")
    if call.has("--no-install-recommends"):
        return True
    return any(_APT_RECOMMENDS_OFF.search(v) for v in call.opt_values("-o", "--option"))


def apt_no_install_recommends(df, ctx):
    conf = _ConfigWrites(df, ctx, _APT_RECOMMENDS_OFF, ("apt.conf",))
    for ins in df.walk("RUN", shipped_only=ctx.rule.stages == "shipped"):
        for call in pkg_calls(ins):
            if call.family != "apt" or call.sub != "install" or _apt_recommends_off(call):
                continue
            if conf.before(ins):
                break
            if call.tool == "aptitude":
                yield Problem.at(ins, message="`aptitude install` without `--without-recommends` (`-R`) also "
                                              "installs every recommended package, which often doubles the "
                                              "install size",
                                 fix="add `--without-recommends`: `aptitude install -y -R PKG`")
            elif call.tool == "apt":
                yield Problem.at(ins, message="`apt install` without `--no-install-recommends` also installs "
                                              "every recommended package, which often doubles the install size")
            else:
                yield Problem.at(ins)
            break


# -- IL1005 apt-install-split -----------------------------------------------------

def apt_install_split(df, ctx):
    first: dict = {}  # (stage index, onbuild) → line of the first installing RUN
    for ins in df.walk("RUN", shipped_only=ctx.rule.stages == "shipped"):
        if ins.stage is None:
            continue
        calls = [c for c in pkg_calls(ins) if c.family == "apt"]
        if not any(c.sub in ("install", "reinstall") for c in calls):
            continue
        key = (ins.stage.index, ins.onbuild)  # ONBUILD triggers run in another build
        if key not in first:
            first[key] = ins.start_line
            continue
        if any(c.sub == "update" for c in calls):
            cost = "this RUN downloads the package lists again and adds another layer"
        else:
            cost = "this RUN adds another layer and relies on package lists left in an earlier layer"
        yield Problem.at(
            ins,
            message=f"apt installs packages again in this stage (first apt install: line {first[key]}): {cost}",
        )


# -- IL1020-IL1023: rpm-family and zypper caches ---------------------------------

class _CacheSpec:
    """What leaves a cache behind for one tool, and what clears it."""

    def __init__(self, tools, subs, clean_subs, clean_args, dirs, label):
        self.tools = set(tools)
        self.subs = set(subs)  # subcommands that download metadata/packages
        self.clean_subs = set(clean_subs)
        self.clean_args = set(clean_args)  # `clean` arguments that remove the metadata
        self.dirs = dirs  # cache directories (rm -rf / cache mounts)
        self.label = label


_DNF_META = {"install", "in", "groupinstall", "localinstall", "reinstall", "builddep", "update", "upgrade",
             "distro-sync", "distrosync", "downgrade", "swap", "makecache", "groupupdate", "update-minimal",
             "upgrade-minimal", "group", "groups", "module"}
_CACHE_SPECS = {
    # RHEL/CentOS 8+, Amazon Linux 2023 and Fedora: yum is dnf and caches in /var/cache/dnf
    # (dnf5: /var/cache/libdnf5); `yum clean all` and `dnf clean all` both work there.
    "yum": _CacheSpec({"yum"}, _DNF_META, {"clean"}, {"all", "metadata"},
                      ("/var/cache/yum", "/var/cache/dnf", "/var/cache/libdnf5"), "yum clean all"),
    "dnf": _CacheSpec({"dnf", "dnf5", "dnf-3"}, _DNF_META, {"clean"}, {"all", "metadata"},
                      ("/var/cache/dnf", "/var/cache/libdnf5", "/var/cache/yum"), "dnf clean all"),
    # microdnf keeps its metadata in /var/cache/yum/metadata
    "microdnf": _CacheSpec({"microdnf"}, {"install", "reinstall", "update", "upgrade", "makecache",
                                          "download", "module"},
                           {"clean"}, {"all", "metadata"}, ("/var/cache/yum", "/var/cache/dnf"),
                           "microdnf clean all"),
    "zypper": _CacheSpec({"zypper"}, {"install", "in", "update", "up", "dist-upgrade", "dup", "patch",
                                      "refresh", "ref", "source-install", "si"},
                         {"clean", "cc"}, {"-a", "--all", "-m", "--metadata"}, ("/var/cache/zypp",),
                         "zypper clean --all"),
}
# other tools whose clean command also clears this tool's cache (yum is dnf on RHEL 8+)
_CLEAN_ALSO = {"yum": {"dnf"}, "dnf": {"yum"}, "microdnf": set(), "zypper": set()}


def _clean_kind(call: PkgCall, spec: _CacheSpec) -> str:
    """'full' if this call clears the metadata cache, 'partial' if it only clears packages, ''."""
    if call.sub not in spec.clean_subs:
        return ""
    if spec.tools == {"zypper"}:
        return "full" if call.has("-a", "--all", "-m", "--metadata") else "partial"
    return "full" if set(call.operands) & spec.clean_args else "partial"


def _cache_check(key: str):
    spec = _CACHE_SPECS[key]
    cleaners = spec.tools | {t for other in _CLEAN_ALSO[key] for t in _CACHE_SPECS[other].tools}

    def check(df, ctx):
        for ins in df.walk("RUN", shipped_only=ctx.rule.stages == "shipped"):
            cmds = ins.commands
            last_use = None
            for i, cmd in enumerate(cmds):
                if cmd.name in spec.tools:
                    call = parse_pkg_call(cmd, i)
                    if call is not None and call.sub in spec.subs:
                        last_use = i
            if last_use is None or _cache_mounted(ins, spec.dirs):
                continue
            partial = None  # a clean command that leaves the metadata
            done = False
            for cmd in cmds[last_use + 1:]:
                if _removes_path(cmd, spec.dirs):
                    done = True
                    break
                if cmd.name in cleaners:
                    kind = _clean_kind(parse_pkg_call(cmd), spec)
                    if kind == "full":
                        done = True
                        break
                    if kind == "partial" and partial is None:
                        partial = " ".join(cmd.argv)
            if done:
                continue
            if partial is not None:
                yield Problem.at(
                    ins,
                    message=f"`{partial}` removes only downloaded packages; the repository metadata "
                            f"(tens of MB) stays in the layer",
                    fix=f"use `{spec.label}` at the end of the same RUN",
                )
            else:
                yield Problem.at(ins)
    check.__name__ = f"{key}_clean_all"
    return check


yum_clean_all = _cache_check("yum")
dnf_clean_all = _cache_check("dnf")
microdnf_clean_all = _cache_check("microdnf")
zypper_clean = _cache_check("zypper")


# -- IL1024 rpm-weak-deps ------------------------------------------------------------

_WEAK_OFF = re.compile(r"install_weak_deps\W{0,4}(?:false|0|no|off)\b", re.I)
_ZYPP_ONLY_REQUIRES = re.compile(r"solver\.onlyRequires\s*=\s*(?:true|1|yes)\b", re.I)
# yum 3 (EL7, Amazon Linux 2) predates weak dependencies: nothing to turn off there
_YUM3_IMAGES = re.compile(
    r"(?:^|/)(?:centos:(?:centos)?7|amazonlinux:2(?:$|\.0|-)|oraclelinux:7|(?:rhel7|ubi7)[\w/.-]*(?::|$)|"
    r"scientificlinux:|sl:7)", re.I)


def _weak_deps_off(call: PkgCall) -> bool:
    if call.family == "zypper":
        return call.has("--no-recommends")
    return any(_WEAK_OFF.search(v) for v in call.opt_values("--setopt"))


def rpm_weak_deps(df, ctx):
    dnf_conf = _ConfigWrites(df, ctx, _WEAK_OFF, ("dnf.conf", "yum.conf", "config-manager"))
    zypp_conf = _ConfigWrites(df, ctx, _ZYPP_ONLY_REQUIRES, ("zypp.conf",))
    for ins in df.walk("RUN", shipped_only=ctx.rule.stages == "shipped"):
        for call in pkg_calls(ins):
            if call.family not in ("dnf", "zypper") or not is_install(call) or \
                    call.sub in ("builddep", "reinstall", "source-install", "si"):
                continue
            if _weak_deps_off(call):
                continue
            if call.family == "zypper":
                if zypp_conf.before(ins):
                    continue
                yield Problem.at(ins, message="`zypper install` without `--no-recommends` also installs "
                                              "recommended packages, often doubling what lands in the layer",
                                 fix="add `--no-recommends`: `zypper --non-interactive install --no-recommends ...`")
                break
            if call.tool == "yum" and _YUM3_IMAGES.search(_root_image(ins.stage) or ""):
                continue
            if dnf_conf.before(ins):
                continue
            value = "0" if call.tool == "microdnf" else "False"
            yield Problem.at(ins, message=f"`{call.tool} install` without `--setopt=install_weak_deps={value}` "
                                          "also installs weak dependencies (Recommends), often doubling what "
                                          "lands in the layer",
                             fix=f"add `--setopt=install_weak_deps={value}` to the `{call.tool} install` command")
            break


# -- IL1030 build-toolchain-in-final ------------------------------------------------

# package-name patterns (fnmatch) for compilers, build tools, headers and SDKs
_TOOLCHAIN = (
    # C/C++ compilers and build tools
    "gcc", "gcc-*", "g++", "g++-*", "gfortran", "gfortran-*", "clang", "clang-[0-9]*", "build-essential",
    "build-base", "make", "cmake", "cmake3", "autoconf", "automake", "libtool", "pkg-config", "pkgconf",
    "pkgconfig", "ninja-build", "meson", "llvm-toolset",
    # header packages (Debian/Alpine, RPM)
    "*-dev", "*-devel", "linux-headers", "linux-headers-*", "kernel-headers",
    # Go, Rust
    "golang", "golang-go", "golang-[0-9]*", "go", "go-toolset", "rustc", "cargo", "rust", "rust-toolset",
    # Java build tools and JDKs (JREs are excluded below)
    "maven", "gradle", "default-jdk", "default-jdk-headless", "*-jdk", "*-jdk-headless",
    "openjdk[0-9]*-jdk", "openjdk[0-9]*",
)
_NOT_TOOLCHAIN = ("*jre*",)
# groups and patterns that pull in the whole C toolchain
_TOOLCHAIN_GROUPS = {"development tools", "development-tools", "c development tools and libraries",
                     "c-development", "devel_basis", "patterns-devel-base-devel_basis", "development"}
_VERSION_SPLIT = re.compile(r"[=<>~@]|:(?=[a-z0-9]+$)")


def _package_name(operand: str, family: str) -> str:
    """``gcc=4:12.2`` → ``gcc``; ``make:amd64`` → ``make``; ``gcc/bookworm`` → ``gcc``."""
    name = _VERSION_SPLIT.split(operand, 1)[0]
    if family == "apt":
        name = name.split("/", 1)[0]
    return name


# one compiled regex instead of ~45 fnmatch calls per package name
_TOOLCHAIN_RX = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in _TOOLCHAIN))
_NOT_TOOLCHAIN_RX = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in _NOT_TOOLCHAIN))
_RPM_VERSION_RX = re.compile(r"-\d[\w.+~^-]*$")


def _toolchain_match(name: str, family: str) -> bool:
    lowered = name.lower()
    if _NOT_TOOLCHAIN_RX.match(lowered):
        return False
    if _TOOLCHAIN_RX.match(lowered):
        return True
    if family in ("dnf", "zypper"):
        # RPM specs may carry the version in the name: make-4.3, gcc-c++-11.4.1
        bare = _RPM_VERSION_RX.sub("", lowered)
        return bare != lowered and bool(_TOOLCHAIN_RX.match(bare))
    return False


class _Installed:
    __slots__ = ("name", "display", "index", "virtual", "family")

    def __init__(self, name, display, index, virtual, family):
        self.name = name
        self.display = display
        self.index = index
        self.virtual = virtual
        self.family = family


def _expand(word: str, df, env: dict) -> list:
    """Expand ``$VARS`` (ENV/ARG and assignments earlier in the RUN) and split on whitespace."""
    if "$" not in word:
        return [word]
    return df.substitute(word, env).split()


def _toolchain_installed(df, ins) -> list:
    """Toolchain packages this RUN installs and does not remove again later in the same RUN."""
    cmds = ins.commands
    if not any(c.name in _FAMILY for c in cmds):
        return []
    env: dict = {}  # shell assignments made earlier in this RUN
    base_env = None  # ENV/ARG, looked up only when a `$` needs it
    installed: list = []
    removal_index: dict = {}  # name → index of the last command that removes it
    auto_marked_at = None  # last `apt-mark auto`
    apt_all_removed_before = -1  # apt installs before this index were purged via apt-mark auto
    for i, cmd in enumerate(cmds):
        if not cmd.argv:
            env.update(cmd.env)  # shell assignment: buildDeps='gcc make'
            continue
        if cmd.name == "export":
            for a in cmd.args:
                k, eq, v = a.partition("=")
                if eq:
                    env[k] = v
            continue
        if cmd.name == "apt-mark" and cmd.subcommand == "auto":
            auto_marked_at = i
            continue
        call = parse_pkg_call(cmd, i)
        if call is None:
            continue
        operands = install_operands(call)
        if any("$" in op for op in operands):
            if base_env is None:
                base_env = df.env_at(ins)
            cmd_env = {**base_env, **env, **cmd.env}
            words = [w for op in operands for w in _expand(op, df, cmd_env)]
        else:
            words = operands
        if is_install(call) or (call.family == "apt" and call.sub == "build-dep"):
            virtual = None
            if call.family == "apk":
                v = call.opt_values("-t", "--virtual")
                virtual = v[-1] if v else None
            if call.family == "apt" and call.sub == "build-dep":
                for w in words:
                    installed.append(_Installed(w, f"build-dep {w}", i, None, "apt"))
                continue
            for w in words:
                if w.startswith(("/", "./", "../", "http:", "https:", "$")) or \
                        w.endswith((".deb", ".rpm", ".apk")):
                    continue  # local files, URLs and unresolved variables: names unknown
                group = w.lstrip("@").lower()
                if call.family in ("dnf", "zypper") and (group in _TOOLCHAIN_GROUPS or
                                                         call.sub in ("groupinstall", "group", "groups")):
                    if group in _TOOLCHAIN_GROUPS:
                        installed.append(_Installed(group, w.lstrip("@"), i, virtual, call.family))
                    continue
                name = _package_name(w, call.family)
                if _toolchain_match(name, call.family):
                    installed.append(_Installed(name, name, i, virtual, call.family))
        elif (call.family == "apt" and call.sub in ("purge", "remove", "autoremove")) or \
                (call.family == "apk" and call.sub == "del") or \
                (call.family == "dnf" and call.sub in ("remove", "erase", "autoremove", "groupremove")) or \
                (call.family == "zypper" and call.sub in ("remove", "rm")):
            for w in words:
                removal_index[_package_name(w, call.family).lstrip("@").lower()] = i
            # the official-image idiom: apt-mark auto '.*'; apt-mark manual $saved;
            # apt-get purge -y --auto-remove → what was installed before the apt-mark goes again
            if call.family == "apt" and auto_marked_at is not None and \
                    (call.sub == "autoremove" or call.has("--auto-remove", "--autoremove")):
                apt_all_removed_before = auto_marked_at
    left = []
    for p in installed:
        if p.family == "apt" and p.index < apt_all_removed_before:
            continue
        gone = False
        for n, at in removal_index.items():
            if at <= p.index:
                continue
            if n == p.name.lower() or (p.virtual and n == p.virtual.lower()) or \
                    (any(ch in n for ch in "*?[") and fnmatch.fnmatchcase(p.name.lower(), n)):
                gone = True
                break
        if not gone:
            left.append(p)
    return left


# build images: repository (last path component, or a path suffix) → what to ship instead
_BUILD_IMAGES = {
    "golang": "a `gcr.io/distroless/static` or `scratch` final stage (CGO_ENABLED=0) with only the binary",
    "rust": "a `debian:bookworm-slim` or `gcr.io/distroless/cc` final stage with only the binary",
    "maven": "an `eclipse-temurin:<version>-jre` or distroless Java final stage with only the jar",
    "gradle": "an `eclipse-temurin:<version>-jre` or distroless Java final stage with only the jar",
    "gcc": "a `debian:bookworm-slim` or distroless final stage with only the built files",
    "buildpack-deps": "a `*-slim` or distroless final stage with only the built files",
    "dotnet/sdk": "an `mcr.microsoft.com/dotnet/aspnet` or `dotnet/runtime` final stage with the published output",
    "dotnet/core/sdk": "an `mcr.microsoft.com/dotnet/aspnet` or `dotnet/runtime` final stage with the published output",
}
# images whose untagged/numeric tags are full JDKs (a `-jre` tag is the runtime)
_JDK_IMAGES = {"openjdk", "eclipse-temurin", "amazoncorretto", "sapmachine", "zulu-openjdk",
               "ibm-semeru-runtimes", "liberica-openjdk-debian", "liberica-openjdk-alpine"}
_JRE_FIX = "an `eclipse-temurin:<version>-jre` (or distroless Java) final stage with only the jar"


def _split_image(image: str) -> tuple:
    """``public.ecr.aws/docker/library/golang:1.22@sha256:..`` → (repository, tag), lower-cased."""
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon].lower(), ref[colon + 1:].lower()
    return ref.lower(), ""


def build_image_fix(image: str):
    """If ``image`` is a build (SDK/compiler) image, what to ship instead; else None."""
    if not image or "$" in image:
        return None
    repo, tag = _split_image(image)
    last = repo.rsplit("/", 1)[-1]
    for key, fix in _BUILD_IMAGES.items():
        if "/" in key and (repo == key or repo.endswith("/" + key)):
            return fix
        if "/" not in key and last == key:
            return fix
    if "jre" in tag:
        return None
    if last in _JDK_IMAGES or re.search(r"(?:^|-)jdk", tag):  # 21-jdk, jdk21, open-21-jdk-jammy
        return _JRE_FIX
    return None


_TOOLCHAIN_FIX = ("build in a separate stage (`FROM ... AS build`) and `COPY --from=build` only the "
                  "artifacts into a slim, distroless or JRE final stage; or, if it must be built here, "
                  "remove the packages at the end of the same RUN: {removal}")
_REMOVAL_HINT = {
    "apt": "`apt-get purge -y --auto-remove {names}`",
    "apk": "`apk add --virtual .build-deps {names} && ... && apk del .build-deps`",
    "dnf": "`dnf remove -y {names}` (it also drops their unneeded dependencies)",
    "zypper": "`zypper --non-interactive remove --clean-deps {names}`",
}


def build_toolchain_in_final(df, ctx):
    shipped_only = ctx.rule.stages == "shipped"
    for st in df.stages:
        if shipped_only and not st.ships:
            continue
        if st.parent is None:
            fix = build_image_fix(st.image)
            if fix is not None:
                yield Problem.at(
                    st.from_instruction,
                    message=f"shipped stage is based on the build image `{st.image}`: its compilers and SDK "
                            f"(hundreds of MB) are pulled on every task start",
                    fix=f"use `{st.image}` only in a builder stage (`FROM {st.image} AS build`) and copy the "
                        f"artifacts into {fix}",
                )
    for ins in df.walk("RUN", shipped_only=shipped_only):
        left = _toolchain_installed(df, ins)
        if not left:
            continue
        names = []
        for p in left:
            if p.display not in names:
                names.append(p.display)
        yield Problem.at(
            ins,
            message=f"build toolchain installed in a shipped stage and not removed in the same RUN: "
                    f"{_fmt_names(names)} (compilers, headers and SDKs typically add 100-500 MB that the "
                    "service never runs)",
            fix=_TOOLCHAIN_FIX.format(removal=_REMOVAL_HINT[left[0].family].format(
                names=" ".join(n for n in names[:6] if " " not in n) or "...")),
        )
