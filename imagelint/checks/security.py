"""Security rules: IL4004 secrets-copied, IL4006 secrets-in-arg-env.

IL4004 judges COPY/ADD sources by name, by content when the file is in the
build context (a ``.pem`` is only a secret if it holds a private key, an
``.npmrc`` only if it holds a literal token), and for directory sources such as
``COPY . .`` by walking the context with the ``.dockerignore`` applied.
"""
from __future__ import annotations

import os
import re
import shlex

from ..globs import glob_to_regex
from ..rules import Problem

__all__ = ["secrets_copied", "secrets_in_arg_env", "secret_kind", "DockerIgnore", "load_dockerignore",
           "secret_name_words"]


# -- .dockerignore ---------------------------------------------------------------
# A minimal matcher with moby/patternmatcher semantics: patterns are relative to
# the context root (a leading "/" is dropped), `*` and `?` stay inside one path
# segment, `**` spans segments, a pattern that matches a directory excludes all
# below it, `!pattern` re-includes, and the last matching pattern wins.

def _glob_regex(pattern: str) -> str:
    return "^" + glob_to_regex(pattern, backslash_escapes=True)


class DockerIgnore:
    """Parsed ``.dockerignore``: :meth:`excluded` answers for a context-relative path."""

    def __init__(self, text: str = ""):
        self.rules: list = []  # (regex, is_exception)
        for line in text.splitlines():
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            exception = p.startswith("!")
            if exception:
                p = p[1:].strip()
            p = os.path.normpath(p).replace(os.sep, "/").lstrip("/")
            if p in ("", "."):
                continue
            try:
                self.rules.append((re.compile(_glob_regex(p)), exception))
            except re.error:
                continue  # Docker rejects the file; the build will say so
        self.has_exceptions = any(exc for _, exc in self.rules)

    def excluded(self, rel: str) -> bool:
        rel = rel.strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        result = False
        for rx, exception in self.rules:
            if any(rx.match(p) for p in prefixes):
                result = not exception
        return result


def load_dockerignore(context_dir: str, dockerfile_path: str = None):
    """The context's ignore matcher (``<Dockerfile>.dockerignore`` wins over ``.dockerignore``).

    Uses the shared matcher of imagelint.checks.context (IL3007/IL3008) so that all
    rules agree on what the context holds; the local :class:`DockerIgnore` is the
    fallback should that module be unavailable.
    """
    try:
        from .context import load_ignore
    except ImportError:
        load_ignore = None
    if load_ignore is not None:
        ignore, _ = load_ignore(dockerfile_path, context_dir)
        return ignore if ignore is not None else DockerIgnore("")
    candidates = []
    if dockerfile_path:
        candidates.append(dockerfile_path + ".dockerignore")
    candidates.append(os.path.join(context_dir, ".dockerignore"))
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return DockerIgnore(f.read())
        except OSError:
            continue
    return DockerIgnore("")


def _has_exceptions(ignore) -> bool:
    """Whether ``!`` patterns exist (then an excluded directory may hold re-included files)."""
    if hasattr(ignore, "has_exceptions"):
        return ignore.has_exceptions
    try:
        return any(p[0] for p in ignore.patterns)
    except (AttributeError, TypeError, IndexError):
        return True  # unknown matcher: never prune


# -- what counts as a secret file ------------------------------------------------------

_SSH_KEY_RE = re.compile(r"^id_(?:rsa|dsa|ecdsa|ed25519)(?:[_-][\w.-]*)?$")
_PRIVATE_KEY_RE = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# name words that mark a .pem/.key as public material (CA bundles, apt/gpg repository keys)
_PUBLIC_WORDS = {"cert", "certs", "certificate", "crt", "ca", "cacert", "cacerts", "bundle", "chain",
                 "fullchain", "pub", "public", "root", "trust", "truststore", "gpg", "pgp", "keyring",
                 "release", "archive", "apt", "repo", "signing"}
_ENV_TEMPLATE_SUFFIXES = {"example", "sample", "template", "tpl", "dist", "defaults", "default", "schema",
                          "vault", "keep"}
_SECRET_DIRS = {".ssh": "an SSH directory with private keys", ".aws": "AWS credentials",
                ".gnupg": "a GnuPG home with private keys", ".kube": "a kubeconfig directory with cluster credentials"}
# directories a context walk does not enter: vendored dependencies and test fixtures
# routinely hold sample keys that are not secrets of this project
_SKIP_WALK = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox",
              ".mypy_cache", ".pytest_cache", "vendor", "test", "tests", "testdata", "fixtures",
              "__tests__", "spec", "testing", "examples"}
