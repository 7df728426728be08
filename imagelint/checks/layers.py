"""IL3001-IL3006, IL3009-IL3011: layering and build-cache rules.

Every RUN/COPY/ADD commits a layer, and a layer is immutable: whatever it adds is
pulled and extracted on every Fargate task start even if a later layer deletes or
rewrites it. These checks follow the filesystem effects of a stage chain (the
stage and the stages it is built FROM) well enough to say "this deletion frees
nothing" or "this chown stores every file twice", and follow COPY ordering well
enough to say "this install re-runs on every source change".

Paths are resolved like the builder does: WORKDIR (ARG/ENV substituted), then
``cd`` inside the RUN. Anything we cannot resolve is compared as written, and
when in doubt a check stays silent.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import re

from ..dockerfile import substitute
from ..rules import Problem, env_truthy
from .context import load_ignore

TYPE_CHECKING = False  # annotations only: importing typing would slow the lint path
if TYPE_CHECKING:
    from typing import Iterator, Optional, Tuple

    from ..dockerfile import Dockerfile, Instruction
    from ..shell import Command
    from ..rules import CheckContext

__all__ = [
    "download_not_removed", "add_instead_of_copy", "rm_in_later_layer", "recursive_chown_after_copy",
    "copy_context_before_install", "manifest_not_copied_first", "consecutive_run", "too_many_layers",
    "copy_whole_stage_fs", "download_outputs", "install_kind", "copy_parts",
]

# ADD extracts local tar archives (plain or gzip/bzip2/xz compressed); like hadolint we
# accept the bare compression suffixes too, since ADD decides by content.
_LOCAL_ARCHIVE_EXTS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tb2", ".tar.xz", ".txz",
                       ".tar.zst", ".tzst", ".tar.lz", ".tlz", ".tar.lzma", ".tar.z", ".taz", ".tz",
                       ".gz", ".bz2", ".xz", ".lz", ".lzma", ".z", ".zst")
# downloads that are only ever unpacked or installed, never run as they are
_DOWNLOAD_ARCHIVE_EXTS = _LOCAL_ARCHIVE_EXTS + (".zip", ".7z", ".rar", ".deb", ".rpm", ".apk", ".whl",
                                                ".gem", ".msi", ".pkg", ".nupkg")
_REMOTE_ARCHIVE_EXTS = _DOWNLOAD_ARCHIVE_EXTS


def _lower_ext_match(name: str, exts) -> bool:
    return name.lower().endswith(exts)


def _has_glob(p: str) -> bool:
    return "*" in p or "?" in p or "[" in p


# -- paths -----------------------------------------------------------------------

def _norm(path: str) -> str:
    p = posixpath.normpath(path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def _join(cwd: str, path: str, home: str = "/root") -> str:
    """Absolute, normalised path of ``path`` seen from ``cwd`` (``~`` is ``home``)."""
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
        path = path[1:-1]
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    for var in ("$HOME", "${HOME}"):
        if path == var or path.startswith(var + "/"):
            path = home + path[len(var):]
    if not path.startswith("/"):
        path = posixpath.join(cwd or "/", path)
    return _norm(path)


def _glob_match(path: str, pattern: str) -> bool:
    """Shell-glob match where ``*`` does not cross ``/``."""
    if not _has_glob(pattern):
        return path == pattern
    a, b = path.split("/"), pattern.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(x, y) for x, y in zip(a, b))


def _ancestors(path: str):
    """Proper ancestors of an absolute path, nearest first, '/' excluded."""
    p = posixpath.dirname(path)
    while p not in ("/", ""):
        yield p
        p = posixpath.dirname(p)


_GLOB_CHARS = re.compile(r"[*?\[]")


def _covers(pattern: str, path: str, recursive: bool) -> bool:
    """Does deleting ``pattern`` (maybe a glob) delete ``path``?"""
    m = _GLOB_CHARS.search(pattern)
    if m is None:  # the common case, kept cheap: this runs for every deletion x every entry
        return path == pattern or (recursive and path.startswith(pattern.rstrip("/") + "/"))
    if not path.startswith(pattern[:m.start()]):
        return False
    if _glob_match(path, pattern):
        return True
    if not recursive:
        return False
    return any(_glob_match(a, pattern) for a in _ancestors(path))


def _under(pattern: str, root: str):
    """If ``pattern`` names something strictly below ``root``: the relative part, else None."""
    if root == "/":
        return None  # a root of '/' would make every path "known"; never trust it
    prefix = root.rstrip("/") + "/"
    if pattern.startswith(prefix) and len(pattern) > len(prefix):
        return pattern[len(prefix):]
    return None


# -- stages, WORKDIR, USER ---------------------------------------------------------------

def _chain(stage) -> list:
    return stage.chain() if stage is not None else []


class _Step:
    """An instruction of a stage chain with the WORKDIR, HOME and ENV in force at it."""

    __slots__ = ("ins", "cwd", "home", "env")

    def __init__(self, ins, cwd, home, env):
        self.ins, self.cwd, self.home, self.env = ins, cwd, home, env

    def sub(self, text: str, extra: dict = None) -> str:
        env = self.env if not extra else {**self.env, **extra}
        return _substitute(text, env)

    def path(self, text: str, cwd: str = None, extra: dict = None) -> str:
        return _join(cwd or self.cwd, self.sub(text, extra), self.home)


def _substitute(text: str, env: dict) -> str:
    # an ARG without a value keeps its `$NAME`: a path must not be guessed from it
    return substitute(text, env, keep_empty=True)


def _steps(df, stage) -> list:
    """Steps of ``stage``'s chain, ancestors first (no FROM, no ONBUILD: triggers run in
    the child image, not in this build)."""
    out = []
    cwd, home = "/", "/root"
    for st in _chain(stage):
        for ins in st.instructions:
            if ins.keyword in ("FROM", "ONBUILD"):
                continue
            env = df.env_at(ins)
            if ins.keyword == "WORKDIR" and ins.args.strip():
                cwd = _join(cwd, _substitute(ins.args.strip(), env), home)
            elif ins.keyword == "USER" and ins.args.strip():
                user = _substitute(ins.args.split(":")[0].strip(), env)
                home = "/root" if user in ("root", "0") else f"/home/{user}"
            out.append(_Step(ins, cwd, home, env))
    return out


def _run_commands(step) -> list:
    """(command, cwd) for a RUN, following ``cd`` between commands."""
    cwd = step.cwd
    out = []
    for cmd in step.ins.commands:
        out.append((cmd, cwd))
        if cmd.wrappers and cmd.wrappers[0] == "$()":
            continue
        if cmd.name in ("cd", "pushd"):
            pos = [a for a in cmd.args if not a.startswith("-")]
            if pos:
                cwd = step.path(pos[0], cwd, cmd.env)
    return out


def _mount_targets(ins, cwd: str) -> list:
    """Targets of all RUN mounts: nothing written under them lands in the layer."""
    out = []
    for m in ins.mounts:
        t = m.get("target")
        if t:
            out.append(_join(cwd, t))
    return out


def _under_any(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _short(cmd, limit: int = 60) -> str:
    text = " ".join(cmd.argv)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- COPY / ADD --------------------------------------------------------------------

def copy_parts(ins: Instruction) -> Tuple[list, Optional[str]]:
    """(sources, dest) of COPY/ADD; heredoc sources as ``<<NAME``; dest None if malformed."""
    words = list(ins.exec_form) if ins.exec_form is not None else ins.args.split()
    if len(words) < 2:
        return [], None
    return words[:-1], words[-1]


def _is_url(src: str) -> bool:
    return "://" in src


def _is_git(src: str) -> bool:
    s = src.split("#", 1)[0]
    return src.startswith(("git@", "git://", "ssh://")) or s.endswith(".git")


def _url_basename(url: str) -> str:
    path = url.split("://", 1)[-1].split("#", 1)[0].split("?", 1)[0]
    path = path.split("/", 1)[1] if "/" in path else ""
    return posixpath.basename(path.rstrip("/"))


class _Entry:
    """Something an instruction put in its layer."""

    __slots__ = ("path", "is_root", "sub", "ctx_src", "line", "what", "keyword")

    def __init__(self, path, line, what, keyword, is_root=False, sub="none", ctx_src=None):
        self.path = path  # absolute, may be a glob
        self.is_root = is_root  # a directory whose contents came with it
        self.sub = sub  # which paths below a root are known to come from it: all | ctx | git | none
        self.ctx_src = ctx_src  # for sub == ctx: the source directory in the build context
        self.line = line
        self.what = what  # e.g. "COPY . /app" or "`apt-get update`"
        self.keyword = keyword


def _copy_entries(step, context_dir) -> list:
    """What a COPY/ADD writes, as entries."""
    ins = step.ins
    srcs, dest = copy_parts(ins)
    if dest is None:
        return []
    from_stage = ins.flag("from")
    what = f"{ins.keyword} {ins.args.strip()}"
    if len(what) > 60:
        what = what[:59] + "…"
    dest_s = step.sub(dest)
    dest_abs = step.path(dest)
    dest_is_dir = (dest_s.endswith("/") or len(srcs) > 1 or dest_s in (".", "./")
                   or dest_abs == step.cwd)
    out = []
    for src in srcs:
        if src.startswith("<<"):
            name = src.lstrip("<-").strip("\"'")
            out.append(_Entry(posixpath.join(dest_abs, name) if dest_is_dir else dest_abs,
                              ins.start_line, what, ins.keyword))
            continue
        s = step.sub(src)
        if _is_url(s) or _is_git(s):
            if _is_git(s):
                out.append(_Entry(dest_abs, ins.start_line, what, ins.keyword, is_root=True))
            else:
                base = _url_basename(s) or "index.html"
                out.append(_Entry(posixpath.join(dest_abs, base) if dest_is_dir else dest_abs,
                                  ins.start_line, what, ins.keyword))
            continue
        rel = clean_rel(s)
        whole = rel in (".", "*")
        is_dir = whole or s.endswith("/")
        on_disk = None
        if from_stage is None and context_dir and "$" not in rel and not _has_glob(rel):
            full = os.path.join(context_dir, rel)
            if os.path.isdir(full):
                is_dir, on_disk = True, True
            elif os.path.exists(full):
                on_disk = False
        if is_dir:
            sub = "ctx" if from_stage is None else "none"
            out.append(_Entry(dest_abs, ins.start_line, what, ins.keyword, is_root=True, sub=sub,
                              ctx_src="" if whole else rel))
        elif _has_glob(rel):
            base = posixpath.basename(rel)
            out.append(_Entry(posixpath.join(dest_abs, base) if dest_is_dir else dest_abs,
                              ins.start_line, what, ins.keyword))
        elif ins.keyword == "ADD" and _lower_ext_match(rel, _LOCAL_ARCHIVE_EXTS):
            out.append(_Entry(dest_abs, ins.start_line, what, ins.keyword, is_root=True))
        else:
            path = posixpath.join(dest_abs, posixpath.basename(rel)) if dest_is_dir else dest_abs
            # without a build context we cannot tell a directory from a file: keep it a root
            out.append(_Entry(path, ins.start_line, what, ins.keyword, is_root=on_disk is None,
                              ctx_src=rel if from_stage is None else None))
    return out


def clean_rel(src: str) -> str:
    """A COPY source relative to the context root ('.' for the root itself)."""
    p = posixpath.normpath("/" + src).lstrip("/")
    return p or "."


# -- downloads ---------------------------------------------------------------------

_CURL_SHORT_WITH_VALUE = set("AbcCdDeEFHKmoPQrtTuUwxXyYz")
_CURL_LONG_WITH_VALUE = {"--output", "--output-dir", "--proxy", "--preproxy", "--referer", "--url",
                         "--doh-url", "--config", "--header", "--user-agent", "--data", "--form"}
_WGET_SHORT_WITH_VALUE = set("OoaPitTweUQlDARIXB")
_WGET_LONG_WITH_VALUE = {"--output-document", "--directory-prefix", "--output-file", "--append-output",
                         "--input-file", "--execute", "--user-agent", "--header", "--tries", "--timeout"}


def download_outputs(cmd: Command) -> list:
    """Files a curl/wget command writes (as written, relative to its cwd); '-' is stdout."""
    name = cmd.name
    argv = cmd.args
    if name == "curl":
        outs, urls, remote, outdir = [], [], False, None
        i = 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--"):
                opt, eq, val = a.partition("=")
                if opt in _CURL_LONG_WITH_VALUE and not eq:
                    val = argv[i + 1] if i + 1 < len(argv) else ""
                    i += 1
                if opt == "--output":
                    outs.append(val)
                elif opt == "--output-dir":
                    outdir = val
                elif opt == "--url":
                    urls.append(val)
                elif opt in ("--remote-name", "--remote-name-all"):
                    remote = True
            elif a.startswith("-") and len(a) > 1:
                for j, ch in enumerate(a[1:], 1):
                    if ch in _CURL_SHORT_WITH_VALUE:
                        val = a[j + 1:]
                        if not val:
                            val = argv[i + 1] if i + 1 < len(argv) else ""
                            i += 1
                        if ch == "o":
                            outs.append(val)
                        break
                    if ch == "O":
                        remote = True
            elif "://" in a:
                urls.append(a)
            i += 1
        if remote:
            for u in urls[len(outs):]:
                base = _url_basename(u)
                if base:
                    outs.append(posixpath.join(outdir, base) if outdir else base)
        elif outdir:
            outs = [o if o == "-" or o.startswith("/") else posixpath.join(outdir, o) for o in outs]
        return outs
    if name == "wget":
        doc, prefix, urls = None, None, []
        i = 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--"):
                opt, eq, val = a.partition("=")
                if opt in _WGET_LONG_WITH_VALUE and not eq:
                    val = argv[i + 1] if i + 1 < len(argv) else ""
                    i += 1
                if opt == "--output-document":
                    doc = val
                elif opt == "--directory-prefix":
                    prefix = val
                elif opt in ("--input-file", "--spider"):
                    return []  # names unknown / nothing saved
            elif a.startswith("-n"):
                pass  # -nv, -nc, -nd, -nH, -np: no value
            elif a.startswith("-") and len(a) > 1:
                for j, ch in enumerate(a[1:], 1):
                    if ch in _WGET_SHORT_WITH_VALUE:
                        val = a[j + 1:]
                        if not val:
                            val = argv[i + 1] if i + 1 < len(argv) else ""
                            i += 1
                        if ch == "O":
                            doc = val
                        elif ch == "P":
                            prefix = val
                        elif ch == "i":
                            return []
                        break
            elif "://" in a or not a.startswith("-"):
                urls.append(a)
            i += 1
        if doc is not None:
            return [doc]
        outs = []
        for u in urls:
            base = _url_basename(u) if "://" in u else posixpath.basename(u.rstrip("/"))
            base = base or "index.html"
            outs.append(posixpath.join(prefix, base) if prefix else base)
        return outs
    return []


# commands that unpack or install a file given as an argument
_CONSUMERS = {"tar", "bsdtar", "unzip", "7z", "7za", "dpkg", "rpm", "gunzip", "unxz", "bunzip2", "zstd",
              "xz", "gzip", "apt-get", "apt", "yum", "dnf", "microdnf", "apk", "pip", "pip3", "gem", "jar"}
# these delete their input unless told to keep it
_SELF_REMOVING = {"gunzip", "unxz", "bunzip2", "unzstd"}


def _consumes(cmd, raw: str, resolved: str, step, cwd) -> bool:
    if cmd.name not in _CONSUMERS and not (cmd.name.startswith("pip") and cmd.subcommand == "install"):
        return False
    for a in cmd.args:
        if a.startswith("--file="):
            a = a[len("--file="):]
        elif a.startswith("-"):
            continue
        if a == raw or step.path(a, cwd, cmd.env) == resolved:
            return True
    return False


def _removes(cmd, resolved: str, step, cwd) -> bool:
    """Does ``cmd`` delete (or move away) the file at ``resolved``?"""
    name = cmd.name
    if name in ("rm", "unlink", "mv"):
        recursive = name == "rm" and cmd.has_flag("-r", "-R", "--recursive")
        targets = [a for a in cmd.args if not a.startswith("-")]
        if name == "mv":
            targets = targets[:-1]  # moved into place: it is the artefact, not a leftover
            recursive = True
        return any(_covers(step.path(t, cwd, cmd.env), resolved, recursive or t.endswith("/"))
                   for t in targets)
    if name in _SELF_REMOVING or (name in ("gzip", "xz", "zstd", "bzip2") and cmd.has_flag("-d", "--decompress")):
        if cmd.has_flag("-k", "--keep", "-c", "--stdout"):
            return False
        return any(step.path(a, cwd, cmd.env) == resolved for a in cmd.args if not a.startswith("-"))
    return False


def _downloads(step) -> list:
    """(command, raw output, resolved path, index) of files curl/wget save in a RUN."""
    out = []
    mounts = _mount_targets(step.ins, step.cwd)
    for k, (cmd, cwd) in enumerate(_run_commands(step)):
        if cmd.name not in ("curl", "wget"):
            continue
        for raw in download_outputs(cmd):
            if not raw or raw == "-" or raw.startswith("/dev/"):
                continue
            resolved = step.path(raw, cwd, cmd.env)
            if resolved.startswith("/dev/") or _under_any(resolved, mounts):
                continue
            out.append((cmd, raw, resolved, k))
    return out


# -- IL3001 ------------------------------------------------------------------------

def download_not_removed(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3001: an archive downloaded by curl/wget (or ADD <url>) stays in the layer."""
    for stage in df.stages:
        if not stage.ships:
            continue
        for step in _steps(df, stage):
            ins = step.ins
            if ins.stage is not stage:
                continue
            if ins.keyword == "ADD":
                yield from _remote_archive_add(step)
                continue
            if ins.keyword != "RUN":
                continue
            cmds = _run_commands(step)
            for cmd, raw, resolved, k in _downloads(step):
                if any(_removes(c, resolved, step, cwd) for j, (c, cwd) in enumerate(cmds) if j != k):
                    continue
                archive = _lower_ext_match(posixpath.basename(resolved).split("?")[0], _DOWNLOAD_ARCHIVE_EXTS)
                used = [c for j, (c, cwd) in enumerate(cmds) if j > k and _consumes(c, raw, resolved, step, cwd)]
                if not archive and not used:
                    continue  # a binary or config saved where it is used: that is the artefact
                how = f" and `{used[0].name}` unpacks/installs it" if used else ""
                yield Problem.at(
                    ins,
                    message=f"`{cmd.name}` saves {resolved}{how}, but this RUN never deletes it: the "
                            "archive stays in the layer and is pulled on every task start",
                    fix=f"pipe the download instead (`curl -fsSL URL | tar -xz -C DIR`) or end the same RUN "
                        f"with `&& rm -f {resolved}`; deleting it in a later RUN frees nothing")
                break


