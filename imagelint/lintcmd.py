"""``imagelint lint`` without click: its option table, its body, and a fast argv parser.

``lint`` runs in pre-commit hooks on every commit, and importing click costs
about 20 ms, as much as linting a typical Dockerfile. So the option table lives
here, in a module that never imports click: cli.py builds the click command from
it, and the console script (:mod:`imagelint._entry`) parses a plain
``imagelint lint ...`` call with :func:`parse_lint_args` and runs :func:`run_lint`
directly. Anything the fast parser is not sure about — help, unknown or
malformed options, a value click would reject — goes to click, so click stays
the one judge of usage and the one source of usage messages.
"""
import os
import sys

__all__ = ["LINT_OPTIONS", "LintOption", "parse_lint_args", "parse_args", "run_lint", "load_linter",
           "EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_BAD_INPUT"]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2

FORMATS = ("tty", "json", "sarif", "github", "checkstyle")
FAIL_LEVELS = ("error", "warning", "info", "style", "none")


class LintOption:
    """One ``lint`` option, as both click and the fast parser read it.

    ``path``: None, "file" (a file; click.Path(dir_okay=False)) or "dir"
    (a directory; click.Path(file_okay=False)).
    """

    __slots__ = ("decls", "dest", "choices", "multiple", "is_flag", "path", "default", "metavar", "help",
                 "int_range")

    def __init__(self, decls: tuple, dest: str, help: str, choices: tuple = None, multiple: bool = False,
                 is_flag: bool = False, path: str = None, default=None, metavar: str = None,
                 int_range: tuple = None):
        self.decls = decls
        self.dest = dest
        self.help = help
        self.choices = choices
        self.multiple = multiple
        self.is_flag = is_flag
        self.path = path
        self.default = default
        self.metavar = metavar
        self.int_range = int_range  # (min, max): an integer option (click.IntRange)


LINT_OPTIONS = (
    LintOption(("-f", "--format"), "fmt", "Output format (default tty, or `format` in config).",
               choices=FORMATS),
    LintOption(("--fail-on",), "fail_on", "Exit 1 when a finding is at or above this severity (default info).",
               choices=FAIL_LEVELS),
    LintOption(("--select",), "select", "Only these rules (repeat or comma-separate).", multiple=True,
               metavar="ID_OR_NAME"),
    LintOption(("--ignore",), "ignore", "Skip these rules (repeat or comma-separate).", multiple=True,
               metavar="ID_OR_NAME"),
    LintOption(("-c", "--config"), "config_path",
               "Config file (default: nearest .imagelint.yaml or pyproject.toml [tool.imagelint]).", path="file"),
    LintOption(("--rules",), "rules_dirs", "Extra rule directory (same format as the built-in rules/).",
               multiple=True, path="dir", metavar="DIR"),
    LintOption(("--no-color",), "no_color", "No ANSI colours (also NO_COLOR=1).", is_flag=True, default=False),
    LintOption(("--stdin-filename",), "stdin_filename", "Name to report for `-` (stdin).", default="-",
               metavar="NAME"),
)


def _path_ok(value: str, kind: str = None) -> bool:
    """Would click.Path accept it? (exists=False: only an existing path is checked: type, readable)."""
    import stat  # already loaded by os

    try:
        st = os.stat(value)
    except (OSError, ValueError):
        return True
    if (kind == "file" and stat.S_ISDIR(st.st_mode)) or (kind == "dir" and stat.S_ISREG(st.st_mode)):
        return False
    return os.access(value, os.R_OK)


def parse_lint_args(args: list):
    """Keyword arguments of :func:`run_lint` for ``args`` (what follows ``lint``), or None
    when click must handle them (help, errors, anything unusual)."""
    values = parse_args(args, LINT_OPTIONS)
    if values is None or not all(_path_ok(p) for p in values["args"]):
        return None
    values["paths"] = values.pop("args")
    return values


