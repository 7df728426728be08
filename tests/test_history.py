"""imagelint.history: reading image history ``created_by`` and mapping steps to Dockerfile lines.

The classic-builder strings are copied from a real `docker build` (legacy builder, engine 20.10)
on this machine; the BuildKit ones follow BuildKit's dockerfile2llb (``commitToHistory``,
``runCommandString``): RUN/COPY/ADD get ``# buildkit``, build args become ``|N K=V``, COPY
flags are dropped, WORKDIR is recorded resolved, ENV as ``K=V``, EXPOSE as a Go map.
"""
import pytest

from imagelint.dockerfile import parse
from imagelint.history import map_history, parse_created_by, shipped_instructions


# --- parse_created_by -----------------------------------------------------------------------------

@pytest.mark.parametrize("created_by, expected", [
    # classic builder (legacy `docker build`)
    ("/bin/sh -c #(nop)  ENV A=1", ("ENV", "A=1")),
    ("/bin/sh -c #(nop)  ENV B=1 C=x y", ("ENV", "B=1 C=x y")),
    ("/bin/sh -c #(nop) COPY file:3f41dc334973c55d8b9d in /app ", ("COPY", "file:3f41dc334973c55d8b9d in /app")),
    ("/bin/sh -c #(nop) ADD file:d5e01f9d in /tmp/ ", ("ADD", "file:d5e01f9d in /tmp/")),
    ("/bin/sh -c #(nop) COPY dir:0a1b2c in /srv ", ("COPY", "dir:0a1b2c in /srv")),
    ("/bin/sh -c #(nop) WORKDIR /app/sub", ("WORKDIR", "/app/sub")),
    ("/bin/sh -c #(nop)  ARG W", ("ARG", "W")),
    ("/bin/sh -c #(nop)  EXPOSE 443/udp 80", ("EXPOSE", "443/udp 80")),
    ('/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo hi"]', ("CMD", '["/bin/sh" "-c" "echo hi"]')),
    ("/bin/sh -c #(nop)  ONBUILD RUN echo onbuild", ("ONBUILD", "RUN echo onbuild")),
    ("/bin/sh -c apt-get update && apt-get install -y curl", ("RUN", "apt-get update && apt-get install -y curl")),
    ("|2 A=1 B=2 /bin/sh -c make", ("RUN", "make")),
    ("|2 V=1 W=zz /bin/sh -c echo $V $W > /v", ("RUN", "echo $V $W > /v")),
    ("|1 V= /bin/sh -c make", ("RUN", "make")),  # an ARG without a value
    ("/bin/busybox --install -s /bin", ("RUN", "/bin/busybox --install -s /bin")),  # exec-form RUN
    ("/bin/busybox sh -c mkdir -p /usr/bin", ("RUN", "/bin/busybox sh -c mkdir -p /usr/bin")),
    ("|1 V=2 /bin/busybox sh -c echo", ("RUN", "/bin/busybox sh -c echo")),
    # BuildKit
    ("RUN /bin/sh -c apt-get update && apt-get install -y curl # buildkit",
     ("RUN", "apt-get update && apt-get install -y curl")),
    ("RUN |1 V=2 /bin/sh -c echo $V # buildkit", ("RUN", "echo $V")),
    ("RUN |2 A=1 B=2 /bin/sh -c make # buildkit", ("RUN", "make")),
    ("RUN /bin/busybox sh -c x # buildkit", ("RUN", "/bin/busybox sh -c x")),
    ("COPY . . # buildkit", ("COPY", ". .")),
    ("COPY /out /app # buildkit", ("COPY", "/out /app")),
    ("ADD https://example.com/x.tgz /opt/ # buildkit", ("ADD", "https://example.com/x.tgz /opt/")),
    ("WORKDIR /app", ("WORKDIR", "/app")),
    ("ENV A=1", ("ENV", "A=1")),
    ("ARG V=1", ("ARG", "V=1")),
    ('CMD ["sh"]', ("CMD", '["sh"]')),
    ("EXPOSE map[80/tcp:{}]", ("EXPOSE", "map[80/tcp:{}]")),
    ("USER app", ("USER", "app")),
    # unreadable / empty
    ("", ("", "")),
    ("   ", ("", "")),
])
def test_parse_created_by(created_by, expected):
    assert parse_created_by(created_by) == expected


def test_parse_created_by_buildkit_heredoc_keeps_the_body():
    kw, text = parse_created_by("RUN /bin/sh -c cat <<EOF > /x\nhello\nEOF # buildkit")
    assert kw == "RUN" and text == "cat <<EOF > /x\nhello\nEOF"