_MAX_WALK = 20000
_MAX_READ = 256 * 1024


def _read(path: str):
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_READ)
    except OSError:
        return None


def _literal_value(v: bytes) -> bool:
    v = v.strip().strip(b"\"'")
    return bool(v) and not v.startswith((b"${", b"$", b"%("))


def secret_kind(rel: str, content: bytes = None):
    """What secret the file at context-relative ``rel`` is, or None.

    ``content`` (when the file is readable) refines name-based guesses: a ``.pem``
    without a private key block, or an ``.npmrc`` that only references ``${NPM_TOKEN}``,
    is not a secret.
    """
    rel = rel.replace("\\", "/").strip("/")
    base = rel.rsplit("/", 1)[-1]
    low = base.lower()
    parts = rel.lower().split("/")
    if low.endswith(".pub"):
        return None
    if _SSH_KEY_RE.match(low):
        return "an SSH private key"
    stem, dot, ext = low.rpartition(".")
    if dot and ext in ("pem", "key"):
        if content is not None:
            return "a private key" if _PRIVATE_KEY_RE.search(content) else None
        words = set(re.split(r"[._-]+", stem))
        in_cert_dir = any(p in ("certs", "ca-certificates", "trusted.gpg.d", "keyrings") for p in parts[:-1])
        if words & _PUBLIC_WORDS or (ext == "pem" and in_cert_dir):
            return None
        return "a private key"
    if dot and ext in ("p12", "pfx"):
        return "a PKCS#12 keystore with a private key"
    if dot and ext == "kdbx":
        return "a KeePass password database"
    if low == ".env" or (low.startswith(".env.") and low[5:] not in _ENV_TEMPLATE_SUFFIXES):
        return "a dotenv file"
    if low in (".netrc", "_netrc"):
        return "a .netrc with login passwords"
    if low == ".git-credentials":
        return "git credentials"
    if low == "credentials" and len(parts) > 1 and parts[-2] == ".aws":
        return "AWS credentials"
    if low in ("kubeconfig",) or low.endswith(".kubeconfig") or (low == "config" and len(parts) > 1
                                                                  and parts[-2] == ".kube"):
        return "a kubeconfig with cluster credentials"
    if low == ".npmrc":
        if content is None:
            return "an .npmrc, which may hold a registry token"
        m = re.search(rb"(?m)^\s*[^#;\n]*:?_(?:authToken|auth|password)\s*=\s*(.+)$", content)
        return "an .npmrc with a registry token" if m and _literal_value(m.group(1)) else None
    if low == ".pypirc":
        if content is None:
            return "a .pypirc, which may hold an index password"
        m = re.search(rb"(?m)^\s*password\s*[=:]\s*(.+)$", content)
        return "a .pypirc with a password" if m and _literal_value(m.group(1)) else None
    if low == "config.json" and len(parts) > 1 and parts[-2] == ".docker":
        if content is None:
            return "a Docker config, which may hold registry auth"
        return "a Docker config with registry auth" if re.search(rb'"auth"\s*:\s*"[^"]+"', content) else None
    if low.endswith(".json") and ("credentials" in low or low.startswith(("service-account", "client_secret"))):
        if content is not None and b"private_key" not in content and b"client_secret" not in content \
                and b"secret" not in content.lower():
            return None
        return "a credentials JSON such as a service-account key"
    return None


def _walk_context(root: str, start: str, ignore) -> list:
    """Secret files under context-relative ``start`` that the context would send."""
    found = []
    prune = not _has_exceptions(ignore)
    count = 0
    top = os.path.join(root, start) if start else root
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in _SKIP_WALK or os.path.islink(os.path.join(dirpath, d)):
                continue
            if prune and ignore.excluded(rel):
                continue
            if d in _SECRET_DIRS and not ignore.excluded(rel):
                found.append((rel, _SECRET_DIRS[d]))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            count += 1
            if count > _MAX_WALK:
                return found
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if ignore.excluded(rel):
                continue
            if secret_kind(rel) is None:
                continue  # cheap name test first; read only candidates
            kind = secret_kind(rel, _read(os.path.join(dirpath, name)))
            if kind:
                found.append((rel, kind))
    return found


