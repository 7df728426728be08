"""IL2001-IL2009: language package managers (pip, npm, yarn, pnpm, gem, go, cargo).

Most of these rules ask the same question: does the cache a tool fills during
this RUN end up in the layer? It does not when the cache directory is a
BuildKit cache/tmpfs mount, when the same RUN deletes it afterwards (rm or the
tool's own clean command), or when the tool is told not to cache at all. The
cache directory itself moves with flags (``--cache-dir``), environment
variables (``PIP_CACHE_DIR``, ``GOCACHE``, ``CARGO_HOME``) and HOME, so it is
computed per command. The declarative ``match`` cannot follow that, hence code.

Paths are compared as fnmatch patterns where ``*`` stands for an unknown home
directory: ``*/.cache/pip`` is pip's cache for whichever user runs it.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re

from ..rules import Problem, env_truthy
from ..shell import Command, name_matches

# -- small helpers -------------------------------------------------------------

_HOME_RE = re.compile(r"^(?:~|\$HOME|\$\{HOME\})(?=/|$)")
_UNRESOLVED_RE = re.compile(r"\$\{?[A-Za-z_]")

# ENV that common base images set in their image config (invisible in the Dockerfile):
# rust:* sets CARGO_HOME, golang:* sets GOPATH. Used to expand `$CARGO_HOME/registry` etc.
_IMAGE_ENV_DEFAULTS = {"CARGO_HOME": "/usr/local/cargo", "GOPATH": "/go"}


def _walk_runs(df, ctx):
    return df.walk("RUN", shipped_only=ctx.rule.stages == "shipped")


def _env_for(df, ins, cmds: list, idx: int) -> dict:
    """ENV/ARG visible to command ``idx`` of a RUN: the stage's, `export`s before it, its prefix."""
    env = df.env_at(ins)
    # one pass of substitution: `ENV NODE_ENV=$NODE_ENV` after `ARG NODE_ENV=production`
    for k, v in list(env.items()):
        if v and "$" in v:
            env[k] = df.substitute(v, env)
    for c in cmds[:idx]:
        if c.name == "export":
            for a in c.args:
                k, eq, v = a.partition("=")
                if eq:
                    env[k] = v
    env.update(cmds[idx].env)
    return env


def _getenv(env: dict, name: str):
    """npm/pnpm read their ``npm_config_*`` variables case-insensitively."""
    if name in env:
        return env[name]
    low = name.lower()
    for k, v in env.items():
        if k.lower() == low:
            return v
    return None


def _norm_path(df, word: str, env: dict):
    """A path argument as a comparable pattern ('*' = unknown home), or None if unknowable."""
    if not word:
        return None
    w = word.strip().strip("\"'")
    home = env.get("HOME")
    w = _HOME_RE.sub(lambda _m: home or "*", w)
    if "$" in w:
        w = df.substitute(w, {**_IMAGE_ENV_DEFAULTS, **env})
        if _UNRESOLVED_RE.search(w):
            return None
    w = re.sub(r"/+", "/", w)
    while w.endswith(("/*", "/.", "/**")):
        w = w[: w.rfind("/")]
    w = w.rstrip("/") or "/"
    if not (w.startswith("/") or w.startswith("*/")):
        return None
    return w


def _ancestors(pattern: str) -> list:
    """``/go/pkg/mod`` → [/go/pkg/mod, /go/pkg, /go]; ``*/.cache/pip`` → [*/.cache/pip, */.cache]."""
    parts = pattern.split("/")
    out = []
    for i in range(len(parts), 1, -1):
        p = "/".join(parts[:i])
        if p in ("", "*"):
            break
        out.append(p)
    return out


def _covers(loc: str, caches: list) -> bool:
    """Does deleting or mounting ``loc`` take care of one of the cache directories?"""
    for cache in caches:
        for anc in _ancestors(cache):
            if loc == anc or fnmatch.fnmatchcase(loc, anc):
                return True
        # a mount on (or removal of) the home directory itself
        if cache.startswith("*/") and (loc == "/root" or re.fullmatch(r"/home/[^/*]+", loc)):
            return True
    return False


def _mounted(df, ins, env: dict, caches: list) -> bool:
    for target in ins.cache_mount_targets():
        loc = _norm_path(df, target, env)
        if loc and _covers(loc, caches):
            return True
    return False