def test_parse_created_by_none_is_empty():
    assert parse_created_by(None) == ("", "")


# --- map_history ----------------------------------------------------------------------------------

def classic(*steps):
    """History entries: ('E', text) = an empty-layer step, plain text = a step with a layer."""
    out = []
    for s in steps:
        if isinstance(s, tuple):
            out.append({"created_by": s[1], "empty_layer": True})
        else:
            out.append({"created_by": s})
    return out


def lines(sources):
    return [(s.keyword, s.line, s.certain, s.from_base) for s in sources]


BASE_HISTORY = classic("/bin/sh -c #(nop) ADD file:aaaa in / ", ("E", '/bin/sh -c #(nop)  CMD ["bash"]'))

MULTI_STAGE = """\
FROM debian:12 AS builder
RUN apt-get update && apt-get install -y gcc
COPY . /src
RUN make -C /src

FROM builder AS test
RUN make -C /src test

FROM builder
ARG V=1
ENV A=1
WORKDIR /app
COPY --from=test /src/out /app/
RUN echo $V > /app/v
CMD ["/app/run"]
"""


def test_multi_stage_final_stage_from_a_builder_stage():
    df = parse(MULTI_STAGE)
    history = BASE_HISTORY + classic(
        "/bin/sh -c apt-get update && apt-get install -y gcc",
        "/bin/sh -c #(nop) COPY dir:1234 in /src ",
        "/bin/sh -c make -C /src",
        ("E", "/bin/sh -c #(nop)  ARG V=1"),
        ("E", "/bin/sh -c #(nop)  ENV A=1"),
        "/bin/sh -c #(nop) WORKDIR /app",
        "/bin/sh -c #(nop) COPY dir:5678 in /app/ ",
        "|1 V=1 /bin/sh -c echo $V > /app/v",
        ("E", '/bin/sh -c #(nop)  CMD ["/app/run"]'),
    )
    got = lines(map_history(history, df))
    assert got == [
        ("ADD", None, False, True),  # the debian base image
        ("CMD", None, False, True),
        ("RUN", 2, True, False),  # builder stage: shipped, because the final stage is FROM builder
        ("COPY", 3, True, False),
        ("RUN", 4, True, False),
        ("ARG", 10, True, False),  # the `test` stage (line 7) is not in the chain
        ("ENV", 11, True, False),
        ("WORKDIR", 12, True, False),
        ("COPY", 13, True, False),
        ("RUN", 14, True, False),
        ("CMD", 15, True, False),
    ]
    assert [ins.start_line for ins in shipped_instructions(df)] == [2, 3, 4, 10, 11, 12, 13, 14, 15]


def test_multi_stage_buildkit_history():
    df = parse(MULTI_STAGE)
    history = BASE_HISTORY + classic(
        "RUN /bin/sh -c apt-get update && apt-get install -y gcc # buildkit",
        "COPY . /src # buildkit",
        "RUN /bin/sh -c make -C /src # buildkit",
        ("E", "ARG V=1"),
        ("E", "ENV A=1"),
        "WORKDIR /app",
        "COPY /src/out /app/ # buildkit",  # BuildKit drops --from
        "RUN |1 V=1 /bin/sh -c echo $V > /app/v # buildkit",
        ("E", 'CMD ["/app/run"]'),
    )
    got = lines(map_history(history, df))
    assert got[:2] == [("ADD", None, False, True), ("CMD", None, False, True)]
    assert got[2:] == [(kw, line, True, False) for kw, line in
                       [("RUN", 2), ("COPY", 3), ("RUN", 4), ("ARG", 10), ("ENV", 11), ("WORKDIR", 12),
                        ("COPY", 13), ("RUN", 14), ("CMD", 15)]]


def test_argument_substituted_text_is_mapped_but_uncertain():
    df = parse("FROM scratch\nARG DIR=/opt\nENV HOME_DIR=$DIR\nWORKDIR $DIR/app\nRUN mkdir -p $DIR/x\n")
    history = classic(("E", "/bin/sh -c #(nop)  ARG DIR=/opt"), ("E", "/bin/sh -c #(nop)  ENV HOME_DIR=/opt"),
                      "/bin/sh -c #(nop) WORKDIR /opt/app", "|1 DIR=/opt /bin/sh -c mkdir -p /opt/x")
    got = lines(map_history(history, df))
    assert got == [("ARG", 2, True, False), ("ENV", 3, False, False), ("WORKDIR", 4, False, False),
                   ("RUN", 5, False, False)]