def _sources(ins, df) -> list:
    """COPY/ADD source paths (variables substituted), without heredocs and URLs."""
    if ins.exec_form is not None:
        words = list(ins.exec_form)
    else:
        try:
            words = shlex.split(ins.args, posix=True)
        except ValueError:
            words = ins.args.split()
    if len(words) < 2:
        return []
    env = df.env_at(ins) if ins.stage is not None else {}
    out = []
    for w in words[:-1]:
        if w.startswith("<<") or re.match(r"^[a-z][a-z0-9+.-]*://", w) or w.startswith("git@"):
            continue
        out.append(df.substitute(w, env))
    return out


def _norm_rel(src: str) -> str:
    rel = os.path.normpath(src.lstrip("/")).replace(os.sep, "/")
    return "" if rel == "." else rel


def _context_secrets(src: str, ctx_dir: str, ignore) -> list:
    """Secrets a context source would copy: the file itself, a glob's matches, or a directory's tree."""
    rel = _norm_rel(src)
    if rel.startswith("../"):
        return []
    if any(ch in rel for ch in "*?["):
        import fnmatch
        matches = []
        parent = os.path.dirname(rel)
        if any(ch in parent for ch in "*?["):
            return []  # globs in directory parts: rare; skip rather than walk everything
        try:
            names = os.listdir(os.path.join(ctx_dir, parent))
        except OSError:
            return []
        for name in names:
            r = f"{parent}/{name}" if parent else name
            if fnmatch.fnmatchcase(r, rel):
                matches.append(r)
        out = []
        for r in matches:
            out.extend(_context_secrets(r, ctx_dir, ignore))
        return out
    path = os.path.join(ctx_dir, rel) if rel else ctx_dir
    if os.path.isdir(path):
        base = os.path.basename(rel)
        if base in _SECRET_DIRS and not ignore.excluded(rel):
            return [(rel, _SECRET_DIRS[base])]
        return _walk_context(ctx_dir, rel, ignore)
    if os.path.isfile(path) and not ignore.excluded(rel):
        kind = secret_kind(rel, _read(path))
        return [(rel, kind)] if kind else []
    return []


def _name_secret(src: str):
    """Name-only judgement for a source not found in the context (or from another stage)."""
    if any(ch in src for ch in "*?[") or "$" in src:
        return None
    rel = src.rstrip("/")
    base = rel.rsplit("/", 1)[-1]
    if base in _SECRET_DIRS:
        return _SECRET_DIRS[base]
    return secret_kind(rel)


def secrets_copied(df, ctx):
    """IL4004: COPY/ADD puts a private key, .env or credential file into a layer."""
    ctx_dir = ctx.context_dir if ctx.context_dir and os.path.isdir(ctx.context_dir) else None
    ignore = None
    for ins in df.walk("COPY", "ADD"):
        from_other = ins.flag("from")
        found = []
        for src in _sources(ins, df):
            if ctx_dir is not None and not from_other:
                if ignore is None:
                    ignore = load_dockerignore(ctx_dir, df.path)
                hits = _context_secrets(src, ctx_dir, ignore)
                if hits:
                    found.extend(hits)
                    continue
                if os.path.exists(os.path.join(ctx_dir, _norm_rel(src))):
                    continue  # in the context and judged by content: not a secret
            kind = _name_secret(src)
            if kind:
                found.append((src, kind))
        if not found:
            continue
        seen = []
        for rel, kind in found:
            if (rel, kind) not in seen:
                seen.append((rel, kind))
        shown = ", ".join(f"`{rel}` ({kind})" for rel, kind in seen[:3])
        more = f" and {len(seen) - 3} more" if len(seen) > 3 else ""
        where = "" if ins.stage is None or ins.stage.ships else \
            " Even in a builder stage it stays in the build cache and in `--target` builds."
        fix = ("keep the file out of the image: list it in .dockerignore, pass build-time secrets with "
               "`RUN --mount=type=secret,id=NAME,target=/run/secrets/NAME` (`docker build --secret "
               "id=NAME,src=FILE`), and run-time ones through the ECS task definition `secrets` "
               "(Secrets Manager or SSM Parameter Store)")
        if any("SSH" in kind for _, kind in seen):
            fix += "; for git or pip over SSH use `RUN --mount=type=ssh ...` with `docker build --ssh default`"
        yield Problem.at(
            ins,
            message=(f"{ins.keyword} puts {shown}{more} into a layer: anyone who can pull the image "
                     f"or read the build cache can extract it, and a later `rm` does not remove it.{where}"),
            fix=fix,
        )


# -- IL4006 secrets-in-arg-env ----------------------------------------------------------

