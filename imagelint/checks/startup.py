"""Start-up rules: IL4005 shell-form-entrypoint, IL4007 healthcheck-slow-start,
IL4008 install-at-startup, IL4009 package-manager-as-pid1.

They judge what the container runs when a task starts: the effective ENTRYPOINT
and CMD of the final stage (inherited through ``FROM <stage>``), and its
HEALTHCHECK.
"""
from __future__ import annotations

import json
import os
import re
import shlex

from ..rules import Problem
from ..shell import ShellSyntaxError, split_commands

__all__ = ["effective", "start_commands", "parse_duration", "shell_form_entrypoint", "healthcheck_slow_start",
           "install_at_startup", "package_manager_as_pid1"]


def _stage_chain(df) -> list:
    """The final stage and the stages it is built FROM, the final one first."""
    return df.final_stage.chain()[::-1] if df.final_stage is not None else []


def effective(df, keyword: str):
    """The ENTRYPOINT/CMD/HEALTHCHECK in force in the final image (None if the base image's).

    An ENTRYPOINT set in a stage clears a CMD inherited from its parent (Docker's
    rule), so the CMD search stops at a stage that sets ENTRYPOINT.
    """
    for st in _stage_chain(df):
        found = None
        has_entrypoint = False
        for ins in st.instructions:
            if ins.keyword == keyword:
                found = ins
            elif ins.keyword == "ENTRYPOINT":
                has_entrypoint = True
        if found is not None:
            return found
        if keyword == "CMD" and has_entrypoint:
            return None
    return None


def _argv_text(ins) -> str:
    """Shell text equivalent of CMD/ENTRYPOINT: exec form is re-quoted so `sh -c` unwraps."""
    if ins.exec_form is not None:
        return " ".join(shlex.quote(a) for a in ins.exec_form)
    return ins.args


def _commands_of(text: str) -> list:
    try:
        return split_commands(text)
    except ShellSyntaxError:
        return []


_INITS = {"tini", "tini-static", "dumb-init", "catatonit", "docker-init", "s6-svscan"}


def _strip_init(cmds: list) -> list:
    """Drop an init wrapper (`tini --`, `dumb-init`) at the front: it execs the real command."""
    if not cmds or cmds[0].name not in _INITS:
        return cmds
    first = cmds[0]
    argv = first.argv[1:]
    while argv and argv[0].startswith("-"):
        stop = argv[0] == "--"
        argv = argv[1:]
        if stop:
            break
    if not argv:
        return cmds[1:]
    return _commands_of(" ".join(shlex.quote(a) for a in argv)) + cmds[1:]


def start_commands(df) -> list:
    """[(instruction, commands, joined)] for what the container runs at start.

    ENTRYPOINT and CMD each on their own; when ENTRYPOINT is exec form, last the two
    joined (``ENTRYPOINT ["npm"]`` + ``CMD ["start"]``, ``joined`` True), reported at
    the ENTRYPOINT. A shell-form ENTRYPOINT ignores CMD, so CMD is then left out.
    """
    out = []
    ep = effective(df, "ENTRYPOINT")
    cmd = effective(df, "CMD")
    if ep is not None:
        out.append((ep, _strip_init(_commands_of(_argv_text(ep))), False))
        if ep.exec_form is None:
            return out
    if cmd is not None:
        out.append((cmd, _strip_init(_commands_of(_argv_text(cmd))), False))
    if ep is not None and cmd is not None and ep.exec_form:
        joined = list(ep.exec_form) + (list(cmd.exec_form) if cmd.exec_form is not None
                                       else ["/bin/sh", "-c", cmd.args])
        out.append((ep, _strip_init(_commands_of(" ".join(shlex.quote(a) for a in joined))), True))
    return out


# -- IL4005 shell-form-entrypoint -------------------------------------------------------

