"""One generic test for every image-rule case in fixtures/image-rules/*.yaml.

A fixture file names a rule (``rule:`` id or name) and lists cases. Each case
describes a synthetic image and what the rule must find:

```yaml
rule: apt-lists-in-image
cases:
  - name: lists left by the install RUN
    dockerfile: |                       # optional: findings then carry its line numbers
      FROM debian:bookworm-slim
      RUN apt-get update && apt-get install -y curl
    config: {rules: {IL6001: {min-bytes: 10}}}   # optional .imagelint.yaml content
    layers:
      - created_by: "/bin/sh -c #(nop) ADD file:0a1b in / "
        entries: ["bin/sh 1000", "etc/"]
      - created_by: "/bin/sh -c apt-get update && apt-get install -y curl"
        entries:
          - "var/lib/apt/lists/deb_Packages 24000000"     # PATH SIZE [key=value ...]
          - {path: usr/bin/curl, size: 300000, mode: 0o755}
      - {created_by: '/bin/sh -c #(nop)  CMD ["curl"]', empty: true}   # history step, no layer
    findings:                            # [] for a silent case
      - {layer: 1, line: 2, bytes: 24000000, contains: "apt package lists"}
```

Entries: ``"PATH [SIZE] [key=value ...]"`` or a mapping with path/kind/size/mode/
uid/gid/digest/link. A path ending in ``/`` is a directory; tar whiteout names work
as in a layer tar (``a/.wh.b`` deletes ``a/b``, ``a/.wh..wh..opq`` makes ``a``
opaque); keys: ``kind`` (file, dir, symlink, hardlink, ...), ``mode`` (octal),
``uid``, ``gid``, ``digest`` (content hash: give two entries the same digest for
identical content; by default every entry has unique content), ``link``. A layer
may have ``repeat: N`` (``{i}`` in created_by and paths is the copy's number) and
``compressed_size``. ``created_by`` strings should look like the classic builder's
(``/bin/sh -c CMD``, ``/bin/sh -c #(nop) COPY file:abc in /app``) so that the
history maps to the Dockerfile. A finding's ``bytes`` and ``contains`` (a message
substring) are optional checks. Adding a case needs no code.
"""
import hashlib
import os

import pytest
import yaml

from conftest import FIXTURES
from imagelint.config import Config
from imagelint.dockerfile import parse
from imagelint.engine import Linter
from imagelint.gate import format_bytes
from imagelint.image import Entry, Image, Layer, normalise_path
from imagelint.imageview import ImageView
from imagelint.rules import load_rule_dirs

RULES = load_rule_dirs([])
IMAGE_RULES = [r for r in RULES if r.scope == "image"]
FIXTURE_DIR = os.path.join(FIXTURES, "image-rules")
CASE_KEYS = {"name", "dockerfile", "layers", "findings", "config"}
LAYER_KEYS = {"created_by", "entries", "empty", "repeat", "compressed_size"}
ENTRY_KEYS = {"path", "kind", "size", "mode", "uid", "gid", "digest", "link"}
FINDING_KEYS = {"layer", "line", "bytes", "contains"}


def _docs():
    for fname in sorted(f for f in os.listdir(FIXTURE_DIR) if f.endswith(".yaml")):
        with open(os.path.join(FIXTURE_DIR, fname), encoding="utf-8") as f:
            yield fname, yaml.safe_load(f)


def _cases():
    for fname, doc in _docs():
        for i, case in enumerate(doc["cases"]):
            yield pytest.param(doc["rule"], case, id=f"{doc['rule']}::{case.get('name', i)}")


def _entry(spec, layer_index: int, copy: int) -> Entry:
    if isinstance(spec, str):
        words = spec.split()
        data = {"path": words[0]}
        rest = words[1:]
        if rest and "=" not in rest[0]:
            data["size"] = rest.pop(0)
        for word in rest:
            key, sep, value = word.partition("=")
            assert sep, f"entry {spec!r}: expected key=value, got {word!r}"
            data[key] = value
    else:
        data = dict(spec)
    assert set(data) <= ENTRY_KEYS, f"unknown entry keys {set(data) - ENTRY_KEYS}"
    raw = str(data["path"]).replace("{i}", str(copy))
    kind = data.get("kind")
    name = raw.rstrip("/").rsplit("/", 1)[-1]
    parent = raw.rstrip("/").rpartition("/")[0]
    if name == ".wh..wh..opq":  # the tar convention, as sources translate it
        raw, kind = parent, "opaque"
    elif name.startswith(".wh."):
        raw, kind = (parent + "/" if parent else "") + name[len(".wh."):], "whiteout"
    elif kind is None:
        kind = "dir" if raw.endswith("/") else "file"
    path = normalise_path(raw)
    size = int(data.get("size", 0)) if kind == "file" else 0
    mode = data.get("mode", 0o755 if kind == "dir" else 0o644)
    if isinstance(mode, str):  # "755", "0755", "0o755"
        mode = int(mode.lower().replace("0o", "", 1), 8)
    digest = data.get("digest")
    if digest is None and kind == "file":
        # unique content per entry unless the case says otherwise
        digest = hashlib.sha256(f"{layer_index}:{path}".encode()).hexdigest()
    return Entry(path, kind, size, mode, int(data.get("uid", 0)), int(data.get("gid", 0)),
                 str(data.get("link", "")), None if digest is None else str(digest))