def _removed_after(df, cmds: list, idx: int, env: dict, caches: list, idioms=(), cleaner=None) -> bool:
    """A later command of the same RUN removes the cache (rm, an idiom like $(yarn cache dir), or cleaner)."""
    for c in cmds[idx + 1:]:
        if cleaner is not None and cleaner(c):
            return True
        if c.name == "rm":
            for a in c.args:
                if a.startswith("-"):
                    continue
                if any(i in a for i in idioms):
                    return True
                loc = _norm_path(df, a, env)
                if loc and _covers(loc, caches):
                    return True
    return False


def _cache_handled(df, ins, cmds, idx, env, caches, idioms=(), cleaner=None) -> bool:
    return _mounted(df, ins, env, caches) or _removed_after(df, cmds, idx, env, caches, idioms, cleaner)


def _positionals(cmd, value_flags=frozenset()) -> list:
    """Non-option arguments, skipping the values of options that take a separate value."""
    out = []
    args = cmd.args
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i + 1:])
            break
        if a.startswith("-") and a != "-":
            if "=" not in a and a in value_flags:
                i += 1
        elif a.startswith("+") and not out:
            pass  # `cargo +nightly build`: a toolchain, not a subcommand
        else:
            out.append(a)
        i += 1
    return out


def _flag_set(cmd, *names: str):
    """True/False for a boolean flag given as ``--x``, ``--x=true|false`` or ``--no-x``; None if absent."""
    found = None
    for a in cmd.args:
        for n in names:
            if a == n:
                found = True
            elif a.startswith(n + "="):
                found = env_truthy(a.split("=", 1)[1])
            elif n.startswith("--") and a == "--no-" + n[2:]:
                found = False
    return found


def _stage_chain_instructions(df, ins):
    """Instructions before ``ins`` in its stage and the stages it is built FROM (oldest first)."""
    for s in ins.stage.chain() if ins.stage is not None else ():
        for other in s.instructions:
            if s is ins.stage and other.index >= ins.index:
                break
            yield other


def _context_file(ctx, rel: str):
    if not ctx.context_dir or not rel or os.path.isabs(rel) or ".." in rel.split("/"):
        return None
    p = os.path.join(ctx.context_dir, rel)
    return p if os.path.isfile(p) else None


def _read_small(path: str, limit: int = 256 * 1024) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return ""


def _copy_parts(ins):
    """(sources, destination) of a COPY/ADD from the build context; ([], None) otherwise."""
    if ins.keyword not in ("COPY", "ADD") or ins.flag("from"):
        return [], None
    words = ins.exec_form if ins.exec_form is not None else ins.args.split()
    if len(words) < 2:
        return [], None
    return words[:-1], words[-1]


def _config_written(df, ins, ctx, path_re, content_re, extra_re=None) -> bool:
    """An earlier RUN/COPY (or this RUN) puts a config file matching ``path_re`` with ``content_re`` in place."""
    # earlier instructions (ONBUILD triggers run only in child builds) and this RUN itself
    items = [o for o in _stage_chain_instructions(df, ins) if o.keyword != "ONBUILD"] + [ins]
    for trig in items:
        if trig.keyword == "RUN":
            text = trig.script or " ".join(trig.exec_form or [])
            if extra_re is not None and extra_re.search(text):
                return True
            if path_re.search(text) and content_re.search(text):
                return True
        elif trig.keyword in ("COPY", "ADD") and trig is not ins:
            srcs, dest = _copy_parts(trig)
            if dest is None:
                continue
            if trig.heredocs:
                if path_re.search(dest) and any(content_re.search(h.body) for h in trig.heredocs):
                    return True
                continue
            for src in srcs:
                if path_re.search(dest) or path_re.search(src):
                    f = _context_file(ctx, src)
                    if f and content_re.search(_read_small(f)):
                        return True
    return False


def _problem(ins, message: str, fix: str = None) -> Problem:
    return Problem.at(ins, message=message, fix=fix)


# -- IL2001 pip-no-cache-dir ---------------------------------------------------