def test_run_text_unexpanded_with_build_args_is_certain():
    # both builders record the RUN text as written; only the |N prefix carries the values
    df = parse("FROM scratch\nARG V=1\nRUN echo $V > /v\n")
    for run in ("|1 V=7 /bin/sh -c echo $V > /v", "RUN |1 V=7 /bin/sh -c echo $V > /v # buildkit"):
        got = lines(map_history(classic(("E", "ARG V=1"), run), df))
        assert got == [("ARG", 2, True, False), ("RUN", 3, True, False)]


def test_empty_layer_steps_are_mapped_and_layers_follow_non_empty_steps():
    from imagelint.image import Image, Layer
    df = parse("FROM scratch\nCOPY a /a\nENV X=1\nLABEL l=1\nRUN touch /b\nUSER 1000\n")
    image = Image("x", "test")
    image.config = {"history": classic("/bin/sh -c #(nop) COPY file:ab in /a ", ("E", "/bin/sh -c #(nop)  ENV X=1"),
                                       ("E", "/bin/sh -c #(nop)  LABEL l=1"), "/bin/sh -c touch /b",
                                       ("E", "/bin/sh -c #(nop)  USER 1000"))}
    image.layers = [Layer(0), Layer(1)]
    image.attach_history()
    from imagelint.imageview import ImageView
    view = ImageView(image, df)
    assert view.layer_line(0) == (2, 2, True)
    assert view.layer_line(1) == (5, 5, True)
    assert [s.line for s in view.sources] == [2, 3, 4, 5, 6]


def test_heredoc_run_maps_to_its_whole_range():
    df = parse("FROM scratch\nRUN <<EOF\necho hi\necho there\nEOF\nRUN cat <<EOF > /x\nhello\nEOF\nCOPY a /a\n")
    history = classic(
        "RUN /bin/sh -c echo hi\necho there\n # buildkit",  # a simple heredoc: its body run by the shell
        "RUN /bin/sh -c cat <<EOF > /x\nhello\nEOF # buildkit",  # a heredoc fed to a command, put back
        "COPY a /a # buildkit")
    sources = map_history(history, df)
    assert lines(sources) == [("RUN", 2, True, False), ("RUN", 6, True, False), ("COPY", 9, True, False)]
    assert (sources[0].instruction.end_line, sources[1].instruction.end_line) == (5, 8)
    assert sources[0].to_dict() == {"history_index": 0, "keyword": "RUN", "from_base": False, "line": 2,
                                    "certain": True, "end_line": 5}


def test_heredoc_with_shebang_runs_a_script_file():
    df = parse("FROM scratch\nRUN <<EOT\n#!/bin/sh\necho hi\nEOT\n")
    got = lines(map_history(classic("RUN /dev/pipes/EOT # buildkit"), df))
    assert got == [("RUN", 2, True, False)]


def test_dockerfile_edited_after_the_build_instruction_added():
    built = "FROM scratch\nCOPY bb /bin/bb\nRUN install\nRUN a\nRUN b\n"
    history = classic("/bin/sh -c #(nop) COPY file:aa in /bin/bb ", "/bin/sh -c install", "/bin/sh -c a",
                      "/bin/sh -c b")
    assert lines(map_history(history, parse(built))) == [
        ("COPY", 2, True, False), ("RUN", 3, True, False), ("RUN", 4, True, False), ("RUN", 5, True, False)]
    edited = built + "RUN c-added-later\n"
    assert lines(map_history(history, parse(edited))) == [
        ("COPY", 2, True, False), ("RUN", 3, True, False), ("RUN", 4, True, False), ("RUN", 5, True, False)]


def test_dockerfile_edited_after_the_build_instruction_removed():
    edited = "FROM scratch\nCOPY bb /bin/bb\nRUN install\nRUN a\nRUN c\n"
    history = classic("/bin/sh -c #(nop) COPY file:aa in /bin/bb ", "/bin/sh -c install", "/bin/sh -c a",
                      "/bin/sh -c b-removed-since", "/bin/sh -c c")
    got = lines(map_history(history, parse(edited)))
    assert got == [("COPY", 2, True, False), ("RUN", 3, True, False), ("RUN", 4, True, False),
                   ("RUN", None, False, False), ("RUN", 5, True, False)]


def test_dockerfile_edited_after_the_build_instruction_changed_is_uncertain():
    edited = "FROM scratch\nCOPY bb /bin/bb\nRUN install --now\nRUN a\n"
    history = classic("/bin/sh -c #(nop) COPY file:aa in /bin/bb ", "/bin/sh -c install", "/bin/sh -c a")
    assert lines(map_history(history, parse(edited))) == [
        ("COPY", 2, True, False), ("RUN", 3, False, False), ("RUN", 4, True, False)]


