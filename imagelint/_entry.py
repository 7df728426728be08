"""Console-script entry point: ``imagelint lint ...`` and ``imagelint inspect ...`` without click.

A plain ``lint`` or ``inspect`` call is parsed from the same option table as its click
command (:data:`imagelint.lintcmd.LINT_OPTIONS`, :data:`imagelint.inspectcmd.INSPECT_OPTIONS`)
and run directly: ``lint`` runs in pre-commit on every commit (click costs ~20 ms to
import), and ``inspect``'s peak memory is compared with dive's (click is ~3.5 MB of it).
Every other invocation — other commands, help, version, usage errors, shell
completion — goes to the click app, which stays the one judge of usage.
"""
import os
import sys


def _fast_call(command: str, args: list):
    """(runner, kwargs) when the click-free path can take this call, else None."""
    if command == "lint":
        from .lintcmd import parse_lint_args, run_lint

        kwargs = parse_lint_args(args)
        return None if kwargs is None else (run_lint, kwargs)
    if command == "inspect":
        from .inspectcmd import INSPECT_OPTIONS, run_inspect
        from .lintcmd import parse_args

        kwargs = parse_args(args, INSPECT_OPTIONS)
        if kwargs is None or not kwargs["args"]:
            return None  # click says IMAGE is missing
        images = kwargs.pop("args")
        return run_inspect, dict(kwargs, images=images)
    return None


def main() -> None:
    args = sys.argv[1:]
    call = None
    if args[:1] in (["lint"], ["inspect"]) and os.name != "nt" and not os.environ.get("_IMAGELINT_COMPLETE"):
        call = _fast_call(args[0], args[1:])
    if call is not None:
        from .lintcmd import _err

        runner, kwargs = call
        try:
            runner(**kwargs)  # exits itself
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(130)
        except BrokenPipeError:
            # like click: output cut short by `| head` is not an error worth a traceback
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except SystemExit:
            raise
        except Exception as e:  # a bug: one line, as the click app does (IMAGELINT_DEBUG=1: traceback)
            if os.environ.get("IMAGELINT_DEBUG"):
                raise
            _err(f"internal error: {type(e).__name__}: {e} (set IMAGELINT_DEBUG=1 for the traceback; "
                 "please report it)")
            sys.exit(2)
        return
    from .cli import main as click_main

    click_main()