_PIP_NAMES = ("pip", "pip[0-9]*")
_PIP_VALUE_FLAGS = frozenset({
    "--cache-dir", "--log", "--proxy", "--retries", "--timeout", "--exists-action", "--trusted-host",
    "--cert", "--client-cert", "--python", "--keyring-provider", "--use-feature", "--use-deprecated",
    "-i", "--index-url", "--extra-index-url", "-r", "--requirement", "-c", "--constraint",
    "-t", "--target", "--prefix", "--root", "-f", "--find-links", "--platform", "--python-version",
    "--implementation", "--abi", "--src", "--upgrade-strategy", "-C", "--config-settings",
    "--global-option", "--progress-bar", "--report", "--only-binary", "--no-binary", "-e", "--editable",
})
_PIP_CONF_PATH = re.compile(r"pip\.(?:conf|ini)\b")
_PIP_CONF_NOCACHE = re.compile(r"no[-_]cache[-_]dir\s*=\s*\S", re.I)
_PIP_CONFIG_SET = re.compile(r"\bpip[0-9.]*\s+config\s+(?:--\S+\s+)*set\s+\S*no-cache-dir\s", re.I)


def _is_pip(cmd) -> bool:
    return name_matches(cmd.name, _PIP_NAMES)


def _pip_caches(df, env: dict, cmd) -> list:
    explicit = cmd.flag_value("--cache-dir") or env.get("PIP_CACHE_DIR")
    if explicit:
        loc = _norm_path(df, explicit, env)
        return [loc] if loc else []
    xdg = env.get("XDG_CACHE_HOME")
    if xdg:
        loc = _norm_path(df, xdg.rstrip("/") + "/pip", env)
        return [loc] if loc else []
    home = env.get("HOME")
    return [(home.rstrip("/") if home else "*") + "/.cache/pip"]


