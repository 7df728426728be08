"""Parser tests (imagelint/dockerfile.py)."""
import textwrap

import pytest

from imagelint.dockerfile import parse


def df_of(text):
    return parse(textwrap.dedent(text).lstrip("\n"))


def kw_lines(df):
    return [(i.keyword, i.start_line, i.end_line) for i in df.instructions]


# -- continuations, comments, directives --------------------------------------------

def test_line_continuations_and_start_end_lines():
    df = df_of("""
        FROM debian:bookworm-slim
        RUN apt-get update \\
            && apt-get install -y curl \\
            && rm -rf /var/lib/apt/lists/*
        CMD ["curl", "--version"]
    """)
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 4), ("CMD", 5, 5)]
    run = df.instructions[1]
    assert [c.argv[:2] for c in run.commands] == [["apt-get", "update"], ["apt-get", "install"], ["rm", "-rf"]]
    assert run.raw.splitlines()[0] == "RUN apt-get update \\"
    assert not df.errors


def test_comment_inside_continued_line_is_dropped_and_recorded():
    df = df_of("""
        FROM a
        RUN apt-get update \\
          # install the tools
          && apt-get install -y x
        USER app
    """)
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 4), ("USER", 5, 5)]
    assert "install the tools" not in df.instructions[1].args
    assert [c.argv[1] for c in df.instructions[1].commands] == ["update", "install"]
    assert (3, "install the tools") in df.comments


def test_escape_backtick_directive():
    df = df_of("""
        # escape=`
        FROM mcr.microsoft.com/windows/servercore
        RUN echo a `
            b
        COPY C:\\src C:\\dst
    """)
    assert df.directives == {"escape": "`"}
    assert df.escape == "`"
    assert kw_lines(df) == [("FROM", 2, 2), ("RUN", 3, 4), ("COPY", 5, 5)]
    assert df.instructions[1].commands[0].argv == ["echo", "a", "b"]
    # with ` as escape a trailing backslash is a plain character, not a continuation
    assert df.instructions[2].args == "C:\\src C:\\dst"


def test_parser_directives_only_at_the_top():
    df = df_of("""
        # syntax=docker/dockerfile:1.7
        # check=skip=JSONArgsRecommended
        FROM a
        # escape=`
        RUN x
    """)
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=JSONArgsRecommended"}
    assert df.escape == "\\"


def test_directive_after_blank_line_is_a_comment():
    df = parse("\n# escape=`\nFROM a\n")
    assert df.directives == {}
    assert df.escape == "\\"


# -- forms and flags ------------------------------------------------------------

def test_exec_vs_shell_form():
    df = df_of("""
        FROM a
        RUN ["apt-get", "update"]
        RUN apt-get update
        CMD ["node", "server.js"]
        ENTRYPOINT exec node server.js
        CMD [not json]
    """)
    ins = df.instructions
    assert ins[1].exec_form == ["apt-get", "update"] and ins[1].script == ""
    assert [c.argv for c in ins[1].commands] == [["apt-get", "update"]]
    assert ins[2].exec_form is None and ins[2].script == "apt-get update"
    assert ins[3].exec_form == ["node", "server.js"]
    assert ins[4].exec_form is None
    assert ins[5].exec_form is None
    # invalid JSON in exec form is reported (Docker silently runs it through sh -c)
    assert [ln for ln, _ in df.errors] == [6]


def test_exec_form_shell_c_is_split():
    df = df_of("""
        FROM a
        RUN ["/bin/sh", "-c", "apt-get update && apt-get install -y x"]
    """)
    assert [c.argv[:2] for c in df.instructions[1].commands] == [["apt-get", "update"], ["apt-get", "install"]]


def test_run_mount_flags():
    df = df_of("""
        FROM a
        RUN --mount=type=cache,target=/root/.cache/pip \\
            --mount=type=secret,id=token,dst=/run/secrets/token \\
            --mount=type=bind,source=.,target=/src \\
            --mount=target=/x \\
            pip install -r /src/requirements.txt
    """)
    run = df.instructions[1]
    assert (run.start_line, run.end_line) == (2, 6)
    assert run.args == "pip install -r /src/requirements.txt"
    assert [m["type"] for m in run.mounts] == ["cache", "secret", "bind", "bind"]
    assert run.mounts[1]["target"] == "/run/secrets/token"  # dst is an alias
    assert run.mounts[1]["id"] == "token"
    assert run.cache_mount_targets() == ["/root/.cache/pip"]
    assert run.commands[0].argv[:2] == ["pip", "install"]
    assert len(run.flag_values("mount")) == 4


