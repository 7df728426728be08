"""Unit tests of the shell splitter (imagelint/shell.py)."""
import pytest

from imagelint.shell import Command, ShellSyntaxError, name_matches, split_commands


def argvs(script):
    return [c.argv for c in split_commands(script)]


def one(script):
    cmds = split_commands(script)
    assert len(cmds) == 1, cmds
    return cmds[0]


# -- operators and lines --------------------------------------------------------

def test_operators_split_commands_and_record_the_operator_before_each():
    cmds = split_commands("a && b || c ; d | e & f")
    assert [c.argv for c in cmds] == [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]]
    assert [c.op for c in cmds] == ["", "&&", "||", ";", "|", "&"]


def test_pipe_stderr_operator():
    assert [c.op for c in split_commands("a |& b")] == ["", "|&"]


def test_newlines_separate_commands_and_count_lines():
    cmds = split_commands("a\nb\n\nc")
    assert [c.argv for c in cmds] == [["a"], ["b"], ["c"]]
    assert [c.line for c in cmds] == [0, 1, 3]
    assert cmds[1].op == "\n"


def test_operator_at_end_of_line_continues_on_next_line():
    cmds = split_commands("a &&\n  b")
    assert [c.argv for c in cmds] == [["a"], ["b"]]
    assert cmds[1].line == 1


def test_backslash_newline_joins_lines():
    assert argvs("apt-get install \\\n  curl \\\n  git") == [["apt-get", "install", "curl", "git"]]
    # inside a word too, as the shell does
    assert argvs("a\\\nb c") == [["ab", "c"]]


def test_subshell_and_group_parentheses_and_braces():
    assert argvs("(cd x && make)") == [["cd", "x"], ["make"]]
    assert argvs("cd /x && { a; b; }") == [["cd", "/x"], ["a"], ["b"]]


# -- quotes and escapes ---------------------------------------------------------

def test_quotes_keep_operators_inside_one_word():
    assert argvs("echo \"a && b\" 'c;d' e\\ f") == [["echo", "a && b", "c;d", "e f"]]


def test_double_quote_escapes():
    assert argvs('a "b\\"c" "x\\$y" "p\\q"') == [["a", 'b"c', "x$y", "p\\q"]]


def test_single_quotes_are_literal():
    assert argvs("echo '$(not run)' 'a\\b'") == [["echo", "$(not run)", "a\\b"]]


def test_hash_inside_a_word_is_not_a_comment():
    assert argvs("echo a#b") == [["echo", "a#b"]]


def test_parameter_expansions_stay_in_the_word():
    assert argvs("echo ${X:-1} ${Y} $((1+2))") == [["echo", "${X:-1}", "${Y}", "$((1+2))"]]


@pytest.mark.parametrize("script", [
    'echo "unterminated',
    "echo 'unterminated",
    "echo `unterminated",
    "echo $(unterminated",
    "echo ${X",
    'echo "$(a"',
])
def test_unterminated_quotes_and_substitutions_raise(script):
    with pytest.raises(ShellSyntaxError):
        split_commands(script)


def test_shell_syntax_error_is_a_value_error_with_a_message():
    with pytest.raises(ValueError, match="unterminated single quote"):
        split_commands("echo 'x")


# -- substitutions ----------------------------------------------------------------

def test_command_substitution_bodies_are_also_returned():
    cmds = split_commands("echo $(curl -fsSL x | sh) && `which y`")
    got = [(c.argv, c.wrappers) for c in cmds]
    assert (["curl", "-fsSL", "x"], ["$()"]) in got
    assert (["sh"], ["$()"]) in got
    assert (["which", "y"], ["$()"]) in got
    assert cmds[0].argv == ["echo", "$(curl -fsSL x | sh)"]


def test_substitution_inside_double_quotes_is_returned():
    assert ["curl", "x"] in argvs('echo "$(curl x)"')


def test_arithmetic_is_not_a_command():
    assert argvs("echo $((2 * 3))") == [["echo", "$((2 * 3))"]]


# -- assignments ----------------------------------------------------------------