_SECRET_WORDS = {"password", "passwd", "pass", "passphrase", "secret", "secrets", "token", "apikey",
                 "credential", "credentials", "privatekey", "accesskey", "secretkey"}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"),
                 ("client", "key"), ("encryption", "key"), ("signing", "key"), ("master", "key"),
                 ("auth", "key"), ("license", "key"), ("account", "key"), ("service", "key")}
# a last word that makes the variable describe where a secret is, not the secret itself
_META_WORDS = {"file", "files", "path", "dir", "directory", "url", "uri", "endpoint", "host", "hostname",
               "port", "name", "names", "id", "arn", "type", "length", "len", "expiry", "expires",
               "expiration", "ttl", "header", "enabled", "enable", "disabled", "disable", "required",
               "policy", "algorithm", "algo", "format", "location", "ref", "source", "env", "var",
               "mount", "prefix", "suffix", "version", "min", "max", "size", "count", "timeout",
               "rotation", "store", "manager", "provider", "mode", "kind", "scope", "scopes", "field",
               "check", "checks", "scan"}
_BOOLEAN = {"true", "false", "yes", "no", "on", "off", "0", "1"}
_NOT_SECRET = {"GOOGLE_APPLICATION_CREDENTIALS", "PWD", "OLDPWD", "PASSWORD_STORE_DIR", "GPG_KEY"}
_ALWAYS_SECRET = {"AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"}
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URL_CRED_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@$]+:([^/\s@]+)@")
_ABS_PATH_RE = re.compile(r"^/(?:[\w.@-]+/)*[\w.@-]+/?$")


def secret_name_words(name: str) -> list:
    """``NPM_AUTH_TOKEN`` / ``npmAuthToken`` → ['npm', 'auth', 'token']."""
    return [w for w in re.split(r"[_.\-]+", _CAMEL_RE.sub("_", name).lower()) if w]


def _secret_name(name: str) -> bool:
    up = name.upper()
    if up in _ALWAYS_SECRET:
        return True
    if up in _NOT_SECRET:
        return False
    words = secret_name_words(name)
    if not words or "public" in words or words[-1] in _META_WORDS:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def secrets_in_arg_env(df, ctx):
    """IL4006: ARG/ENV named like a secret, or a value with credentials in a URL."""
    from ..dockerfile import parse_key_values
    for ins in df.walk("ARG", "ENV"):
        names, urls = [], []
        for key, value in parse_key_values(ins.args, ins.keyword):
            if value is not None and _URL_CRED_RE.search(value) and \
                    not _URL_CRED_RE.search(value).group(1).startswith("$"):
                urls.append(key)
                continue
            if not _secret_name(key):
                continue
            if ins.keyword == "ENV" and value is not None and not value.strip():
                continue  # ENV TOKEN="" stores nothing
            if value is not None and value.strip().lower() in _BOOLEAN:
                continue  # MYSQL_ALLOW_EMPTY_PASSWORD=yes: a switch, not a secret
            if value is not None and _ABS_PATH_RE.match(value.strip()):
                continue  # ENV DB_PASSWORD=/run/secrets/db: a path to the secret, not the secret
            names.append(key)
        if not names and not urls:
            continue
        parts = []
        if names:
            listed = ", ".join(f"`{n}`" for n in names)
            if ins.keyword == "ARG":
                parts.append(f"ARG {listed} looks like a secret: build-arg values are recorded in the image "
                             "history of every RUN that uses them and in build provenance")
            else:
                parts.append(f"ENV {listed} looks like a secret: ENV values are stored in the image config, "
                             "readable by anyone who can pull the image (`docker inspect`)")
        if urls:
            parts.append(f"{ins.keyword} {', '.join(f'`{n}`' for n in urls)} holds a URL with an inline "
                         "password, stored in the image")
        first = (names or urls)[0]
        secret_id = first.lower()
        if ins.keyword == "ARG":
            fix = (f"drop the ARG and mount the value only into the RUN that needs it: `RUN --mount=type=secret,"
                   f"id={secret_id},env={first} ...` with `docker build --secret id={secret_id},env={first}` "
                   "(Dockerfile 1.10+; older: `target=/run/secrets/...`)")
        else:
            fix = (f"do not bake `{first}` into the image: give it to the container at run time through the ECS task "
                   "definition `secrets` (Secrets Manager or SSM Parameter Store); if a build step needs it, use "
                   f"`RUN --mount=type=secret,id={secret_id},env={first} ...`")
        yield Problem.at(ins, message="; ".join(parts), fix=fix)