def test_tmpfs_mount_counts_as_cache_target():
    df = df_of("""
        FROM a
        RUN --mount=type=tmpfs,target=/tmp make
    """)
    assert df.instructions[1].cache_mount_targets() == ["/tmp"]


def test_copy_flags():
    df = df_of("""
        FROM a
        COPY --chown=app:app --chmod=755 --link src/ /app/
        COPY --from=builder /out /app
        ADD --checksum=sha256:abc "https://x/y.tgz" /tmp/
    """)
    c = df.instructions[1]
    assert c.flags == [("chown", "app:app"), ("chmod", "755"), ("link", None)]
    assert c.flag("chown") == "app:app" and c.flag("link") is True and c.flag("from") is None
    assert c.args == "src/ /app/"
    assert df.instructions[2].flag("from") == "builder"
    assert df.instructions[3].flag("checksum") == "sha256:abc"


def test_quoted_flag_value():
    df = parse('FROM a\nRUN --mount="type=cache,target=/var/cache/apt" apt-get update\n')
    assert df.instructions[1].mounts[0]["target"] == "/var/cache/apt"


# -- stages -------------------------------------------------------------------------

MULTI = """
    ARG BASE=python:3.12-slim
    ARG VERSION
    FROM ${BASE} AS deps
    RUN pip install -r requirements.txt
    FROM golang:1.22 AS builder
    RUN go build -o /out/app
    FROM deps AS runtime
    COPY --from=builder /out/app /usr/local/bin/app
    FROM runtime
    CMD ["app"]
"""


def test_stages_names_bases_and_arg_substitution():
    df = df_of(MULTI)
    assert [(s.index, s.name, s.base, s.image) for s in df.stages] == [
        (0, "deps", "${BASE}", "python:3.12-slim"),
        (1, "builder", "golang:1.22", "golang:1.22"),
        (2, "runtime", "deps", "deps"),
        (3, None, "runtime", "runtime"),
    ]
    assert df.global_args == {"BASE": "python:3.12-slim", "VERSION": None}
    assert df.final_stage is df.stages[3] and df.final_stage.is_final
    assert not df.errors


def test_which_stages_ship():
    df = df_of(MULTI)
    # final stage and its FROM ancestors ship; a builder that is only copied from does not
    assert [s.ships for s in df.stages] == [True, False, True, True]
    assert df.stages[3].parent is df.stages[2] and df.stages[2].parent is df.stages[0]
    assert df.stages[1].parent is None
    shipped = [i.start_line for i in df.walk("RUN", shipped_only=True)]
    assert shipped == [4]
    assert [i.start_line for i in df.walk("RUN")] == [4, 6]


def test_stage_named_and_instruction_stage():
    df = df_of(MULTI)
    assert df.stage_named("BUILDER") is df.stages[1]
    assert df.stage_named("1") is df.stages[1]
    assert df.stage_named("nope") is None and df.stage_named(None) is None
    copy = next(df.walk("COPY"))
    assert copy.stage is df.stages[2]
    assert df.stage_named(copy.flag("from")) is df.stages[1]
    # ARGs before the first FROM belong to no stage
    assert df.instructions[0].stage is None


def test_single_stage_ships_and_unnamed_from_numeric_reference():
    df = df_of("""
        FROM alpine:3.20
        RUN echo a
        FROM scratch
        COPY --from=0 /bin/busybox /busybox
    """)
    assert [s.ships for s in df.stages] == [False, True]
    assert df.stage_named(df.instructions[3].flag("from")) is df.stages[0]


def test_env_at_sees_env_and_arg_of_the_stage_and_its_parents():
    df = df_of("""
        ARG PY=3.12
        FROM python:${PY} AS base
        ENV PIP_NO_CACHE_DIR=1 APP_HOME="/srv/app"
        ARG PY
        FROM base
        ENV LEGACY some value
        RUN pip install x
        ENV LATER=1
    """)
    run = next(df.walk("RUN"))
    env = df.env_at(run)
    assert env["PIP_NO_CACHE_DIR"] == "1"
    assert env["APP_HOME"] == "/srv/app"
    assert env["PY"] == "3.12"  # ARG without a default takes the global default
    assert env["LEGACY"] == "some value"
    assert "LATER" not in env
    assert df.stages[0].image == "python:3.12"
    assert df.substitute("${PY}-${MISSING:-slim}-${PY:+x}", env) == "3.12-slim-x"
    assert df.substitute("$UNKNOWN", env) == "$UNKNOWN"