def test_env_prefix_assignments():
    c = one("DEBIAN_FRONTEND=noninteractive LANG=C apt-get install -y x")
    assert c.argv == ["apt-get", "install", "-y", "x"]
    assert c.env == {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C"}


def test_assignment_with_quoted_value_is_still_an_assignment():
    # regression: the quoted value used to make the whole word the command name
    c = one('PIP_NO_CACHE_DIR="1" A=\'x y\' pip install x')
    assert c.argv == ["pip", "install", "x"]
    assert c.env == {"PIP_NO_CACHE_DIR": "1", "A": "x y"}
    cmds = split_commands('X="$(cat f)" cmd')
    assert (cmds[0].argv, cmds[0].env) == (["cmd"], {"X": "$(cat f)"})
    assert cmds[1].argv == ["cat", "f"]


def test_quoted_or_escaped_name_is_not_an_assignment():
    assert argvs('"A=1" cmd') == [["A=1", "cmd"]]
    assert argvs("A\\=1 cmd") == [["A=1", "cmd"]]


def test_bare_assignments_give_a_command_without_argv():
    c = one("X=1 Y=2")
    assert c.argv == [] and c.env == {"X": "1", "Y": "2"} and c.name == ""


def test_assignment_after_the_command_name_is_an_argument():
    assert argvs("make CC=gcc") == [["make", "CC=gcc"]]


# -- wrappers ---------------------------------------------------------------------

@pytest.mark.parametrize("script,argv,wrappers,env", [
    ("sudo apt-get update", ["apt-get", "update"], ["sudo"], {}),
    ("sudo -u root -E apt-get update", ["apt-get", "update"], ["sudo"], {}),
    ("sudo A=1 cmd x", ["cmd", "x"], ["sudo"], {"A": "1"}),
    ("env -i A=1 B=2 pip install x", ["pip", "install", "x"], ["env"], {"A": "1", "B": "2"}),
    ("env pip install x", ["pip", "install", "x"], ["env"], {}),
    ("nice -n 10 make -j4", ["make", "-j4"], ["nice"], {}),
    ("timeout 30 curl x", ["curl", "x"], ["timeout"], {}),
    ("timeout -s KILL 30 curl x", ["curl", "x"], ["timeout"], {}),
    ("xargs -n 1 rm -f", ["rm", "-f"], ["xargs"], {}),
    ("exec gosu app:app node server.js", ["node", "server.js"], ["exec", "gosu"], {}),
    ("nohup x", ["x"], ["nohup"], {}),
    ("command curl x", ["curl", "x"], ["command"], {}),
])
def test_wrappers_are_stripped(script, argv, wrappers, env):
    c = one(script)
    assert (c.argv, c.wrappers, c.env) == (argv, wrappers, env)


def test_command_v_is_a_lookup_not_a_call():
    # regression: `command -v curl` used to be reported as running curl
    c = one("command -v curl")
    assert c.argv == ["command", "-v", "curl"] and c.name == "command"


def test_xargs_after_pipe_keeps_the_pipe_operator():
    cmds = split_commands("find . -name '*.pyc' | xargs rm -f")
    assert [c.argv for c in cmds] == [["find", ".", "-name", "*.pyc"], ["rm", "-f"]]
    assert cmds[1].op == "|" and cmds[1].wrappers == ["xargs"]


def test_sh_c_script_is_split():
    cmds = split_commands('sh -c "apt-get update && apt-get install -y x"')
    assert [c.argv for c in cmds] == [["apt-get", "update"], ["apt-get", "install", "-y", "x"]]
    assert all(c.wrappers == ["sh -c"] for c in cmds)
    assert [c.op for c in cmds] == ["", "&&"]


@pytest.mark.parametrize("script", [
    "bash -euo pipefail -c 'a && b'",
    "bash -o pipefail -c 'a && b'",
    "sh -ec 'a && b'",
    "bash -lc 'a && b'",
    "/bin/bash -c 'a && b'",
])
def test_shell_option_forms(script):
    assert argvs(script) == [["a"], ["b"]]


def test_nested_wrappers_and_shell():
    c = one('sudo sh -c "apt-get update"')
    assert c.argv == ["apt-get", "update"] and c.wrappers == ["sudo", "sh -c"]
    c = one("timeout 10 bash -c 'curl x'")
    assert c.argv == ["curl", "x"] and c.wrappers == ["timeout", "bash -c"]


def test_prefix_env_is_inherited_by_sh_c_commands():
    cmds = split_commands("A=1 sh -c 'b; c'")
    assert [c.env for c in cmds] == [{"A": "1"}, {"A": "1"}]


def test_running_a_script_file_is_not_unwrapped():
    assert argvs("bash script.sh") == [["bash", "script.sh"]]


def test_eval_is_split():
    c = one('eval "apt-get update"')
    assert c.argv == ["apt-get", "update"] and c.wrappers == ["eval"]


# -- shell constructs -------------------------------------------------------------

def test_set_e_is_a_command():
    assert argvs("set -eux; a") == [["set", "-eux"], ["a"]]


def test_if_then_fi():
    assert argvs("if [ -f x ]; then rm x; else touch x; fi") == [["[", "-f", "x", "]"], ["rm", "x"], ["touch", "x"]]


def test_for_loop_body_commands_only():
    assert argvs("for f in a b c; do rm $f; done") == [["rm", "$f"]]
    # the list of a for loop may hold substitutions, which run
    assert ["ls", "/x"] in argvs("for f in $(ls /x); do echo $f; done")


def test_while_loop_and_case():
    assert argvs("while true; do x; done") == [["true"], ["x"]]
    assert argvs("case $x in a) foo;; esac") == [["foo"]]


def test_comments_are_dropped():
    cmds = split_commands("# setup\na # trailing && rm x\n  # indented comment\nb")
    assert [c.argv for c in cmds] == [["a"], ["b"]]
    assert [c.line for c in cmds] == [1, 3]


# -- redirections -----------------------------------------------------------------

def test_redirections_are_not_arguments():
    c = one("a x 2>/dev/null > file >>log")
    assert c.argv == ["a", "x"]
    assert c.redirects == [(">", "/dev/null"), (">", "file"), (">>", "log")]


def test_fd_duplication_and_ampersand_redirect():
    c = one("a 2>&1")
    assert c.argv == ["a"] and c.redirects == [(">&", "1")]
    c = one("a &>/dev/null")
    assert c.argv == ["a"] and c.redirects == [("&>", "/dev/null")]


def test_digits_not_followed_by_redirect_stay_words():
    assert argvs("sleep 2 > /dev/null") == [["sleep", "2"]]


# -- normalisation and helpers ---------------------------------------------------

@pytest.mark.parametrize("script", [
    "python3 -m pip install -U pip",
    "python -m pip install -U pip",
    "/usr/bin/python3.11 -m pip install -U pip",
    "python3 -u -m pip install -U pip",
])
def test_python_m_pip_is_normalised(script):
    c = one(script)
    assert c.argv == ["pip", "install", "-U", "pip"] and c.name == "pip"


def test_python_without_m_is_kept():
    assert argvs("python3 setup.py install") == [["python3", "setup.py", "install"]]


def test_command_helpers():
    c = one("/usr/bin/apt-get -qy --no-install-recommends install curl --opt=v -o x")
    assert c.name == "apt-get"
    assert c.subcommand == "install"
    assert c.has_flag("-y") and c.has_flag("-q") and c.has_flag("--no-install-recommends")
    assert c.has_flag("--opt") and not c.has_flag("--other") and not c.has_flag("-f")
    assert c.flag_value("--opt") == "v" and c.flag_value("-o") == "x"
    assert c.positionals() == ["install", "curl", "x"]


def test_has_flag_stops_at_double_dash():
    assert not one("rm -- -y").has_flag("-y")


def test_name_matches_patterns():
    assert name_matches("pip3", ["pip", "pip[0-9]*"])
    assert name_matches("pip", ["pip"])
    assert not name_matches("pipx", ["pip", "pip[0-9]*"])


def test_empty_and_blank_scripts():
    assert split_commands("") == []
    assert split_commands("  \n\t\n# only a comment\n") == []


def test_command_repr_is_readable():
    assert "apt-get" in repr(Command(["apt-get"], {}, [], "", [], 0))