def pip_no_cache_dir(df, ctx):
    """IL2001: pip install without --no-cache-dir (and the cache is not kept out some other way)."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            if not _is_pip(cmd):
                continue
            pos = _positionals(cmd, _PIP_VALUE_FLAGS)
            if not pos or pos[0] != "install":
                continue
            if cmd.has_flag("--no-cache-dir"):
                continue
            env = _env_for(df, ins, cmds, i)
            # pip disables its cache for ANY non-empty PIP_NO_CACHE_DIR (even 0/false), for
            # backwards compatibility (pip/_internal/cli/cmdoptions.py, _handle_no_cache_dir)
            if (env.get("PIP_NO_CACHE_DIR") or "").strip():
                continue
            # --no-index installs from local files (typically wheels built in a builder stage):
            # nothing is downloaded, so nothing lands in the HTTP cache
            if cmd.has_flag("--no-index"):
                continue
            caches = _pip_caches(df, env, cmd)
            if not caches:
                continue  # --cache-dir=$SOMETHING we cannot resolve: do not guess
            if _cache_handled(df, ins, cmds, i, env, caches, idioms=("pip cache dir", "pip3 cache dir"),
                              cleaner=lambda c: _is_pip(c) and c.args[:2] == ["cache", "purge"]):
                continue
            if _config_written(df, ins, ctx, _PIP_CONF_PATH, _PIP_CONF_NOCACHE, _PIP_CONFIG_SET):
                continue
            yield _problem(ins, f"`{cmd.name} install` keeps downloaded and built wheels in "
                                f"{caches[0].replace('*', '~', 1)}, which stays in this layer "
                                "(as large as the packages themselves)")
            break


# -- npm / yarn / pnpm ---------------------------------------------------------

_NPM_INSTALL = {"install", "i", "in", "ins", "inst", "insta", "instal", "isnt", "isnta", "isntal",
                "isntall", "add"}
_NPM_CI = {"ci", "clean-install", "ic", "install-clean", "isntall-clean"}
_NPM_VALUE_FLAGS = frozenset({
    "--prefix", "-C", "--cache", "--registry", "--loglevel", "--omit", "--include", "--workspace", "-w",
    "--userconfig", "--globalconfig", "--install-strategy", "--location", "--tag", "--only", "--also",
    "--script-shell", "--fetch-retries", "--fetch-timeout", "--fetch-retry-mintimeout",
    "--fetch-retry-maxtimeout", "--before", "--audit-level", "--os", "--cpu", "--libc", "--scope",
    "--otp", "--proxy", "--https-proxy", "--noproxy", "--ca", "--cafile", "--node-options",
    "--maxsockets",
})
_YARN_VALUE_FLAGS = frozenset({
    "--cwd", "--cache-folder", "--modules-folder", "--network-timeout", "--mutex", "--registry",
    "--global-folder", "--link-folder", "--network-concurrency", "--preferred-cache-folder",
    "--use-yarnrc", "--https-proxy", "--proxy", "--otp",
})
_PNPM_VALUE_FLAGS = frozenset({
    "--dir", "-C", "--filter", "-F", "--store-dir", "--reporter", "--virtual-store-dir", "--modules-dir",
    "--lockfile-dir", "--network-concurrency", "--child-concurrency", "--registry", "--loglevel",
    "--workspace-dir", "--cache-dir", "--state-dir",
})
_JS_RUNNERS = ("corepack", "npx")
_INFO_FLAGS = ("--version", "-v", "--help", "-h")


def _js_tool(cmd):
    """(tool, positionals, command) for npm/yarn/pnpm, seeing through `corepack pnpm ...`/`npx yarn ...`.

    The command is rebuilt without the runner so flag lookups see the tool's own arguments.
    """
    name = cmd.name
    argv = cmd.argv
    if name in _JS_RUNNERS and len(argv) > 1:
        inner = argv[1].split("@")[0]
        if inner in ("npm", "yarn", "pnpm"):
            name, argv = inner, [inner] + argv[2:]
    if name not in ("npm", "yarn", "pnpm"):
        return None, None, None
    c = Command(argv, cmd.env, [], cmd.op, cmd.wrappers, cmd.line)
    flags = {"npm": _NPM_VALUE_FLAGS, "yarn": _YARN_VALUE_FLAGS, "pnpm": _PNPM_VALUE_FLAGS}[name]
    pos = [p for p in _positionals(c, flags) if p not in ("true", "false")]
    return name, pos, c


def _npm_is_install(pos) -> bool:
    return bool(pos) and pos[0] in _NPM_INSTALL


def _npm_is_ci(pos) -> bool:
    return bool(pos) and pos[0] in _NPM_CI


def _is_global(c) -> bool:
    return c.has_flag("-g", "--global") or c.flag_value("--location") == "global"


def _project_install(tool, pos, c) -> bool:
    """Installs the project's dependencies (not named packages, not global)."""
    if _is_global(c):
        return False
    if tool == "npm":
        return _npm_is_ci(pos) or (_npm_is_install(pos) and len(pos) == 1)
    if tool == "yarn":
        return (not pos and not c.has_flag(*_INFO_FLAGS)) or pos == ["install"]
    if tool == "pnpm":
        return pos[:1] in (["install"], ["i"]) and len(pos) == 1
    return False


def _package_dirs(df, ins, ctx) -> list:
    """Build-context directories whose package.json the RUN sees (from COPY sources); [''] if unknown."""
    dirs = []
    for other in _stage_chain_instructions(df, ins):
        srcs, _ = _copy_parts(other)
        for s in srcs:
            if "$" in s:
                continue
            s = s[2:] if s.startswith("./") else s
            s = s.rstrip("/")
            base = os.path.basename(s)
            if fnmatch.fnmatchcase("package.json", base):
                d = os.path.dirname(s)
            elif s not in ("", ".") and _context_file(ctx, s + "/package.json"):
                d = s  # `COPY frontend/ ./`
            else:
                continue
            if d not in dirs:
                dirs.append(d)
    return dirs or [""]


def _package_jsons(df, ins, ctx) -> list:
    """(dir, parsed package.json or None) for the context directories that hold one."""
    out = []
    if not ctx.context_dir:
        return out
    for d in _package_dirs(df, ins, ctx):
        f = _context_file(ctx, os.path.join(d, "package.json") if d else "package.json")
        if f:
            try:
                data = json.loads(_read_small(f, 4 * 1024 * 1024))
            except ValueError:
                data = None
            out.append((d, data if isinstance(data, dict) else None))
    return out


def _has_npm_lock(ctx, d: str) -> bool:
    return any(_context_file(ctx, os.path.join(d, n) if d else n)
               for n in ("package-lock.json", "npm-shrinkwrap.json"))