def test_onbuild_triggers():
    df = df_of("""
        FROM a
        ONBUILD RUN pip install -r requirements.txt
        ONBUILD COPY . /app
        ONBUILD FROM b
    """)
    onb = df.instructions[1]
    assert onb.keyword == "ONBUILD"
    trig = onb.trigger
    assert trig.keyword == "RUN" and trig.onbuild and trig.start_line == 2
    assert trig.commands[0].argv[:2] == ["pip", "install"]
    assert [i.keyword for i in df.walk("RUN", "COPY")] == ["RUN", "COPY"]
    assert list(df.walk("RUN", onbuild=False)) == []
    assert any("ONBUILD may not trigger FROM" in m for _, m in df.errors)


def test_shell_powershell_is_not_analysed():
    df = df_of("""
        FROM mcr.microsoft.com/windows/servercore
        SHELL ["powershell", "-Command"]
        RUN Invoke-WebRequest https://x -OutFile x.zip; apt-get update
        FROM debian AS other
        RUN apt-get update
    """)
    runs = list(df.walk("RUN"))
    assert runs[0].shell == ["powershell", "-Command"]
    assert runs[0].commands == []
    assert runs[1].shell is None
    assert runs[1].commands[0].argv == ["apt-get", "update"]


def test_shell_bash_is_analysed_and_inherited_by_child_stage():
    df = df_of("""
        FROM debian AS base
        SHELL ["/bin/bash", "-o", "pipefail", "-c"]
        FROM base
        RUN curl x | sh
    """)
    run = next(df.walk("RUN"))
    assert run.shell == ["/bin/bash", "-o", "pipefail", "-c"]
    assert [c.argv for c in run.commands] == [["curl", "x"], ["sh"]]


def test_healthcheck():
    df = df_of("""
        FROM a
        HEALTHCHECK --interval=30s --timeout=3s CMD ["curl", "-f", "http://localhost/"]
        HEALTHCHECK CMD curl -f http://localhost/ || exit 1
        HEALTHCHECK NONE
    """)
    h1, h2, h3 = df.instructions[1:]
    assert h1.flag("interval") == "30s" and h1.flag("timeout") == "3s"
    assert h1.exec_form == ["curl", "-f", "http://localhost/"]
    assert h2.exec_form is None and h2.args.startswith("CMD curl")
    assert h3.args == "NONE"


# -- heredocs ---------------------------------------------------------------------

def test_run_heredoc():
    df = df_of("""
        FROM a
        RUN <<EOF
        apt-get update
        apt-get install -y curl
        EOF
        CMD x
    """)
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 5), ("CMD", 6, 6)]
    h = df.instructions[1].heredocs[0]
    assert (h.name, h.start_line, h.end_line, h.terminated, h.strip_tabs, h.quoted) == ("EOF", 3, 5, True, False, False)
    assert h.body == "apt-get update\napt-get install -y curl"
    assert [c.argv[:2] for c in df.instructions[1].commands] == [["apt-get", "update"], ["apt-get", "install"]]


def test_run_heredoc_dash_strips_tabs():
    df = parse("FROM a\nRUN <<-EOT\n\tpip install y\n\t\tpip install z\n\tEOT\nUSER app\n")
    h = df.instructions[1].heredocs[0]
    assert h.strip_tabs and h.terminated
    assert h.body == "pip install y\npip install z"
    assert kw_lines(df)[1:] == [("RUN", 2, 5), ("USER", 6, 6)]


def test_copy_heredoc_is_a_file_not_instructions():
    df = df_of("""
        FROM a
        COPY <<EOF /etc/app.conf
        FROM evil
        RUN rm -rf /
        EOF
        USER app
    """)
    assert kw_lines(df) == [("FROM", 1, 1), ("COPY", 2, 5), ("USER", 6, 6)]
    copy = df.instructions[1]
    assert copy.heredocs[0].body == "FROM evil\nRUN rm -rf /"
    assert copy.commands == [] and copy.script == ""
    assert len(df.stages) == 1


def test_two_heredocs_on_one_line():
    df = df_of("""
        FROM a
        RUN <<A cat /dev/stdin && sh <<B
        body-a
        A
        echo b
        B
        CMD x
    """)
    run = df.instructions[1]
    assert [(h.name, h.body, h.start_line, h.end_line) for h in run.heredocs] == [
        ("A", "body-a", 3, 4), ("B", "echo b", 5, 6)]
    assert (run.start_line, run.end_line) == (2, 6)
    assert kw_lines(df)[-1] == ("CMD", 7, 7)


def test_heredoc_fed_to_python_is_data():
    df = df_of("""
        FROM a
        RUN python3 <<EOF
        import subprocess
        subprocess.run(["apt-get", "update"])
        EOF
    """)
    run = df.instructions[1]
    assert run.script == "python3"
    assert [c.argv for c in run.commands] == [["python3"]]