def shell_form_entrypoint(df, ctx):
    """IL4005: the effective ENTRYPOINT (or CMD) is shell form, so /bin/sh is PID 1."""
    ep = effective(df, "ENTRYPOINT")
    cmd = effective(df, "CMD")
    target = None
    if ep is not None and ep.exec_form is None:
        target = ep  # shell-form ENTRYPOINT: CMD is ignored altogether
    elif ep is None and cmd is not None and cmd.exec_form is None:
        target = cmd
    elif ep is not None and cmd is not None and cmd.exec_form is None:
        target = cmd  # exec ENTRYPOINT + shell CMD: the entrypoint gets `/bin/sh -c "..."` as arguments
    if target is None or not target.args.strip():
        return
    if re.match(r"^exec\s", target.args.strip()):
        return  # `CMD exec node server.js`: the shell replaces itself with the app
    try:
        words = shlex.split(target.args)
    except ValueError:
        words = target.args.split()
    kw = target.keyword
    if words and not re.search(r"[|&;<>$`*()]", target.args):
        fix = (f"use exec (JSON) form: `{kw} {json.dumps(words)}`; it also lets `docker run` / the task "
               "definition's `command` pass arguments")
    else:
        fix = (f"it uses shell features, so put `exec` before the command that starts the app (`{kw} ... && "
               f"exec app`) or move the line into a script that ends with `exec \"$@\"` and use "
               f"`{kw} [\"/app/start.sh\"]`")
    extra = " (and a shell-form ENTRYPOINT ignores CMD and any `command` override in the task definition)" \
        if kw == "ENTRYPOINT" else ""
    yield Problem.at(
        target,
        message=(f"{kw} in shell form runs under `/bin/sh -c`: the shell can stay PID 1, the app "
                 "then never sees SIGTERM and ECS kills it with SIGKILL after the stop timeout (30 s by "
                 f"default), with no graceful shutdown{extra}"),
        fix=fix,
    )


# -- IL4007 healthcheck-slow-start ------------------------------------------------------

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str):
    """Go-style duration (``30s``, ``1m30s``, ``500ms``) in seconds; None if invalid."""
    t = text.strip()
    if not t:
        return None
    pos, total = 0, 0.0
    while pos < len(t):
        m = _DURATION_RE.match(t, pos)
        if not m:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total


