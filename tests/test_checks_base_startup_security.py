"""Unit tests for helpers behind IL4001-IL4010 (rule behaviour is in fixtures/rules/)."""
import pytest

from imagelint.checks.image_base import _fill, parse_image_ref
from imagelint.checks.security import DockerIgnore, _secret_name, secret_kind
from imagelint.checks.startup import parse_duration


@pytest.mark.parametrize("text,registry,repo,tag,digest,short", [
    ("python", "docker.io", "library/python", None, None, "python"),
    ("python:3.12-slim", "docker.io", "library/python", "3.12-slim", None, "python"),
    ("docker.io/library/python:3.12", "docker.io", "library/python", "3.12", None, "python"),
    ("index.docker.io/bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "bitnami/redis"),
    ("localhost:5000/team/app", "localhost:5000", "team/app", None, None, "localhost:5000/team/app"),
    ("localhost/app:1", "localhost", "app", "1", None, "localhost/app"),
    ("python@sha256:abc", "docker.io", "library/python", None, "sha256:abc", "python"),
    ("ghcr.io/o/r:v1@sha256:abc", "ghcr.io", "o/r", "v1", "sha256:abc", "ghcr.io/o/r"),
    ("mcr.microsoft.com/dotnet/sdk:8.0", "mcr.microsoft.com", "dotnet/sdk", "8.0", None,
     "mcr.microsoft.com/dotnet/sdk"),
])
def test_parse_image_ref(text, registry, repo, tag, digest, short):
    ref = parse_image_ref(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.short_name) == (registry, repo, tag, digest, short)


@pytest.mark.parametrize("template,tag,out", [
    ("python:{base-}slim{-codename}", "3.12", "python:3.12-slim"),
    ("python:{base-}slim{-codename}", "3.12.4-bookworm", "python:3.12.4-slim-bookworm"),
    ("python:{base-}slim{-codename}", "latest", "python:slim"),
    ("node:{base-}{codename-}slim", "20-bookworm", "node:20-bookworm-slim"),
    ("eclipse-temurin:{major}-jre", "21.0.3_9-jdk-jammy", "eclipse-temurin:21-jre"),
    ("eclipse-temurin:{major}-jre", "latest", "eclipse-temurin:<version>-jre"),
    ("acme:slim-{version}", "full-2.1", "acme:slim-2.1"),
])
def test_fill(template, tag, out):
    assert _fill(template, tag) == out


@pytest.mark.parametrize("text,seconds", [
    ("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("1.5s", 1.5), ("2m", 120),
    ("30", None), ("", None), ("5x", None), ("s", None),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("name,secret", [
    ("NPM_TOKEN", True), ("DB_PASSWORD", True), ("DB_PASS", True), ("stripeApiKey", True),
    ("AWS_SECRET_ACCESS_KEY", True), ("AWS_ACCESS_KEY_ID", True), ("SECRET_KEY_BASE", True),
    ("SSH_PRIVATE_KEY", True), ("GOOGLE_CREDENTIALS", True),
    ("TOKENIZERS_PARALLELISM", False), ("GPG_KEY", False), ("POSTGRES_PASSWORD_FILE", False),
    ("OAUTH_TOKEN_URL", False), ("SECRET_ARN", False), ("NEXT_PUBLIC_API_KEY", False),
    ("PWD", False), ("KEYBOARD", False), ("USERNAME", False), ("PUBLIC_KEY", False),
])
def test_secret_name(name, secret):
    assert _secret_name(name) is secret


@pytest.mark.parametrize("rel,content,kind", [
    ("id_rsa", None, True), ("keys/id_ed25519", None, True), ("id_rsa.pub", None, False),
    ("server.key", None, True), ("certs/server.key", None, True), ("certs/ca.pem", None, False),
    ("repo.gpg.key", None, False), ("tls.pem", b"-----BEGIN EC PRIVATE KEY-----\n", True),
    ("tls.pem", b"-----BEGIN CERTIFICATE-----\n", False),
    (".env", None, True), (".env.local", None, True), (".env.example", None, False), (".envrc", None, False),
    (".npmrc", b"registry=https://r.example.com/\n", False),
    (".npmrc", b"//r.example.com/:_authToken=${NPM_TOKEN}\n", False),
    (".npmrc", b"//r.example.com/:_authToken=abc123\n", True),
    (".pypirc", b"[pypi]\nusername = __token__\npassword = pypi-AgEI\n", True),
    (".docker/config.json", b'{"credsStore": "ecr-login"}', False),
    (".docker/config.json", b'{"auths": {"x": {"auth": "dXNlcjpwdw=="}}}', True),
    (".aws/credentials", None, True), ("credentials", None, False), ("config.json", None, False),
    ("sa-credentials.json", b'{"type": "service_account", "private_key": "x"}', True),
    ("package.json", None, False),
])
def test_secret_kind(rel, content, kind):
    assert (secret_kind(rel, content) is not None) is kind


def test_local_dockerignore_matcher():
    ign = DockerIgnore("# c\n/node_modules\n**/*.key\nsecrets/\n!secrets/public.txt\n*.md\n")
    assert ign.excluded("node_modules/x/y.js")
    assert ign.excluded("a/b/server.key") and ign.excluded("server.key")
    assert ign.excluded("secrets/db.txt")
    assert not ign.excluded("secrets/public.txt")
    assert ign.excluded("README.md") and not ign.excluded("docs/README.md")
    assert not ign.excluded("app.py")