def test_heredoc_fed_to_a_shell_is_script():
    df = df_of("""
        FROM a
        RUN bash <<EOF
        set -e
        apt-get update
        EOF
    """)
    assert [c.argv for c in df.instructions[1].commands] == [["set", "-e"], ["apt-get", "update"]]


def test_quoted_heredoc_name():
    df = df_of("""
        FROM a
        RUN <<"EOF"
        echo $HOME
        EOF
        RUN <<'X'
        ls
        X
    """)
    h1, h2 = df.instructions[1].heredocs[0], df.instructions[2].heredocs[0]
    assert (h1.name, h1.quoted, h1.terminated) == ("EOF", True, True)
    assert (h2.name, h2.quoted, h2.body) == ("X", True, "ls")


def test_heredoc_body_with_trailing_backslash():
    df = parse("FROM a\nRUN <<EOF\nmake \\\nEOF\nCMD x \\\n  y\nUSER app\n")
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 4), ("CMD", 5, 6), ("USER", 7, 7)]


def test_quoted_heredoc_marker_is_plain_text():
    # regression: `echo "<<EOF"` used to swallow the rest of the file as a heredoc body
    df = parse("FROM a\nRUN echo '<<EOF' \"<<EOT\"\nCMD x\n")
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 2), ("CMD", 3, 3)]
    assert df.instructions[1].heredocs == []
    assert not df.errors
    df = parse('FROM a\nRUN echo "<<EOF" && cat <<EOT\nhi\nEOT\nCMD x\n')
    assert [h.name for h in df.instructions[1].heredocs] == ["EOT"]
    assert [c.argv for c in df.instructions[1].commands] == [["echo", "<<EOF"], ["cat"]]


def test_here_string_is_not_a_heredoc():
    df = parse("FROM a\nRUN cat <<<hello\nCMD x\n")
    assert df.instructions[1].heredocs == []
    assert kw_lines(df)[-1] == ("CMD", 3, 3)
    assert not df.errors


def test_unterminated_heredoc_is_an_error():
    df = parse("FROM a\nRUN <<EOF\nmake\n")
    assert not df.instructions[1].heredocs[0].terminated
    assert df.errors == [(2, "heredoc <<EOF is never terminated (no line 'EOF')")]


# -- line endings and edges --------------------------------------------------------

def test_crlf_line_endings():
    df = parse("FROM a\r\nRUN apt-get update \\\r\n  && apt-get install -y x\r\nCMD c\r\n")
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 3), ("CMD", 4, 4)]
    assert [c.argv for c in df.instructions[1].commands] == [["apt-get", "update"], ["apt-get", "install", "-y", "x"]]
    assert df.instructions[2].args == "c"


def test_continuation_on_the_last_line_keeps_the_instruction():
    df = parse("FROM a\nRUN apt-get update \\")
    assert kw_lines(df) == [("FROM", 1, 1), ("RUN", 2, 2)]
    assert df.instructions[1].commands[0].argv == ["apt-get", "update"]


def test_no_trailing_newline():
    df = parse("FROM a\nUSER app")
    assert kw_lines(df) == [("FROM", 1, 1), ("USER", 2, 2)]


def test_lowercase_keywords():
    df = parse("from a as build\nrun make\n")
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN"]
    assert df.stages[0].name == "build"


@pytest.mark.parametrize("text,msg", [
    ("", "empty Dockerfile"),
    ("# just a comment\n", "empty Dockerfile"),
    ("FROM a\nRUNN x\n", "unknown instruction"),
    ("RUN x\nFROM a\n", "before the first FROM"),
    ("FROM a b c d\n", "FROM expects"),
    ("USER app\n", "no FROM"),
])
def test_errors(text, msg):
    df = parse(text)
    assert any(msg in m for _, m in df.errors), df.errors


def test_every_instruction_has_increasing_lines():
    df = df_of("""
        # syntax=docker/dockerfile:1
        ARG X=1
        FROM a AS one
        LABEL a=b \\
              c=d
        ENV A=1
        EXPOSE 80
        VOLUME ["/data"]
        WORKDIR /app
        USER app
        STOPSIGNAL SIGTERM
        FROM one
        MAINTAINER me
        ENTRYPOINT ["x"]
    """)
    lines = [(i.start_line, i.end_line) for i in df.instructions]
    assert lines == [(2, 2), (3, 3), (4, 5), (6, 6), (7, 7), (8, 8), (9, 9), (10, 10), (11, 11),
                     (12, 12), (13, 13), (14, 14)]
    assert [i.index for i in df.instructions] == list(range(12))
    assert df.instructions[5].exec_form == ["/data"]