def npm_install_not_ci(df, ctx):
    """IL2002: `npm install` with no package names where `npm ci` fits."""
    for ins in _walk_runs(df, ctx):
        for cmd in ins.commands:
            tool, pos, c = _js_tool(cmd)
            if tool != "npm" or not _npm_is_install(pos) or len(pos) != 1 or _is_global(c):
                continue
            if pos[0] == "add":
                continue  # `npm add` without a name is odd enough to leave alone
            if c.has_flag("--no-package-lock", "--package-lock-only") or _flag_set(c, "--package-lock") is False:
                continue  # deliberately lockfile-less, or only writes the lockfile
            projects = _package_jsons(df, ins, ctx)
            if projects and not any(_has_npm_lock(ctx, d) for d, _ in projects):
                continue  # the project has no package-lock.json: `npm ci` would fail
            yield _problem(ins, f"`npm {pos[0]}` without package names resolves the dependency tree "
                                "again and may rewrite package-lock.json; `npm ci` installs exactly the "
                                "lockfile, is faster and fails on a stale lock")
            break


def _all_values(c, flag: str) -> list:
    """Every value of a repeatable option (``--omit=dev --omit optional``), comma lists split."""
    out = []
    args = c.args
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            out.extend(a[len(flag) + 1:].split(","))
        elif a == flag and i + 1 < len(args):
            out.extend(args[i + 1].split(","))
    return [v.strip() for v in out]


def _dev_excluded(tool, c, env) -> bool:
    """Does this install (or prune) leave devDependencies out?"""
    node_env_prod = (env.get("NODE_ENV") or "").strip().lower() == "production"
    if tool == "npm":
        include = _all_values(c, "--include") + (_getenv(env, "npm_config_include") or "").split(",")
        if "dev" in include:
            return False  # --include=dev wins over --omit and NODE_ENV
        omit = _all_values(c, "--omit") + re.split(r"[\s,]+", _getenv(env, "npm_config_omit") or "")
        if "dev" in omit:
            return True
        if (c.flag_value("--only") or _getenv(env, "npm_config_only") or "").startswith("prod"):
            return True
        prod = _flag_set(c, "--production")
        if prod is not None:
            return prod
        return env_truthy(_getenv(env, "npm_config_production")) or node_env_prod
    if tool == "yarn":
        prod = _flag_set(c, "--production", "--prod")
        if prod is not None:
            return prod
        return env_truthy(env.get("YARN_PRODUCTION")) or node_env_prod
    if tool == "pnpm":
        if c.has_flag("--prod", "-P", "--production"):
            return True
        if c.has_flag("--dev", "-D"):
            return False
        return node_env_prod
    return False


def _drops_dev(tool, pos, c, env) -> bool:
    """A command that leaves node_modules without devDependencies (a prune or a production install)."""
    if tool == "npm" and pos[:1] == ["prune"]:
        return _dev_excluded(tool, c, env)
    if tool == "pnpm" and pos[:1] == ["prune"]:
        return c.has_flag("--prod")
    if tool == "yarn" and pos[:2] == ["workspaces", "focus"]:
        return c.has_flag("--production")
    return _project_install(tool, pos, c) and _dev_excluded(tool, c, env)


_DEV_FIX = {
    "npm": "build in a builder stage (`npm ci` + build), then in the final stage run `npm ci --omit=dev` "
           "and COPY only the build output; or end this RUN with `npm prune --omit=dev`",
    "yarn": "build in a builder stage, then in the final stage run `yarn install --production "
            "--frozen-lockfile` (Yarn 2+: `yarn workspaces focus --all --production`) and COPY the build output",
    "pnpm": "build in a builder stage, then in the final stage run `pnpm install --prod --frozen-lockfile` "
            "and COPY the build output; or end this RUN with `pnpm prune --prod`",
}