def test_removed_instruction_of_another_kind_stays_unmapped():
    edited = "FROM scratch\nCOPY a /a\nRUN install\nCOPY b /b\n"
    history = classic("/bin/sh -c #(nop) COPY file:aa in /a ", "/bin/sh -c install",
                      "/bin/sh -c #(nop)  ENV GONE=1", "/bin/sh -c #(nop) COPY file:bb in /b ")
    got = lines(map_history(history, parse(edited)))
    assert got == [("COPY", 2, True, False), ("RUN", 3, True, False), ("ENV", None, False, False),
                   ("COPY", 4, True, False)]


def test_a_different_dockerfile_maps_nothing_certain():
    df = parse("FROM scratch\nCOPY x /x\n")
    history = classic("/bin/sh -c apt-get update", "/bin/sh -c make", "/bin/sh -c #(nop)  ENV Z=1")
    got = map_history(history, df)
    assert not any(s.certain for s in got)


@pytest.mark.parametrize("instruction, created_by", [
    ("ENV A 1", "/bin/sh -c #(nop)  ENV A=1"),  # legacy ENV form
    ('ENV B=2 C="x y"', "/bin/sh -c #(nop)  ENV B=2 C=x y"),
    ("EXPOSE 80 443/udp", "/bin/sh -c #(nop)  EXPOSE 443/udp 80"),
    ("EXPOSE 80 443/udp", "EXPOSE map[443/udp:{} 80/tcp:{}]"),
    ("VOLUME /data", "/bin/sh -c #(nop)  VOLUME [/data]"),
    ('SHELL ["/bin/sh", "-c"]', "/bin/sh -c #(nop)  SHELL [/bin/sh -c]"),
    ("CMD echo hi", '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo hi"]'),
    ('ENTRYPOINT ["/bin/sh"]', '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh"]'),
    ('ENTRYPOINT ["/bin/sh"]', 'ENTRYPOINT ["/bin/sh"]'),
    ('HEALTHCHECK CMD ["true"]', '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD" "true"] "0s" "0s" "0s" \'\\x00\'}'),
    ("STOPSIGNAL SIGTERM", "/bin/sh -c #(nop)  STOPSIGNAL SIGTERM"),
    ("USER 0:0", "/bin/sh -c #(nop)  USER 0:0"),
    ("LABEL org.x=y", "/bin/sh -c #(nop)  LABEL org.x=y"),
    ("COPY hello.txt ./h.txt", "/bin/sh -c #(nop) COPY file:d5e01f in ./h.txt "),
    ("COPY --chown=1:1 --from=b /out /app/", "COPY /out /app/ # buildkit"),
    ('RUN ["/bin/busybox", "--install", "-s", "/bin"]', "/bin/busybox --install -s /bin"),
])
def test_instruction_text_agrees_with_what_the_builder_recorded(instruction, created_by):
    df = parse(f"FROM scratch\n{instruction}\n")
    (src,) = map_history(classic(created_by), df)
    assert (src.line, src.certain) == (2, True)


def test_workdir_relative_is_recorded_resolved():
    df = parse("FROM scratch\nWORKDIR app\nWORKDIR sub\n")
    got = lines(map_history(classic("/bin/sh -c #(nop) WORKDIR /app", "WORKDIR /app/sub"), df))
    assert got == [("WORKDIR", 2, True, False), ("WORKDIR", 3, True, False)]


def test_without_dockerfile_only_keywords():
    got = map_history(classic("/bin/sh -c make", ("E", "ENV A=1")), None)
    assert [(s.keyword, s.text, s.line, s.from_base) for s in got] == [("RUN", "make", None, False),
                                                                       ("ENV", "A=1", None, False)]


def test_dockerfile_longer_than_history():
    # an image built from an earlier, shorter Dockerfile whose only step still agrees
    df = parse("FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY c /c\n")
    got = lines(map_history(classic("/bin/sh -c #(nop) COPY file:aa in /a "), df))
    assert got == [("COPY", 2, True, False)]


def test_base_image_steps_are_from_base():
    df = parse("FROM debian:12\nRUN apt-get update\n")
    history = classic("/bin/sh -c #(nop) ADD file:aa in / ", ("E", '/bin/sh -c #(nop)  CMD ["bash"]'),
                      "/bin/sh -c apt-get update")
    got = lines(map_history(history, df))
    assert got == [("ADD", None, False, True), ("CMD", None, False, True), ("RUN", 2, True, False)]