def _fmt(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def healthcheck_slow_start(df, ctx):
    """IL4007: the first health check comes only after --interval (default 30 s)."""
    hc = effective(df, "HEALTHCHECK")
    if hc is None or hc.args.strip().upper().startswith("NONE"):
        return
    limit = parse_duration(str(ctx.options.get("max-first-check", "10s")))
    if limit is None:
        limit = 10.0
    interval = parse_duration(hc.flag("interval")) if isinstance(hc.flag("interval"), str) else 30.0
    start_period = parse_duration(hc.flag("start-period")) if isinstance(hc.flag("start-period"), str) else 0.0
    start_interval = parse_duration(hc.flag("start-interval")) \
        if isinstance(hc.flag("start-interval"), str) else None
    if interval is None or start_period is None:
        return  # not a duration Docker accepts: the build rejects it anyway
    if start_period > 0 and start_interval is not None:
        first = start_interval  # Docker >= 25 probes every start-interval during start-period
    else:
        first = interval
    if first <= limit:
        return
    if start_interval is not None and start_period == 0:
        why = "`--start-interval` has no effect without `--start-period`, so "
    else:
        why = ""
    yield Problem.at(
        hc,
        message=(f"{why}the first health check runs only {_fmt(first)} after the container starts: until then "
                 "it is `starting`, so containers that depend on it (ECS dependsOn HEALTHY, compose "
                 "service_healthy) wait that long even if the app is up in a second"),
        fix=(f"probe often while starting: `HEALTHCHECK --interval={_fmt(interval)} --start-period=60s "
             "--start-interval=2s CMD ...` (Docker Engine 25+; ECS task definitions: a short `interval` "
             "and `startPeriod`)"),
    )


# -- IL4008 install-at-startup ------------------------------------------------------------

# (program patterns, subcommands or None for "any", how it reads in a message)
_INSTALLS = [
    (("pip", "pip[0-9]*"), {"install", "download"}),
    (("poetry",), {"install"}),
    (("pipenv",), {"install", "sync"}),
    (("conda", "mamba", "micromamba"), {"install", "create", "update"}),
    (("npm",), {"install", "i", "ci", "add", "rebuild"}),
    (("pnpm",), {"install", "i", "add"}),
    (("yarn",), {"install", "add"}),
    (("bun",), {"install", "i", "add"}),
    (("apt-get", "apt", "aptitude"), {"install"}),
    (("apk",), {"add"}),
    (("yum", "dnf", "microdnf", "tdnf"), {"install"}),
    (("zypper",), {"install", "in"}),
    (("bundle", "bundler"), {"install"}),
    (("gem",), {"install"}),
    (("go",), {"build", "install", "run", "get", "generate"}),
    (("cargo",), {"build", "install", "run"}),
    (("mvn", "mvnw"), {"package", "install", "compile", "verify", "spring-boot:run", "dependency:go-offline"}),
    (("gradle", "gradlew"), {"build", "assemble", "bootRun", "run", "installDist", "bootJar", "jar"}),
    (("composer", "composer.phar"), {"install", "update", "require"}),
    (("dotnet",), {"restore", "build", "publish", "run"}),
]
_BUILD_SCRIPT_RE = re.compile(r"^(?:build|compile)(?:[:\-_].*)?$")


def _install_match(cmd):
    """Text like `pip install` if ``cmd`` installs or builds, else None."""
    from ..shell import name_matches
    name = cmd.name
    pos = cmd.positionals()
    sub = pos[0] if pos else ""
    if name == "uv" and len(pos) >= 2 and pos[0] == "pip" and pos[1] == "install":
        return "uv pip install"
    if name == "uv" and sub == "sync":
        return "uv sync"
    if name == "yarn" and not pos:
        return "yarn"  # bare `yarn` installs
    if name.startswith("python") and len(pos) >= 2 and os.path.basename(pos[0]) == "setup.py" \
            and pos[1] in ("install", "build", "develop"):
        return f"python setup.py {pos[1]}"
    if name in ("npm", "pnpm", "yarn", "bun"):
        script = ""
        if sub in ("run", "run-script") and len(pos) > 1:
            script = pos[1]
        elif name in ("yarn", "pnpm") and sub not in ("run", "start"):
            script = sub  # `yarn build` runs the build script
        if script and _BUILD_SCRIPT_RE.match(script):
            return f"{name} run {script}" if sub in ("run", "run-script") else f"{name} {script}"
    for names, subs in _INSTALLS:
        if name_matches(name, names) and sub in subs:
            return f"{name} {sub}"
    return None


def _copied_script(df, program: str, ctx_dir: str):
    """(context path, COPY instruction) of a script copied into the image as ``program``."""
    base = os.path.basename(program)
    if not base or not ctx_dir:
        return None
    for ins in df.walk("COPY", "ADD", shipped_only=True):
        if ins.flag("from") or ins.onbuild:
            continue
        words = list(ins.exec_form) if ins.exec_form is not None else ins.args.split()
        if len(words) < 2:
            continue
        dest = words[-1]
        for src in words[:-1]:
            if src.startswith("<<") or "://" in src:
                continue
            target = dest if not (dest.endswith("/") or len(words) > 2) else dest.rstrip("/") + "/" + \
                os.path.basename(src.rstrip("/"))
            if os.path.basename(target.rstrip("/")) != base and os.path.basename(src.rstrip("/")) != base:
                continue
            path = os.path.join(ctx_dir, src.lstrip("/"))
            if os.path.isdir(path):
                path = os.path.join(path, base)
            if os.path.isfile(path):
                return os.path.relpath(path, ctx_dir), ins
    return None


def _script_installs(path: str) -> list:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(256 * 1024)
    except OSError:
        return []
    found = []
    for c in _commands_of(text):
        what = _install_match(c)
        if what and what not in found:
            found.append(what)
    return found


def install_at_startup(df, ctx):
    """IL4008: the start command (or the entrypoint script it runs) installs or builds."""
    reported = set()
    for ins, cmds, joined in start_commands(df):
        if reported and joined:
            continue  # ENTRYPOINT or CMD alone already explained it
        found = []
        for c in cmds:
            what = _install_match(c)
            if what and what not in found:
                found.append(what)
        script = None
        if not found and cmds and ctx.context_dir:
            first = cmds[0]
            program = first.argv[0] if first.argv else ""
            if first.name in ("sh", "bash", "dash", "ash") and first.positionals():
                program = first.positionals()[0]
            hit = _copied_script(df, program, ctx.context_dir)
            if hit is not None:
                rel, copy_ins = hit
                found = _script_installs(os.path.join(ctx.context_dir, rel))
                script = (rel, copy_ins)
        if not found:
            continue
        reported.add(ins.start_line)
        listed = ", ".join(f"`{w}`" for w in found)
        via = f"`{script[0]}` (copied at line {script[1].start_line}), which {ins.keyword} starts," \
            if script else ins.keyword
        yield Problem.at(
            ins,
            message=(f"{via} runs {listed} at every container start: each task launch downloads and "
                     "builds again (slower start, needs registry access through a NAT gateway, and can pick "
                     "up different versions or fail when the registry is down)"),
            fix=(f"move {listed} into RUN instructions at build time (in a builder stage when it needs a "
                 "toolchain) and let the start command only start the app"),
        )


# -- IL4009 package-manager-as-pid1 ----------------------------------------------------------

_YARN_BUILTINS = {"install", "add", "remove", "upgrade", "up", "cache", "config", "info", "init", "link",
                  "unlink", "global", "audit", "why", "workspace", "workspaces", "set", "plugin", "dlx",
                  "node", "exec", "bin", "pack", "publish", "version", "list", "outdated", "import", "help",
                  "login", "logout", "owner", "tag", "team", "check", "licenses", "generate-lock-entry",
                  "autoclean", "create", "policies", "test"}


def _wrapper_match(cmd):
    """Text like `npm start` if ``cmd`` runs the app through a package manager, else None."""
    name = cmd.name
    pos = cmd.positionals()
    sub = pos[0] if pos else ""
    if name == "npm":
        if sub in ("start", "restart"):
            return "npm start"
        if sub in ("run", "run-script") and len(pos) > 1 and not _BUILD_SCRIPT_RE.match(pos[1]):
            return f"npm run {pos[1]}"
    elif name == "pnpm":
        if sub == "start":
            return "pnpm start"
        if sub == "run" and len(pos) > 1 and not _BUILD_SCRIPT_RE.match(pos[1]):
            return f"pnpm run {pos[1]}"
    elif name == "yarn":
        if sub == "run" and len(pos) > 1 and not _BUILD_SCRIPT_RE.match(pos[1]):
            return f"yarn run {pos[1]}"
        if sub and sub not in _YARN_BUILTINS and sub != "run" and not _BUILD_SCRIPT_RE.match(sub):
            return f"yarn {sub}"
    elif name in ("poetry", "pipenv") and sub == "run":
        return f"{name} run"
    return None


def package_manager_as_pid1(df, ctx):
    """IL4009: the app is started through npm/yarn/pnpm/poetry/pipenv."""
    reported = set()
    for ins, cmds, joined in start_commands(df):
        if reported and joined:
            continue  # ENTRYPOINT or CMD alone already explained it
        for c in cmds:
            what = _wrapper_match(c)
            if what is None:
                continue
            reported.add(ins.start_line)
            if what.startswith(("poetry", "pipenv")):
                cost = (f"`{what}` imports {what.split()[0]} and locates the virtualenv (typically 0.5-1 s) "
                        "before it execs the app, on every start, and the image must carry the tool and its "
                        "dependencies")
                fix = ("put the virtualenv on PATH (`ENV PATH=\"/app/.venv/bin:$PATH\"`) and start the app "
                       "directly: `CMD [\"python\", \"-m\", \"app\"]` or `CMD [\"gunicorn\", \"app:app\"]`")
            else:
                cost = (f"`{what}` keeps the package manager as the parent process: an extra Node process "
                        "(~100-300 ms of start-up and tens of MB of memory) that does not reliably pass SIGTERM "
                        "on, so the app misses graceful shutdown and ECS kills it after the stop timeout")
                fix = ("run the app directly with the command the script runs, e.g. "
                       "`CMD [\"node\", \"server.js\"]` (and `--init` / `tini` if it needs an init)")
            yield Problem.at(ins, message=f"{ins.keyword} starts the app through a package manager: {cost}",
                             fix=fix)
            break