def parse_args(args: list, options: tuple):
    """Option values (by dest) plus the positional ``args`` for an option table, or None when
    click must handle them (help, errors, anything unusual)."""
    by_flag = {d: o for o in options for d in o.decls}
    values = {o.dest: ([] if o.multiple else o.default) for o in options}
    positionals = []
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        i += 1
        if a == "--":
            positionals.extend(args[i:])
            break
        if a == "-" or not a.startswith("-"):
            positionals.append(a)
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            attached = value if eq else None
        else:  # -fjson or -f json
            name, attached = a[:2], (a[2:] or None)
        opt = by_flag.get(name)
        if opt is None:  # -h/--help, a typo, a group option
            return None
        if opt.is_flag:
            if attached is not None:
                return None
            values[opt.dest] = True
            continue
        if attached is None:
            if i >= n or (args[i].startswith("-") and args[i] != "-"):
                return None  # missing value, or a value click might read differently
            attached = args[i]
            i += 1
        if opt.choices is not None and attached not in opt.choices:
            return None
        if opt.path is not None and not _path_ok(attached, opt.path):
            return None
        if opt.int_range is not None:
            if not attached.isdigit() or not opt.int_range[0] <= int(attached) <= opt.int_range[1]:
                return None  # click's message for it
            attached = int(attached)
        if opt.multiple:
            values[opt.dest].append(attached)
        else:
            values[opt.dest] = attached
    for o in options:
        if o.multiple:
            values[o.dest] = tuple(values[o.dest])
    values["args"] = tuple(positionals)
    return values


def _err(msg: str) -> None:
    sys.stderr.write(f"imagelint: {msg}\n")
    sys.stderr.flush()


def _split_keys(values) -> list:
    out = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def load_linter(config_path, rules_dirs, select, ignore, scope: str = "dockerfile") -> tuple:
    """(config, rules, Linter), or exit 2 with one line."""
    from .config import ConfigError, load_config
    from .engine import Linter
    from .rules import RuleError, load_rule_dirs

    try:
        config = load_config(config_path)
        rules = load_rule_dirs(list(config.rules_dirs) + list(rules_dirs))
        linter = Linter(rules, config, select=_split_keys(select), ignore=_split_keys(ignore), scope=scope)
    except (ConfigError, RuleError) as e:
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    return config, rules, linter


def run_lint(paths: tuple, fmt, fail_on, select, ignore, config_path, rules_dirs, no_color: bool,
             stdin_filename: str) -> None:
    """The body of ``imagelint lint``; always ends with sys.exit(exit code)."""
    from .engine import InputError, decode_dockerfile, fails, find_dockerfiles, read_dockerfile
    from .report import render, use_color
    from .rules import RuleError

    config, rules, linter = load_linter(config_path, rules_dirs, select, ignore)
    fmt = fmt or config.format
    fail_on = fail_on or config.fail_on
    if not paths:
        paths = ("Dockerfile",) if os.path.exists("Dockerfile") else ()
        if not paths:
            _err("no Dockerfile here; pass a path, a directory, or - for stdin")
            sys.exit(EXIT_BAD_INPUT)

    findings, errors = [], []
    targets = []  # (display path, context dir or None, text or None)
    for p in paths:
        if p == "-":
            try:
                data = sys.stdin.buffer.read()
                targets.append((stdin_filename, None, decode_dockerfile(data, stdin_filename)))
            except InputError as e:
                errors.append((stdin_filename, str(e)))
            continue
        if os.path.isdir(p):
            found = find_dockerfiles(p)
            if not found:
                errors.append((p, f"{p}: no Dockerfile, Dockerfile.*, *.Dockerfile or Containerfile in this "
                                  "directory"))
            targets.extend((f, os.path.dirname(f) or ".", None) for f in found)
        else:
            targets.append((p, os.path.dirname(p) or ".", None))

    for path, context_dir, text in targets:
        try:
            if text is None:
                text = read_dockerfile(path)
            findings.extend(linter.lint_text(text, path, context_dir))
        except InputError as e:
            errors.append((path, str(e)))
        except RuleError as e:
            errors.append((path, str(e)))
    for _, msg in errors:
        _err(msg)
    out = render(fmt, findings, linter.active, errors, color=use_color(no_color or config.no_color))
    if out:
        sys.stdout.write(out)
    if errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_FINDINGS if fails(findings, fail_on) else EXIT_CLEAN)