def npm_dev_dependencies(df, ctx):
    """IL2003: a shipped stage installs devDependencies."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        parsed = [_js_tool(c) for c in cmds]
        for i, (tool, pos, c) in enumerate(parsed):
            if tool is None or not _project_install(tool, pos, c):
                continue
            env = _env_for(df, ins, cmds, i)
            if _dev_excluded(tool, c, env):
                continue
            # a later prune or production install in the same RUN removes them again
            if any(t is not None and _drops_dev(t, p, cc, _env_for(df, ins, cmds, j))
                   for j, (t, p, cc) in enumerate(parsed[i + 1:], i + 1)):
                continue
            projects = [data for _, data in _package_jsons(df, ins, ctx)]
            if projects and all(isinstance(d, dict) and not d.get("devDependencies")
                                and not d.get("workspaces") for d in projects):
                continue  # package.json has no devDependencies: nothing to leave out
            what = " ".join([tool] + pos) if pos else tool
            yield _problem(ins, f"`{what}` in a shipped stage also installs devDependencies (test, build and "
                                "lint tools, often more than half of node_modules) into the image",
                           _DEV_FIX[tool])
            break


def _npm_caches(df, env, c) -> list:
    """npm's content cache, <cache>/_cacache (removing or mounting <cache> or _cacache both work)."""
    explicit = c.flag_value("--cache") or _getenv(env, "npm_config_cache")
    if explicit:
        loc = _norm_path(df, explicit, env)
        return [loc + "/_cacache"] if loc else []
    home = env.get("HOME")
    return [(home.rstrip("/") if home else "*") + "/.npm/_cacache"]


def _npm_cache_clean(c) -> bool:
    tool, pos, _ = _js_tool(c)
    return tool == "npm" and pos[:1] == ["cache"] and len(pos) > 1 and pos[1] in ("clean", "clear", "rm")


def npm_cache_left(df, ctx):
    """IL2004: npm ci/install leaves ~/.npm/_cacache in the layer."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            tool, pos, c = _js_tool(cmd)
            if tool != "npm" or not (_npm_is_install(pos) or _npm_is_ci(pos)):
                continue
            if c.has_flag("--offline"):
                continue  # reads the cache, adds nothing to it
            env = _env_for(df, ins, cmds, i)
            caches = _npm_caches(df, env, c)
            if not caches:
                continue
            if _cache_handled(df, ins, cmds, i, env, caches, idioms=("npm config get cache",),
                              cleaner=_npm_cache_clean):
                continue
            where = caches[0].replace("*", "~", 1)
            yield _problem(ins, f"`npm {pos[0]}` leaves the downloaded tarballs in {where}, "
                                "a second, compressed copy of the installed packages that stays in this layer")
            break


def _yarn_caches(df, env, c) -> list:
    """Yarn 1 writes into <cache folder>/v6 (root: /usr/local/share/.cache/yarn); Yarn 2+ ~/.yarn/berry/cache."""
    explicit = c.flag_value("--cache-folder") or env.get("YARN_CACHE_FOLDER")
    if explicit:
        loc = _norm_path(df, explicit, env)
        return [loc + "/v6", loc] if loc else []
    home = env.get("HOME")
    h = home.rstrip("/") if home else "*"
    return ["/usr/local/share/.cache/yarn/v6", h + "/.cache/yarn/v6", h + "/.yarn/berry/cache"]


def _yarn_berry_pnp(df, ins, ctx) -> bool:
    """Yarn 2+ with Plug'n'Play: the cache *is* the install (zip archives loaded at run time)."""
    rc = None
    for d in _package_dirs(df, ins, ctx):
        f = _context_file(ctx, os.path.join(d, ".yarnrc.yml") if d else ".yarnrc.yml")
        if f:
            rc = _read_small(f)
            break
    if rc is None:
        return False
    m = re.search(r"^\s*nodeLinker\s*:\s*[\"']?([\w-]+)", rc, re.M)
    return m is None or m.group(1) == "pnp"


def _yarn_cache_clean(c) -> bool:
    tool, pos, _ = _js_tool(c)
    return tool == "yarn" and pos[:2] == ["cache", "clean"]


def _yarn_installs(pos, c) -> bool:
    if not pos:
        return not c.has_flag(*_INFO_FLAGS)
    if pos == ["install"]:
        return True
    return pos[0] == "add" or pos[:2] == ["global", "add"]


def yarn_cache_left(df, ctx):
    """IL2005: yarn install leaves its package cache in the layer."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            tool, pos, c = _js_tool(cmd)
            if tool != "yarn" or not _yarn_installs(pos, c):
                continue
            env = _env_for(df, ins, cmds, i)
            caches = _yarn_caches(df, env, c)
            if not caches:
                continue
            if _cache_handled(df, ins, cmds, i, env, caches, idioms=("yarn cache dir",),
                              cleaner=_yarn_cache_clean):
                continue
            if _yarn_berry_pnp(df, ins, ctx):
                continue
            what = " ".join(["yarn"] + pos)
            yield _problem(ins, f"`{what}` leaves its package cache "
                                "(/usr/local/share/.cache/yarn for root) in this layer, a second copy "
                                "of every package in node_modules")
            break