def _remote_archive_add(step):
    ins = step.ins
    unpack = ins.flag("unpack")
    if unpack is True or env_truthy(unpack):
        return  # ADD --unpack (Dockerfile 1.17+) does extract remote archives
    srcs, dest = copy_parts(ins)
    for src in srcs:
        s = step.sub(src)
        if _is_url(s) and not _is_git(s) and _lower_ext_match(_url_basename(s), _REMOTE_ARCHIVE_EXTS):
            yield Problem.at(
                ins,
                message=f"`ADD {_url_basename(s)}` from a URL is not extracted: the archive stays in its own "
                        "layer, and deleting it (or its extracted copy) later frees nothing",
                fix="download, extract and delete in one RUN (`RUN curl -fsSL URL | tar -xz -C DIR`), or ADD "
                    "and extract it in a builder stage and COPY --from only the extracted files")
            return


# -- IL3002 ------------------------------------------------------------------------

def add_instead_of_copy(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3002: ADD of local files/directories that are not tar archives."""
    for ins in df.walk("ADD"):
        srcs, dest = copy_parts(ins)
        if dest is None:
            continue
        env = df.env_at(ins) if ins.stage is not None else {}
        plain = []
        for src in srcs:
            s = _substitute(src, env)
            if src.startswith("<<"):
                plain.append("heredoc " + src[2:].lstrip("-").strip("\"'"))
                continue
            if _is_url(s) or _is_git(s):
                continue
            if "$" in s:
                continue  # unknown name: could be an archive
            if _lower_ext_match(s, _LOCAL_ARCHIVE_EXTS):
                continue
            plain.append(s)
        if plain:
            names = ", ".join(plain[:4]) + (" …" if len(plain) > 4 else "")
            yield Problem.at(
                ins,
                message=f"ADD of local {names}, which is neither a tar archive nor a URL: use COPY (ADD "
                        "would silently unpack it if it ever were a tarball)",
                fix=f"use `COPY {ins.value.strip()[:70]}`; keep ADD only for URLs, git sources and local "
                    "tar archives you want extracted")


# -- IL3003 ------------------------------------------------------------------------

_APT = {"apt-get", "apt", "aptitude"}
_PY_CACHE = ".cache/pip"


def _pkg_names(args) -> list:
    """Package names from install/remove args (versions and options dropped)."""
    out = []
    for a in args:
        if a.startswith("-") or "/" in a or "::" in a:
            continue
        name = re.split(r"[=<>~!\[;@]", a, 1)[0].strip().lower()
        if name:
            out.append(name)
    return out


def _creations(step, context_dir) -> tuple:
    """(entries, packages) a step adds; packages maps (manager, name) → description."""
    ins = step.ins
    if ins.keyword in ("COPY", "ADD"):
        return _copy_entries(step, context_dir), {}
    if ins.keyword != "RUN":
        return [], {}
    line = ins.start_line
    mounts = _mount_targets(ins, step.cwd)
    entries, pkgs = [], {}

    def add_root(path, what, sub="all"):
        if not _under_any(path, mounts):
            entries.append(_Entry(path, line, what, "RUN", is_root=True, sub=sub))

    for cmd, raw, resolved, k in _downloads(step):
        entries.append(_Entry(resolved, line, f"`{cmd.name}` download", "RUN"))
    env = dict(step.env)
    for cmd, cwd in _run_commands(step):
        n, sub = cmd.name, cmd.subcommand
        cenv = {**env, **cmd.env}
        if n == "git" and sub == "clone":
            pos = _git_clone_positionals(cmd)
            if pos:
                target = pos[1] if len(pos) > 1 else _url_basename(pos[0]).removesuffix(".git")
                if target:
                    add_root(step.path(target, cwd, cmd.env), "`git clone`", sub="git")
        elif n in ("tar", "bsdtar") and _tar_extracts(cmd) and (cmd.flag_value("-C") or cmd.flag_value("--directory")):
            target = cmd.flag_value("-C") or cmd.flag_value("--directory")
            add_root(step.path(target, cwd, cmd.env), "`tar` extraction", sub="none")
        elif n == "unzip" and cmd.flag_value("-d"):
            add_root(step.path(cmd.flag_value("-d"), cwd, cmd.env), "`unzip` extraction", sub="none")
        elif n in _APT and sub == "update":
            add_root("/var/lib/apt/lists", f"`{n} update`")
        elif n in _APT and sub in ("install", "upgrade", "dist-upgrade"):
            add_root("/var/cache/apt/archives", f"`{n} {sub}`")
            for p in _pkg_names(cmd.positionals()[1:]):
                pkgs[("apt", p)] = f"`{n} install {p}`"
        elif n == "apk" and sub == "add":
            virtual = cmd.flag_value("--virtual") or cmd.flag_value("-t")
            if virtual:
                pkgs[("apk", virtual.lower())] = f"`apk add --virtual {virtual}`"
            skip = {virtual} if virtual else set()
            for p in _pkg_names(cmd.positionals()[1:]):
                if p not in skip:
                    pkgs[("apk", p)] = f"`apk add {p}`"
            if not cmd.has_flag("--no-cache"):
                add_root("/var/cache/apk", "`apk add`")
        elif n.startswith("pip") and sub == "install":
            for p in _pkg_names(cmd.positionals()[1:]):
                pkgs[("pip", p.replace("_", "-"))] = f"`pip install {p}`"
            if not cmd.has_flag("--no-cache-dir") and not env_truthy(cenv.get("PIP_NO_CACHE_DIR")):
                add_root(step.home + "/" + _PY_CACHE, "`pip install` cache")
        elif n == "npm" and sub in ("install", "i", "ci", "clean-install") and not cmd.has_flag("--cache"):
            add_root(step.home + "/.npm", f"`npm {sub}` cache")
    return entries, pkgs


_GIT_CLONE_VALUE_OPTS = {"--depth", "-b", "--branch", "-o", "--origin", "-c", "--config", "--reference",
                         "--shallow-since", "--shallow-exclude", "-j", "--jobs", "--filter", "-u",
                         "--upload-pack", "--template", "--separate-git-dir", "--recurse-submodules"}


def _git_clone_positionals(cmd) -> list:
    """[repository, directory?] of ``git clone``."""
    args = cmd.args
    start = args.index("clone") + 1 if "clone" in args else len(args)
    out, skip = [], False
    for a in args[start:]:
        if skip:
            skip = False
            continue
        if a.startswith("-"):
            skip = a in _GIT_CLONE_VALUE_OPTS and a != "--recurse-submodules"
            continue
        out.append(a)
    return out


def _tar_extracts(cmd) -> bool:
    args = cmd.args
    if any(a in ("-x", "--extract", "--get") for a in args):
        return True
    first = args[0] if args else ""
    # "xzf" / "-xzf" style first argument
    return bool(re.match(r"^-?[A-Za-z]*x[A-Za-z]*$", first)) and not first.startswith("--")


class _Deletion:
    __slots__ = ("pattern", "recursive", "text")

    def __init__(self, pattern, recursive, text):
        self.pattern, self.recursive, self.text = pattern, recursive, text


def _deletions(step) -> tuple:
    """(path deletions, package removals [(manager, name, text)]) of a RUN."""
    dels, pkgs = [], []
    for cmd, cwd in _run_commands(step):
        n, sub = cmd.name, cmd.subcommand
        text = f"`{_short(cmd)}`"
        if n in ("rm", "unlink"):
            rec = n == "rm" and cmd.has_flag("-r", "-R", "--recursive")
            for a in cmd.args:
                if a.startswith("-") and a != "-":
                    continue
                dels.append(_Deletion(step.path(a, cwd, cmd.env), rec, text))
        elif n in _APT and sub in ("clean", "autoclean"):
            dels.append(_Deletion("/var/cache/apt/archives/*", True, text))
        elif n in _APT and sub in ("remove", "purge", "autoremove"):
            pkgs.extend(("apt", p, text) for p in _pkg_names(cmd.positionals()[1:]))
        elif n == "apk" and sub == "del":
            pkgs.extend(("apk", p, text) for p in _pkg_names(cmd.positionals()[1:]))
        elif n == "apk" and sub == "cache" and "clean" in cmd.args:
            dels.append(_Deletion("/var/cache/apk/*", True, text))
        elif n.startswith("pip") and sub == "uninstall":
            pkgs.extend(("pip", p.replace("_", "-"), text) for p in _pkg_names(cmd.positionals()[1:]))
        elif n.startswith("pip") and sub == "cache" and ("purge" in cmd.args or "remove" in cmd.args):
            dels.append(_Deletion(step.home + "/" + _PY_CACHE, True, text))
        elif n == "npm" and sub == "cache" and "clean" in cmd.args:
            dels.append(_Deletion(step.home + "/.npm", True, text))
    return dels, pkgs


def _ctx_has(entry, rel: str, context_dir, ignore):
    """Is ``rel`` (below a COPY root) in the build context and not .dockerignored?

    None when we cannot tell: no context, or the COPY source is not in the Dockerfile's
    directory (the real context is elsewhere, e.g. ``docker build -f docker/Dockerfile .``).
    """
    if not context_dir or entry.ctx_src is None:
        return None
    base = "" if entry.ctx_src in ("", ".") else entry.ctx_src
    crel = posixpath.join(base, rel) if base else rel
    if "$" in crel or not os.path.isdir(os.path.join(context_dir, base)):
        return None
    full = os.path.join(context_dir, crel)
    hits = glob.glob(full) if _has_glob(crel) else ([full] if os.path.lexists(full) else [])
    for h in hits:
        r = os.path.relpath(h, context_dir).replace(os.sep, "/")
        if ignore is None or not ignore.excluded(r):
            return True
    return False


def _hits(d: _Deletion, e: _Entry, context_dir, ignore) -> bool:
    if _covers(d.pattern, e.path, d.recursive) or (_has_glob(e.path) and _glob_match(d.pattern, e.path)):
        return True
    if not e.is_root:
        return False
    rel = _under(d.pattern, e.path)
    if rel is None:
        return False
    if e.sub == "all":
        return True
    if e.sub == "git":
        return rel == ".git" or rel.startswith(".git/")
    if e.sub == "ctx":
        return _ctx_has(e, rel, context_dir, ignore) is True  # only with evidence
    return False


def _stage_layer_effects(df, stage, context_dir, ignore):
    """Yield (step, [(deletion, entry)], [(removal, description, line)]) for RUNs of ``stage``
    that delete what an EARLIER instruction of the chain wrote."""
    live: list = []
    live_pkgs: dict = {}  # (manager, name) → (description, line)
    for step in _steps(df, stage):
        ins = step.ins
        created, pkgs = _creations(step, context_dir)
        if ins.keyword == "RUN":
            dels, removals = _deletions(step)
            hits, pkg_hits = [], []
            for d in dels:
                # the same RUN writes it too: this rm (also) cleans its own work
                if any(_hits(d, c, context_dir, ignore) for c in created):
                    continue
                for e in live:
                    if _hits(d, e, context_dir, ignore):
                        hits.append((d, e))
            for mgr, name, text in removals:
                key = (mgr, name)
                if key in live_pkgs and key not in pkgs:
                    pkg_hits.append((text, name, live_pkgs[key]))
            if (hits or pkg_hits) and ins.stage is stage:
                yield step, hits, pkg_hits
            gone = {id(e) for _, e in hits}
            live = [e for e in live if id(e) not in gone]
            for _, name, _ in pkg_hits:
                for mgr in ("apt", "apk", "pip"):
                    live_pkgs.pop((mgr, name), None)
            created = [c for c in created if not any(_hits(d, c, context_dir, ignore) for d in dels)]
            removed_now = {(m, n) for m, n, _ in removals}
            pkgs = {k: v for k, v in pkgs.items() if k not in removed_now}
        live.extend(created)
        for k, v in pkgs.items():
            live_pkgs[k] = (v, ins.start_line)


def rm_in_later_layer(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3003: a RUN deletes what an earlier layer wrote; the bytes stay in that layer."""
    ignore, _ = load_ignore(df.path, ctx.context_dir)
    for stage in df.stages:
        if not stage.ships:
            continue
        for step, hits, pkg_hits in _stage_layer_effects(df, stage, ctx.context_dir, ignore):
            # group by deleting command: "`rm -rf a b` deletes a (line 3, COPY ...), b (...)"
            groups: dict = {}
            lines = []
            for d, e in hits:
                target = d.pattern if _under(d.pattern, e.path) is not None else e.path
                groups.setdefault(d.text, []).append(f"{target} (line {e.line}, {e.what})")
                lines.append((e.line, e.keyword))
            for text, name, (desc, line) in pkg_hits:
                groups.setdefault(text, []).append(f"package {name} (line {line}, {desc})")
                lines.append((line, "RUN"))
            parts = []
            for text, items in groups.items():
                shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
                parts.append(f"{text} deletes {shown}")
            first_line, kw = lines[0]
            if kw in ("COPY", "ADD"):
                fix = (f"do not copy it in at line {first_line}: exclude it in .dockerignore or COPY only what "
                       "the image needs; for files needed only while building, use "
                       "`RUN --mount=type=bind,source=...,target=...` or a builder stage")
            elif pkg_hits and not hits:
                fix = (f"install, use and remove build-only packages in the one RUN at line {first_line} "
                       "(e.g. `apk add --virtual .build-deps ... && ... && apk del .build-deps`), or build in "
                       "a separate stage")
            else:
                fix = (f"delete it in the RUN that creates it (line {first_line}), e.g. `... && rm -rf PATH`, "
                       "or keep it out of the layer with a cache mount (`RUN --mount=type=cache,target=...`)")
            yield Problem.at(
                step.ins,
                message="; ".join(parts) + ": deleting in a later layer frees nothing, the bytes stay in the "
                        "earlier layer and are pulled on every task start",
                fix=fix)


# -- IL3004 ------------------------------------------------------------------------

def _recursive_targets(cmd) -> list:
    """Paths a recursive chown/chmod/chgrp (or find -exec chown) rewrites; [] if not recursive."""
    n = cmd.name
    if n in ("chown", "chmod", "chgrp"):
        if not cmd.has_flag("-R", "--recursive"):
            return []
        pos = [a for a in cmd.args if not a.startswith("-") or (n == "chmod" and re.match(r"^-[rwxXst]+$", a))]
        if any(a.startswith("--reference") for a in cmd.args):
            return pos
        return pos[1:]
    if n == "find":
        rest = cmd.args
        idx = [i for i, a in enumerate(rest) if a in ("-exec", "-execdir")]
        if not idx:
            return []
        execs = {os.path.basename(rest[i + 1]) for i in idx if i + 1 < len(rest)}
        if not execs & {"chown", "chmod", "chgrp"}:
            return []
        paths = []
        for a in rest:
            if a.startswith(("-", "(", "!")):
                break
            paths.append(a)
        return paths or ["."]
    return []


_BIG_FILE = 1 << 20


def _worth_reporting(e, context_dir) -> bool:
    """A copied directory (or a file we cannot size) is; a single small file is noise."""
    if e.is_root:
        return True
    if not context_dir or not e.ctx_src or "$" in e.ctx_src or _has_glob(e.ctx_src):
        return True
    try:
        return os.path.getsize(os.path.join(context_dir, e.ctx_src)) >= _BIG_FILE
    except OSError:
        return True


def recursive_chown_after_copy(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3004: RUN chown -R / chmod -R over files an earlier COPY/ADD wrote."""
    ignore, _ = load_ignore(df.path, ctx.context_dir)
    for stage in df.stages:
        if not stage.ships:
            continue
        copies: list = []
        for step in _steps(df, stage):
            ins = step.ins
            if ins.keyword in ("COPY", "ADD"):
                copies.extend(_copy_entries(step, ctx.context_dir))
                continue
            if ins.keyword != "RUN" or ins.stage is not stage:
                continue
            found = None
            for cmd, cwd in _run_commands(step):
                for t in _recursive_targets(cmd):
                    target = step.path(t, cwd, cmd.env)
                    d = _Deletion(target, True, "")
                    for e in copies:
                        if _hits(d, e, ctx.context_dir, ignore) and _worth_reporting(e, ctx.context_dir):
                            found = (cmd, target, e)
                            break
                    if found:
                        break
                if found:
                    break
            if not found:
                continue
            cmd, target, e = found
            flag = "--chmod=MODE" if cmd.name == "chmod" or "chmod" in cmd.argv else "--chown=USER:GROUP"
            owner = next((a for a in cmd.args if not a.startswith("-")), "") if cmd.name in ("chown", "chgrp") else ""
            if owner and cmd.name == "chown":
                flag = f"--chown={owner}"
            yield Problem.at(
                ins,
                message=f"`{_short(cmd)}` rewrites {target}, which {e.keyword} at line {e.line} wrote: every "
                        "file is stored twice (the copied one and the changed one) and pulled twice",
                fix=f"set owner/mode while copying: `{e.keyword} {flag} ...` at line {e.line} "
                    "(`--chmod` needs BuildKit), and drop the recursive change")


# -- IL3005 / IL3006 -----------------------------------------------------------------

# ecosystem → (manifest files to copy first, example)
_MANIFESTS = {
    "node": ("package.json", "package-lock.json / yarn.lock / pnpm-lock.yaml"),
    "python": ("requirements.txt", "pyproject.toml + poetry.lock / Pipfile.lock"),
    "ruby": ("Gemfile", "Gemfile.lock"),
    "go": ("go.mod", "go.sum"),
    "php": ("composer.json", "composer.lock"),
    "maven": ("pom.xml", ""),
    "gradle": ("build.gradle", "settings.gradle (and gradle/ wrapper files)"),
    "rust": ("Cargo.toml", "Cargo.lock"),
}
_FIX_EXAMPLES = {
    "node": "COPY package.json package-lock.json ./` + `RUN npm ci` + `COPY . .",
    "python": "COPY requirements.txt ./` + `RUN pip install -r requirements.txt` + `COPY . .",
    "ruby": "COPY Gemfile Gemfile.lock ./` + `RUN bundle install` + `COPY . .",
    "go": "COPY go.mod go.sum ./` + `RUN go mod download` + `COPY . .",
    "php": "COPY composer.json composer.lock ./` + `RUN composer install --no-scripts --no-autoloader` + `COPY . .",
    "maven": "COPY pom.xml ./` + `RUN mvn dependency:go-offline` + `COPY src ./src",
    "gradle": "COPY build.gradle settings.gradle ./` + `RUN gradle dependencies` + `COPY . .",
    "rust": "COPY Cargo.toml Cargo.lock ./` + `RUN cargo fetch` + `COPY . .",
}


def install_kind(cmd: Command) -> Optional[Tuple[str, Optional[str], bool]]:
    """(ecosystem, manifest file or None, reads_only_manifest) for a dependency install, else None.

    ``reads_only_manifest`` is False for installs that need the sources anyway
    (``pip install .``, ``mvn package``, ``cargo build``): IL3006 leaves those alone.
    """
    n, sub = cmd.name, cmd.subcommand
    pos = cmd.positionals()
    if cmd.has_flag("--version", "--help", "-v", "-h", "-V"):
        return None  # `yarn --version`, `bundle -v`: smoke tests, not installs
    if n == "npm" and sub in ("ci", "clean-install", "install-clean"):
        return "node", "package.json", True
    if n == "npm" and sub in ("install", "i") and len(pos) == 1:
        return "node", "package.json", True
    if n == "yarn" and (not pos or (sub == "install" and len(pos) == 1)):
        return "node", "package.json", True
    if n == "pnpm" and ((sub in ("install", "i") and len(pos) == 1) or sub == "fetch"):
        return "node", "package.json" if sub != "fetch" else "pnpm-lock.yaml", True
    if n in ("pip", "pip3") or (n.startswith("pip") and n[3:].replace(".", "").isdigit()):
        if sub != "install":
            return None
        req = cmd.flag_value("-r") or cmd.flag_value("--requirement")
        if req is None:
            for a in cmd.args:
                if a.startswith("-r") and len(a) > 2 and not a.startswith("--"):
                    req = a[2:]
        if req:
            return "python", req, True
        if any(a in (".", "./") or a.startswith((".[", "./[")) for a in pos[1:]):
            return "python", "pyproject.toml", False
        return None
    if n == "uv" and (sub == "sync" or (sub == "pip" and len(pos) > 1 and pos[1] in ("install", "sync")
                                        and (cmd.has_flag("-r") or len(pos) > 2 and pos[1] == "sync"))):
        if sub == "sync":
            return "python", "pyproject.toml", True
        req = cmd.flag_value("-r") or (pos[2] if len(pos) > 2 else None)
        return ("python", req, True) if req else None
    if n == "poetry" and sub in ("install", "sync"):
        return "python", "pyproject.toml", True
    if n == "pipenv" and sub in ("install", "sync") and len(pos) == 1:
        return "python", "Pipfile", True
    if n == "bundle" and (sub in ("install", "") ):
        return "ruby", "Gemfile", True
    if n == "go" and sub == "mod" and len(pos) > 1 and pos[1] == "download":
        return "go", "go.mod", True
    if n in ("composer", "composer.phar") and sub in ("install", "i"):
        return "php", "composer.json", True
    if n in ("mvn", "mvnw"):
        goals = pos
        if any(g.startswith("dependency:") for g in goals):
            return "maven", "pom.xml", True
        if any(g in ("package", "install", "verify", "compile") for g in goals):
            return "maven", "pom.xml", False
        return None
    if n in ("gradle", "gradlew"):
        if "dependencies" in pos:
            return "gradle", "build.gradle", True
        if any(g in ("build", "assemble", "bootJar", "shadowJar", "installDist") for g in pos):
            return "gradle", "build.gradle", False
        return None
    if n == "cargo" and sub in ("fetch",):
        return "rust", "Cargo.toml", True
    if n == "cargo" and sub in ("build", "install"):
        return "rust", "Cargo.toml", False
    return None


def _whole_context(ins) -> bool:
    if ins.flag("from") is not None:
        return False
    srcs, dest = copy_parts(ins)
    return dest is not None and any(clean_rel(s) in (".", "*") for s in srcs if not s.startswith("<<"))


def _installs(ins) -> list:
    out = []
    for cmd in ins.commands:
        k = install_kind(cmd)
        if k:
            out.append((cmd, k))
    return out


def copy_context_before_install(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3005: COPY of the whole context comes before a dependency install of the same stage."""
    for stage in df.stages:
        seen_before: set = set()  # ecosystems whose install already ran before the COPY .
        for st in _chain(stage)[:-1]:
            for ins in st.instructions:
                if ins.keyword == "RUN":
                    seen_before.update(k[0] for _, k in _installs(ins))
        instrs = [i for i in stage.instructions if i.keyword not in ("FROM", "ONBUILD")]
        for pos, ins in enumerate(instrs):
            if ins.keyword == "RUN":
                seen_before.update(k[0] for _, k in _installs(ins))
                continue
            if ins.keyword not in ("COPY", "ADD") or not _whole_context(ins):
                continue
            later = None
            for nxt in instrs[pos + 1:]:
                if nxt.keyword != "RUN":
                    continue
                for cmd, (eco, manifest, _) in _installs(nxt):
                    if eco not in seen_before:
                        later = (nxt, cmd, eco)
                        break
                if later:
                    break
            if later is None:
                continue
            nxt, cmd, eco = later
            yield Problem.at(
                ins,
                message=f"`{ins.keyword} {ins.args.strip()[:40]}` copies the whole build context before "
                        f"`{_short(cmd, 40)}` (line {nxt.start_line}): any source change invalidates the "
                        "install layer and re-runs it",
                fix=f"copy the dependency manifests ({_MANIFESTS[eco][0]}"
                    + (f", {_MANIFESTS[eco][1]}" if _MANIFESTS[eco][1] else "")
                    + f") first and install, then copy the rest: `{_FIX_EXAMPLES[eco]}`")
            seen_before.add(eco)


def manifest_not_copied_first(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3006: the manifest an install reads arrived with a directory COPY that also holds source."""
    for stage in df.stages:
        steps = _steps(df, stage)
        for pos, step in enumerate(steps):
            ins = step.ins
            if ins.keyword != "RUN" or ins.stage is not stage:
                continue
            for cmd, cwd in _run_commands(step):
                kind = install_kind(cmd)
                if not kind or not kind[2] or not kind[1]:
                    continue
                eco, manifest, _ = kind
                mpath = step.path(manifest, cwd, cmd.env)
                culprit = _manifest_source(steps[:pos], mpath, ctx.context_dir)
                if culprit is None:
                    continue
                cstep, src = culprit
                mname = posixpath.basename(mpath)
                src_dir = src.rstrip("/") or "."
                yield Problem.at(
                    ins,
                    message=f"`{_short(cmd)}` reads {mname}, which arrives with "
                            f"`{cstep.ins.keyword} {cstep.ins.args.strip()[:40]}` (line {cstep.ins.start_line}) "
                            "together with source files: any source change re-runs the install",
                    fix=f"copy the manifest on its own first (`COPY {posixpath.join(src_dir, mname)} "
                        f"{posixpath.dirname(mpath)}/`, plus the lock file), install, then copy the directory")
                break


def _manifest_source(steps, mpath: str, context_dir):
    """The latest COPY delivering ``mpath``: (step, source) if it is a broad directory copy, else None.

    A directory copy that the build context cannot confirm holds the manifest only
    counts when no earlier COPY of the manifest itself exists (`COPY Gemfile ./` then
    `COPY lib/ ./` most likely does not re-deliver the Gemfile).
    """
    candidate = None
    for step in reversed(steps):
        ins = step.ins
        if ins.keyword not in ("COPY", "ADD"):
            continue
        srcs, dest = copy_parts(ins)
        if dest is None:
            continue
        for e, src in zip(_copy_entries(step, context_dir), [s for s in srcs]):
            if not e.is_root:
                if e.path == mpath or (_has_glob(e.path) and _glob_match(mpath, e.path)):
                    return None  # its own COPY (any later directory copy was unconfirmed)
                continue
            if ins.flag("from") is not None:
                if e.path == mpath or _under(mpath, e.path) is not None:
                    return None  # from another stage: not a context cache concern
                continue
            if e.path == mpath and e.sub == "none":
                return None
            rel = _under(mpath, e.path)
            if rel is None:
                continue
            if e.sub != "ctx":
                continue
            if clean_rel(src) in (".", "*"):
                return None  # whole context: IL3005's finding
            state = _ctx_has(e, rel, context_dir, None)
            if state is False:
                continue  # that directory of the context does not hold it
            if state is True:
                return step, src
            if candidate is None:
                candidate = (step, src)
    return candidate


# -- IL3009 ------------------------------------------------------------------------

# package managers: a RUN of these is slow and stable, worth its own cached layer
_INSTALLERS = {"apt-get": "apt", "apt": "apt", "aptitude": "apt", "apk": "apk", "yum": "rpm", "dnf": "rpm",
               "microdnf": "rpm", "zypper": "zypper", "pip": "pip", "pip3": "pip", "uv": "pip",
               "poetry": "pip", "pipenv": "pip", "conda": "conda", "mamba": "conda", "micromamba": "conda",
               "npm": "node", "yarn": "node", "pnpm": "node", "gem": "ruby", "bundle": "ruby",
               "composer": "php", "cargo": "rust", "mvn": "java", "gradle": "java", "go": "go"}
_INSTALL_SUBS = {"install", "add", "ci", "i", "sync", "update", "upgrade", "dist-upgrade", "download",
                 "mod", "fetch", "build", "get", "create", "env", "dependency:go-offline", "groupinstall"}


def _installer_families(ins) -> set:
    fams = set()
    for cmd in ins.commands:
        fam = _INSTALLERS.get(cmd.name)
        if fam is None and cmd.name.startswith("pip"):
            fam = "pip"
        if fam and (cmd.subcommand in _INSTALL_SUBS or (cmd.name in ("yarn", "bundle") and not cmd.subcommand)):
            fams.add(fam)
    return fams


def _flag_key(ins) -> tuple:
    return tuple(sorted((k, v or "") for k, v in ins.flags))


def consecutive_run(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3009: consecutive RUNs with the same flags add a layer each; combine them."""
    for stage in df.stages:
        if not stage.ships:
            continue
        prev = None
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                prev = None
                continue
            if prev is not None and _flag_key(prev) == _flag_key(ins):
                before = _installer_families(prev)
                # a slow install followed by an unrelated step: the split keeps the install
                # cached while the later step is edited, so it is worth a layer
                if not before or before & _installer_families(ins):
                    yield Problem.at(
                        ins,
                        message=f"RUN follows the RUN at line {prev.start_line} with nothing in between: "
                                "each RUN commits its own layer (more to pull, and files changed by "
                                "both are stored twice)",
                        fix=f"join it to the RUN at line {prev.start_line} with `&&` (or one heredoc "
                            "`RUN <<EOF`)")
            prev = ins


# -- IL3010 ------------------------------------------------------------------------

def too_many_layers(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3010: more than max-layers RUN/COPY/ADD in the shipped stage chain."""
    final = df.final_stage
    if final is None:
        return
    try:
        limit = int(ctx.options.get("max-layers", 30))
    except (TypeError, ValueError):
        limit = 30
    count = 0
    for st in _chain(final):
        for ins in st.instructions:
            if ins.keyword in ("RUN", "COPY", "ADD"):
                count += 1
                if count == limit + 1:
                    total = sum(1 for s in _chain(final) for i in s.instructions
                                if i.keyword in ("RUN", "COPY", "ADD"))
                    yield Problem.at(
                        ins,
                        message=f"the shipped image gets {total} layers from this Dockerfile (RUN/COPY/ADD), "
                                f"more than max-layers={limit}; this is the first beyond the limit. Each layer "
                                "is a separate download and extraction on every task start",
                        fix="combine adjacent RUNs with `&&`, copy related files in one COPY, and move build "
                            "steps into a builder stage so only COPY --from results ship")
                    return


# -- IL3011 ------------------------------------------------------------------------

def copy_whole_stage_fs(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3011: COPY --from=<stage> / ... copies a whole filesystem."""
    for ins in df.walk("COPY"):
        src_stage = ins.flag("from")
        if src_stage is None or src_stage is True:
            continue
        srcs, dest = copy_parts(ins)
        if dest is None:
            continue
        if not any(clean_rel(s) in (".", "*") for s in srcs if not s.startswith("<<")):
            continue
        stage = ins.stage
        if stage is not None and stage.image.lower() == "scratch" and not ins.onbuild:
            # flattening a finished stage into scratch: nothing is duplicated (differs from DL3067)
            continue
        yield Problem.at(
            ins,
            message=f"COPY --from={src_stage} / copies that stage's whole filesystem (OS, package caches, "
                    "build tools) on top of this stage's own base: the image carries two root filesystems",
            fix=f"copy only the artefacts: `COPY --from={src_stage} /app/bin/server /usr/local/bin/` (or, to "
                "flatten on purpose, copy into `FROM scratch`)")
