"""The .dockerignore matcher in imagelint/checks/context.py against Docker's semantics.

Expected values follow moby/patternmatcher (MatchesOrParentMatches) and BuildKit's
ignore-file reader: Go filepath.Match per element, `**`, cleaned patterns with the
leading '/' dropped, `!` exceptions where the last matching line wins, and a match
on a parent directory covering everything below it.
"""
import pytest

from imagelint.checks.context import DockerIgnore, clean_pattern, ignore_file_for


def excluded(patterns: str, path: str) -> bool:
    return DockerIgnore.from_text(patterns).excluded(path)


@pytest.mark.parametrize("pattern,cleaned", [
    ("node_modules/", "node_modules"),
    ("./dist", "dist"),
    ("a//b/../c", "a/c"),
    ("/.git", "/.git"),
    ("..", ".."),
    ("", "."),
])
def test_clean_pattern(pattern, cleaned):
    assert clean_pattern(pattern) == cleaned


@pytest.mark.parametrize("patterns,path,expected", [
    # plain names match from the context root only, and cover what is inside
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/express/index.js", True),
    ("node_modules", "web/node_modules", False),
    # trailing slash and leading slash are cleaned away
    ("node_modules/", "node_modules", True),
    ("/.git", ".git", True),
    ("/.git", ".git/HEAD", True),
    ("./dist", "dist/app.js", True),
    # * and ? never cross '/'
    ("*.md", "README.md", True),
    ("*.md", "docs/guide.md", False),
    ("*/*.md", "docs/guide.md", True),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("*", "anything/below", True),
    # ** matches any number of directories, also none
    ("**/node_modules", "node_modules", True),
    ("**/node_modules", "a/b/node_modules", True),
    ("**/node_modules", "a/b/node_modules/x/y.js", True),
    ("**/*.pyc", "pkg/mod/__pycache__/m.cpython-312.pyc", True),
    ("**/*.pyc", "m.pyc", True),
    ("docs/**/*.png", "docs/a/b/c.png", True),
    ("docs/**/*.png", "docs/c.png", True),
    ("docs/**", "docs/a", True),
    ("docs/**", "other/docs/a", False),
    # moby treats a leading ** without other wildcards as a plain string suffix
    ("**.log", "server.log", True),
    ("**.log", "logs/server.log", True),
    # character classes
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[^abc].txt", "d.txt", True),
    ("file[0-9]", "file7", True),
    # regex metacharacters are literal
    ("a+b(c).txt", "a+b(c).txt", True),
    ("a.b", "axb", False),
    ("{a,b}", "a", False),
    # backslash escapes the next character
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    # comments and blank lines; '#' only at the very start of a line
    ("# .git\n\n", ".git", False),
    ("  # not a comment", "# not a comment", True),
    # surrounding whitespace is trimmed
    ("   .git   ", ".git", True),
])
def test_single_pattern(patterns, path, expected):
    assert excluded(patterns, path) is expected


@pytest.mark.parametrize("patterns,path,expected", [
    # exceptions re-include; the last matching line wins
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("*.md\n!README.md\nREADME.md", "README.md", True),
    ("!README.md\n*.md", "README.md", True),
    # allow-list style
    ("*\n!src\n!package.json", "src/index.js", False),
    ("*\n!src\n!package.json", "package.json", False),
    ("*\n!src\n!package.json", ".git/HEAD", True),
    ("*\n!src\n!package.json", "node_modules", True),
    # exception below an excluded directory
    ("node_modules\n!node_modules/keep", "node_modules/keep/a.js", False),
    ("node_modules\n!node_modules/keep", "node_modules/other/a.js", True),
    # exception with ** and leading slash
    ("**/.env*\n!**/.env.example", ".env", True),
    ("**/.env*\n!**/.env.example", "config/.env.example", False),
    ("**/.env*\n!/.env.example", ".env.example", False),
    # a bare "!" is rejected by docker; here it is simply ignored
    ("!\n.git", ".git", True),
])
def test_exceptions_and_order(patterns, path, expected):
    assert excluded(patterns, path) is expected


def test_context_root_is_never_excluded():
    assert excluded("*\n**", ".") is False


def test_bom_and_crlf():
    assert excluded("\ufeff.git\r\nnode_modules\r\n", ".git") is True
    assert excluded("\ufeff.git\r\nnode_modules\r\n", "node_modules/a") is True


def test_invalid_pattern_is_skipped():
    ig = DockerIgnore.from_text("[unterminated\n.git\n")
    assert ig.excluded(".git") is True
    assert ig.excluded("[unterminated") is False


def test_ignore_file_for_prefers_per_dockerfile(tmp_path):
    (tmp_path / ".dockerignore").write_text(".git\n")
    df = tmp_path / "api.Dockerfile"
    df.write_text("FROM scratch\n")
    assert ignore_file_for(str(df), str(tmp_path)) == str(tmp_path / ".dockerignore")
    (tmp_path / "api.Dockerfile.dockerignore").write_text("*.md\n")
    assert ignore_file_for(str(df), str(tmp_path)) == str(tmp_path / "api.Dockerfile.dockerignore")
    (tmp_path / ".dockerignore").unlink()
    (tmp_path / "api.Dockerfile.dockerignore").unlink()
    assert ignore_file_for(str(df), str(tmp_path)) is None
