"""Guards for the lint path's speed (see benchmarks/bench_lint.py and benchmarks/README.md).

`imagelint lint` runs in pre-commit on every commit: it must not import click or
heavy/slow modules, and the helpers rules call on every RUN must stay cheap.
"""
import filecmp
import json
import os
import subprocess
import sys

from imagelint.dockerfile import parse, parse_key_values
from imagelint.shell import split_commands

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "benchmarks"))
import bench_lint  # noqa: E402

# modules the lint path must never load: click (~20 ms), PyYAML (only on a rule-cache miss),
# the image tools' dependencies, and stdlib modules that are slow to import for what they give
FORBIDDEN = ("click", "yaml", "tabulate", "docker", "requests", "bashlex", "hashlib", "typing", "dataclasses",
             "inspect", "subprocess", "pathlib", "importlib.metadata", "asyncio", "email", "urllib.request")

_PROBE = """
import json, sys
before = set(sys.modules)  # interpreter start-up (an editable install's import hook loads pathlib)
sys.argv = ["imagelint", "lint", *sys.argv[1:]]
from imagelint._entry import main
try:
    main()
except SystemExit as e:
    code = e.code
sys.stdout.flush()
bad = sorted(m for m in set(sys.modules) - before if m in %r or m.split(".")[0] in ("click", "yaml", "docker"))
print("\\nPROBE " + json.dumps({"code": code, "loaded": bad}))
""" % (FORBIDDEN,)


def _probe(args, cwd, cache):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=120)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("PROBE ")]
    assert line, p.stdout + p.stderr
    return json.loads(line[-1][6:])


def test_lint_path_imports_nothing_heavy(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".git").mkdir()  # config discovery stops here
    single, batch = bench_lint.write_corpus(str(work), n=len(bench_lint.FAMILIES))
    cache = tmp_path / "cache"
    first = _probe([single, *batch], work, cache)  # cold: parses the YAML rule pack
    assert first["code"] in (0, 1)
    warm = _probe([single, *batch], work, cache)
    assert warm["code"] == first["code"]
    assert warm["loaded"] == [], f"the lint path imports {warm['loaded']}"
    # every output format renders without click or heavy imports, too
    for fmt in ("json", "sarif", "github", "checkstyle"):
        out = _probe(["-f", fmt, single], work, cache)
        assert out["loaded"] == [], (fmt, out["loaded"])


def test_env_at_is_cached_but_returns_a_fresh_dict():
    df = parse("FROM debian AS base\nENV A=1 B=2\nFROM base\nARG C=3\nENV A=4\nRUN true\nRUN false\n")
    run1, run2 = list(df.walk("RUN"))
    env = df.env_at(run1)
    assert env == {"A": "4", "B": "2", "C": "3"}
    env["X"] = "caller's own"
    assert df.env_at(run1) == {"A": "4", "B": "2", "C": "3"}
    assert df.env_at(run2) == df.env_at(run1)
    first_stage_run = parse("FROM debian\nENV A=1\nRUN a\nENV A=2\nRUN b\n")
    a, b = first_stage_run.walk("RUN")
    assert first_stage_run.env_at(a)["A"] == "1" and first_stage_run.env_at(b)["A"] == "2"


def _env_at_reference(df, ins):
    """The straightforward O(instructions) definition env_at's cache must agree with."""
    env, stage, chain = {}, ins.stage, []
    while stage is not None and stage not in chain:
        chain.append(stage)
        stage = stage.parent
    for st in reversed(chain):
        for other in st.instructions:
            if st is ins.stage and other.index >= ins.index:
                break
            if other.keyword in ("ENV", "ARG"):
                for k, v in parse_key_values(other.args, other.keyword):
                    env[k] = v if v is not None else (df.global_args.get(k) or env.get(k) or "")
    return env


def test_env_at_agrees_with_the_reference(tmp_path):
    single, batch = bench_lint.write_corpus(str(tmp_path))
    texts = [(tmp_path / rel).read_text() for rel in [single] + batch]
    texts.append("ARG V=1\nARG W\nFROM a:${V} AS one\nARG V\nENV X=$V Y=2\nONBUILD RUN x\n"
                 "FROM one AS two\nENV Y=3\nRUN a\nARG W=9\nFROM debian\nRUN b\nFROM two\nENV Z=1\nRUN c\n")
    checked = 0
    for text in texts:
        df = parse(text)
        for ins in df.walk():
            assert df.env_at(ins) == _env_at_reference(df, ins), (text, ins)
            checked += 1
    assert checked > 2000


def test_command_name_is_the_basename():
    cmds = split_commands("/usr/bin/apt-get update && ./configure && pip install x && /bin/sh -c 'ls /'")
    assert [c.name for c in cmds] == ["apt-get", "configure", "pip", "ls"]


def test_benchmark_corpus_is_deterministic_and_valid(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    single, batch = bench_lint.write_corpus(str(a))
    assert bench_lint.write_corpus(str(b)) == (single, batch)
    assert len(batch) == 200 and len(set(batch)) == 200
    for rel in [single] + batch:
        assert filecmp.cmp(a / rel, b / rel, shallow=False)
        df = parse((a / rel).read_text(), rel)
        assert df.errors == [], (rel, df.errors)
        assert df.stages, rel
    kinds = {rel.split("-", 1)[1].split("/")[0] for rel in batch}
    assert kinds == {f.__name__.strip("_") for f in bench_lint.FAMILIES}
