"""Path and argument helpers behind IL2001-IL2009 (imagelint/checks/langpkg.py)."""
import pytest

from imagelint.checks import langpkg
from imagelint.dockerfile import parse
from imagelint.shell import split_commands

DF = parse("FROM scratch\n")


@pytest.mark.parametrize("word,env,expected", [
    ("~/.cache/pip", {}, "*/.cache/pip"),
    ("$HOME/.npm/", {}, "*/.npm"),
    ("${HOME}/.npm/*", {"HOME": "/home/app"}, "/home/app/.npm"),
    ("/root/.cache//pip/.", {}, "/root/.cache/pip"),
    ("$CARGO_HOME/registry", {}, "/usr/local/cargo/registry"),  # rust image default
    ("$CARGO_HOME/registry", {"CARGO_HOME": "/opt/cargo"}, "/opt/cargo/registry"),
    ("$UNKNOWN/cache", {}, None),
    ("relative/dir", {}, None),
    ("", {}, None),
])
def test_norm_path(word, env, expected):
    assert langpkg._norm_path(DF, word, env) == expected


@pytest.mark.parametrize("loc,caches,expected", [
    ("/root/.cache/pip", ["*/.cache/pip"], True),
    ("/root/.cache", ["*/.cache/pip"], True),
    ("*/.cache", ["*/.cache/pip"], True),           # rm -rf ~/.cache
    ("/home/app", ["*/.cache/pip"], True),          # the whole home directory
    ("/tmp", ["*/.cache/pip"], False),
    ("/root/.cache/pip/http", ["*/.cache/pip"], False),  # only part of the cache
    ("*/.cache/yarn", ["/usr/local/share/.cache/yarn/v6"], False),  # root's yarn cache is elsewhere
    ("/go", ["/go/pkg/mod"], True),
    ("/", ["/go/pkg/mod"], False),
])
def test_covers(loc, caches, expected):
    assert langpkg._covers(loc, caches) is expected


def test_positionals_skip_option_values():
    [cmd] = split_commands("npm --prefix /app install --omit dev")
    assert langpkg._positionals(cmd, langpkg._NPM_VALUE_FLAGS) == ["install"]
    [cmd] = split_commands("cargo +nightly -Z sparse-registry build --release")
    assert langpkg._positionals(cmd, langpkg._CARGO_VALUE_FLAGS) == ["build"]


def test_flag_set_reads_boolean_forms():
    [cmd] = split_commands("yarn install --production=false")
    assert langpkg._flag_set(cmd, "--production") is False
    [cmd] = split_commands("npm ci --no-production")
    assert langpkg._flag_set(cmd, "--production") is False
    [cmd] = split_commands("npm ci")
    assert langpkg._flag_set(cmd, "--production") is None


def test_js_tool_sees_through_corepack():
    [cmd] = split_commands("corepack pnpm@9.12.0 install --prod")
    tool, pos, _ = langpkg._js_tool(cmd)
    assert (tool, pos) == ("pnpm", ["install"])
