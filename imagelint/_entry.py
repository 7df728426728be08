"""Console-script entry point: ``imagelint lint ...`` without importing click.

A plain ``lint`` call (the pre-commit path) is parsed from the same option table
as the click command (:data:`imagelint.lintcmd.LINT_OPTIONS`) and run directly,
which saves the ~20 ms click costs to import. Every other invocation — other
commands, help, version, usage errors, shell completion — goes to the click app.
"""
import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["lint"] and os.name != "nt" and not os.environ.get("_IMAGELINT_COMPLETE"):
        from .lintcmd import _err, parse_lint_args, run_lint

        kwargs = parse_lint_args(args[1:])
        if kwargs is not None:
            try:
                run_lint(**kwargs)
            except KeyboardInterrupt:
                _err("interrupted")
                sys.exit(130)
            except BrokenPipeError:
                # like click: output cut short by `| head` is not an error worth a traceback
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                sys.exit(1)
            return  # run_lint exits itself
    from .cli import main as click_main

    click_main()