def _pnpm_stores(df, env, c) -> list:
    explicit = c.flag_value("--store-dir") or _getenv(env, "npm_config_store_dir")
    if explicit:
        loc = _norm_path(df, explicit, env)
        return [loc] if loc else []
    for var, suffix in (("PNPM_HOME", "/store"), ("XDG_DATA_HOME", "/pnpm/store")):
        if env.get(var):
            loc = _norm_path(df, env[var].rstrip("/") + suffix, env)
            return [loc] if loc else []
    home = env.get("HOME")
    h = home.rstrip("/") if home else "*"
    return [h + "/.local/share/pnpm/store", "*/.pnpm-store", "/pnpm/store"]


def _pnpm_store_prune(c) -> bool:
    tool, pos, _ = _js_tool(c)
    return tool == "pnpm" and pos[:2] == ["store", "prune"]


def pnpm_store_left(df, ctx):
    """IL2006: pnpm install leaves its content-addressable store in the layer."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            tool, pos, c = _js_tool(cmd)
            if tool != "pnpm" or pos[:1] not in (["install"], ["i"], ["add"], ["fetch"]):
                continue
            if c.has_flag("--offline"):
                continue
            env = _env_for(df, ins, cmds, i)
            stores = _pnpm_stores(df, env, c)
            if not stores:
                continue
            if _cache_handled(df, ins, cmds, i, env, stores, idioms=("pnpm store path",),
                              cleaner=_pnpm_store_prune):
                continue
            yield _problem(ins, f"`pnpm {pos[0]}` leaves its package store "
                                f"({stores[0].replace('*', '~', 1)}) and metadata cache in this layer")
            break


# -- IL2007 gem-no-document ---------------------------------------------------

_GEMRC_PATH = re.compile(r"gemrc\b")
_GEMRC_NODOC = re.compile(r"(?:^|[\s'\"{;])(?:gem|install)\s*:[^\n]*(?:--no-document|--no-doc\b|\s-N\b)", re.M)
_OFFICIAL_RUBY = re.compile(r"^(?:(?:docker\.io|index\.docker\.io|public\.ecr\.aws/docker|mirror\.gcr\.io)/)?"
                            r"(?:library/)?ruby(?:[:@]|$)")


def _official_ruby(df, ins) -> bool:
    """The official ruby images write `install: --no-document` into /usr/local/etc/gemrc."""
    st = ins.stage
    seen = []
    while st is not None and st not in seen:
        seen.append(st)
        if st.parent is None:
            return bool(_OFFICIAL_RUBY.match(st.image.lower()))
        st = st.parent
    return False


def gem_no_document(df, ctx):
    """IL2007: gem install generates ri/rdoc documentation."""
    for ins in _walk_runs(df, ctx):
        for cmd in ins.commands:
            if cmd.name != "gem" or cmd.subcommand != "install":
                continue
            if cmd.has_flag("-N") or any(a.startswith("--no-doc") for a in cmd.args):
                continue
            if cmd.has_flag("--no-rdoc") and cmd.has_flag("--no-ri"):
                continue
            doc = cmd.flag_value("--document")
            if doc is not None and doc.strip() in ("", "''", '""'):
                continue
            if _official_ruby(df, ins) or _config_written(df, ins, ctx, _GEMRC_PATH, _GEMRC_NODOC):
                continue
            yield Problem.at(ins)
            break


# -- IL2008 go-build-cache-left -------------------------------------------------

def _go_sub(cmd) -> list:
    pos = _positionals(cmd, frozenset({"-C"}))
    return pos[:2]


def _go_caches(df, env):
    home = env.get("HOME")
    h = home.rstrip("/") if home else "*"
    gocache = env.get("GOCACHE")
    if gocache:
        build = [_norm_path(df, gocache, env)]
    elif env.get("XDG_CACHE_HOME"):
        build = [_norm_path(df, env["XDG_CACHE_HOME"].rstrip("/") + "/go-build", env)]
    else:
        build = [h + "/.cache/go-build"]
    modcache = env.get("GOMODCACHE")
    if modcache:
        mod = [_norm_path(df, modcache, env)]
    elif env.get("GOPATH"):
        mod = [_norm_path(df, env["GOPATH"].split(":")[0].rstrip("/") + "/pkg/mod", env)]
    else:
        mod = ["/go/pkg/mod", h + "/go/pkg/mod"]
    return [p for p in build if p], [p for p in mod if p]


def _go_clean(kind: str):
    def cleaner(c) -> bool:
        return c.name == "go" and c.subcommand == "clean" and c.has_flag(f"-{kind}", f"--{kind}")
    return cleaner


def _vendored(cmd, env, ctx) -> bool:
    mode = cmd.flag_value("-mod") or cmd.flag_value("--mod")
    if mode is None:
        m = re.search(r"-mod=(\w+)", env.get("GOFLAGS") or "")
        mode = m.group(1) if m else None
    if mode is not None:
        return mode == "vendor"
    # Go >= 1.14 builds from vendor/ on its own when vendor/modules.txt exists
    return bool(_context_file(ctx, "vendor/modules.txt"))


def go_build_cache_left(df, ctx):
    """IL2008: go build/install/mod download leave the build and module caches in the layer."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            if cmd.name != "go":
                continue
            sub = _go_sub(cmd)
            if sub[:1] in (["build"], ["install"]):
                needs_build = True
            elif sub == ["mod", "download"]:
                needs_build = False
            else:
                continue
            env = _env_for(df, ins, cmds, i)
            build, mod = _go_caches(df, env)
            left = []
            if needs_build and build and not _cache_handled(
                    df, ins, cmds, i, env, build, idioms=("go env GOCACHE",), cleaner=_go_clean("cache")):
                left.append(f"build cache ({build[0].replace('*', '~', 1)})")
            uses_mod = not (needs_build and _vendored(cmd, env, ctx))
            if uses_mod and mod and not _cache_handled(
                    df, ins, cmds, i, env, mod, idioms=("go env GOMODCACHE",), cleaner=_go_clean("modcache")):
                left.append(f"module cache ({mod[0].replace('*', '~', 1)})")
            if not left:
                continue
            what = "mod download" if sub[0] == "mod" else sub[0]
            yield _problem(ins, f"`go {what}` in a shipped stage leaves the Go "
                                f"{' and '.join(left)} in this layer (often hundreds of MB)")
            break