def build_image(layer_specs: list) -> Image:
    """An :class:`Image` (with history) from a case's ``layers:``."""
    image = Image("fixture", "fixture")
    history = []
    for spec in layer_specs:
        assert set(spec) <= LAYER_KEYS, f"unknown layer keys {set(spec) - LAYER_KEYS}"
        for copy in range(int(spec.get("repeat", 1))):
            created_by = str(spec.get("created_by", "")).replace("{i}", str(copy))
            if spec.get("empty"):
                history.append({"created_by": created_by, "empty_layer": True})
                continue
            history.append({"created_by": created_by})
            layer = Layer(len(image.layers), diff_id=f"sha256:{len(image.layers):064x}",
                          compressed_size=spec.get("compressed_size"),
                          compressed_size_exact=spec.get("compressed_size") is not None)
            layer.entries = [_entry(e, layer.index, copy) for e in spec.get("entries") or []]
            image.layers.append(layer)
    image.config = {"architecture": "amd64", "os": "linux", "history": history,
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in image.layers]}}
    image.attach_history()
    return image


def run_case(rule_key: str, case: dict) -> list:
    image = build_image(case["layers"])
    df = parse(case["dockerfile"], "Dockerfile") if case.get("dockerfile") else None
    cfg = Config.from_mapping(case.get("config") or {}, os.path.join(FIXTURE_DIR, ".imagelint.yaml"))
    linter = Linter(RULES, cfg, select=[rule_key], scope="image")
    return linter.lint_image(ImageView(image, df), "Dockerfile" if df is not None else "fixture")


@pytest.mark.parametrize("rule_key,case", list(_cases()))
def test_case(rule_key, case):
    assert set(case) <= CASE_KEYS, f"unknown case keys {set(case) - CASE_KEYS}"
    findings = run_case(rule_key, case)
    shown = "\n".join(f"layer {f.layer} line {f.line} [{f.bytes}]: {f.message}" for f in findings)
    expected = case["findings"] or []
    for exp in expected:
        assert set(exp) <= FINDING_KEYS, f"unknown finding keys {set(exp) - FINDING_KEYS}"
    got = sorted((f.layer, f.line) for f in findings)
    assert got == sorted((e["layer"], e.get("line", 0)) for e in expected), shown
    for exp in expected:
        matching = [f for f in findings if (f.layer, f.line) == (exp["layer"], exp.get("line", 0))]
        if "bytes" in exp:
            assert any(f.bytes == exp["bytes"] for f in matching), shown
        if "contains" in exp:
            assert any(exp["contains"] in f.message for f in matching), shown
    for f in findings:
        assert f.message and f.fix, "every finding needs a message and a fix"
        assert f.bytes is not None and f.layer is not None, shown
        assert format_bytes(f.bytes) in f.message, f"message does not state its bytes: {f.message}"
        assert "{" not in f.message, f"unfilled placeholder: {f.message}"


@pytest.mark.parametrize("rule", IMAGE_RULES, ids=lambda r: r.id)
def test_every_image_rule_has_cases(rule):
    """Each image rule has at least one firing and one silent case."""
    cases = []
    for _, doc in _docs():
        if doc["rule"] in rule.names():
            cases.extend(doc["cases"])
    assert any(c["findings"] for c in cases), f"{rule.id} has no firing case in fixtures/image-rules/"
    assert any(not c["findings"] for c in cases), f"{rule.id} has no silent case in fixtures/image-rules/"


def test_fixture_files_name_image_rules():
    names = {k for r in IMAGE_RULES for k in r.names()}
    for fname, doc in _docs():
        assert doc["rule"] in names, f"{fname}: {doc['rule']!r} is not an image rule"


def test_bad_size_option_is_a_config_error():
    from imagelint.rules import RuleError

    case = {"config": {"rules": {"docs-in-image": {"min-bytes": "lots"}}},
            "layers": [{"created_by": "x", "entries": ["usr/share/doc/a/README 10"]}]}
    with pytest.raises(RuleError, match="min-bytes"):
        run_case("docs-in-image", case)
    case["config"] = {"rules": {"large-file": {"min-bytes": "lots"}}}
    with pytest.raises(RuleError, match="min-bytes"):
        run_case("large-file", case)