# -- IL2009 cargo-registry-left --------------------------------------------------

_CARGO_VALUE_FLAGS = frozenset({"-Z", "--config", "-C", "--color"})
_CARGO_SUBS = {"build", "b", "install", "fetch"}


def _cargo_registry(df, env) -> list:
    home = env.get("CARGO_HOME")
    if home:
        loc = _norm_path(df, home.rstrip("/") + "/registry", env)
        return [loc] if loc else []
    h = env.get("HOME")
    return ["/usr/local/cargo/registry", (h.rstrip("/") if h else "*") + "/.cargo/registry"]


def cargo_registry_left(df, ctx):
    """IL2009: cargo build/install leaves the crates.io registry (index, .crate files, sources)."""
    for ins in _walk_runs(df, ctx):
        cmds = ins.commands
        for i, cmd in enumerate(cmds):
            if cmd.name != "cargo":
                continue
            pos = _positionals(cmd, _CARGO_VALUE_FLAGS)
            if not pos or (pos[0] not in _CARGO_SUBS and pos[:2] != ["chef", "cook"]):
                continue
            env = _env_for(df, ins, cmds, i)
            if cmd.has_flag("--offline", "--frozen") or env_truthy(env.get("CARGO_NET_OFFLINE")):
                continue  # no network: nothing is downloaded into the registry
            registry = _cargo_registry(df, env)
            if not registry:
                continue
            if _cache_handled(df, ins, cmds, i, env, registry):
                continue
            yield _problem(ins, f"`cargo {' '.join(pos[:2]) if pos[0] == 'chef' else pos[0]}` in a shipped "
                                f"stage leaves the crate registry ({registry[0].replace('*', '~', 1)}: index, "
                                ".crate archives and unpacked sources) in this layer")
            break
