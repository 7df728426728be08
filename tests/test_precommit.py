"""The pre-commit hook (.pre-commit-hooks.yaml) end to end with the real `pre-commit` tool.

The current working tree is copied into a fresh git repository (pre-commit clones
a repo at a `rev`, so uncommitted work must be committed somewhere); a second
repository uses it as a hook repo. pre-commit builds its own virtualenv and
pip-installs imagelint and its dependencies from the package index, so this test
is slow (marker `slow`) and needs the index reachable. PRE_COMMIT_HOME, the
imagelint cache and git's global config all point into the temporary directory.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"
GOOD = ("FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n")

pytestmark = pytest.mark.slow


def _pre_commit():
    exe = os.path.join(os.path.dirname(sys.executable), "pre-commit")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("pre-commit")
    return [found] if found else [sys.executable, "-m", "pre_commit"]


def _env(tmp):
    env = dict(os.environ)
    env.update({
        "PRE_COMMIT_HOME": str(tmp / "pre-commit-home"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    })
    env.pop("NO_COLOR", None)
    env.pop("PRE_COMMIT", None)
    # the venv's bin first, so the git hook finds the same pre-commit
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    (tmp / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    return env


def git(cwd, *args, env, check=True):
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and r.returncode:
        raise AssertionError(f"git {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def _snapshot_working_tree(dest, env) -> str:
    """Commit the current working tree (tracked + untracked, minus ignored files) in ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, env=env,
                           capture_output=True, check=True, timeout=60).stdout.split(b"\0")
    for f in filter(None, files):
        rel = os.fsdecode(f)
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):  # deleted in the working tree but still in the index
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    git(dest, "init", "-q", env=env)
    git(dest, "add", "-A", env=env)
    git(dest, "commit", "-q", "-m", "snapshot", env=env)
    return git(dest, "rev-parse", "HEAD", env=env).stdout.strip()


def test_pre_commit_hook_blocks_bad_dockerfile_and_passes_good_one(tmp_path):
    env = _env(tmp_path)
    hook_repo = tmp_path / "imagelint-src"
    hook_repo.mkdir()
    rev = _snapshot_working_tree(hook_repo, env)
    assert (hook_repo / ".pre-commit-hooks.yaml").is_file()

    proj = tmp_path / "project"
    proj.mkdir()
    git(proj, "init", "-q", env=env)
    # --select keeps the outcome independent of the rest of the rule pack
    (proj / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {hook_repo}\n"
        f"    rev: {rev}\n"
        "    hooks:\n"
        "      - id: imagelint\n"
        "        args: [--select, 'IL1002,IL0001']\n")
    (proj / "README.md").write_text("not a Dockerfile, so the hook skips it\n")
    git(proj, "add", ".pre-commit-config.yaml", "README.md", env=env)
    git(proj, "commit", "-q", "-m", "init", env=env)

    r = subprocess.run([*_pre_commit(), "install"], cwd=proj, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # build the hook environment once, with a generous timeout (pip installs from the index)
    r = subprocess.run([*_pre_commit(), "install-hooks"], cwd=proj, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr

    # a bad Dockerfile: the commit is refused and the output names the rule
    (proj / "Dockerfile").write_text(BAD)
    git(proj, "add", "Dockerfile", env=env)
    r = git(proj, "commit", "-m", "add Dockerfile", env=env, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Lint Dockerfiles" in out and "Failed" in out, out
    assert "IL1002" in out and "apt-lists-not-removed" in out, out
    assert "Traceback" not in out
    assert git(proj, "log", "--format=%s", env=env).stdout.split("\n")[0] == "init"

    # fixed: the commit goes through
    (proj / "Dockerfile").write_text(GOOD)
    (proj / "api.Dockerfile").write_text(GOOD)
    git(proj, "add", "Dockerfile", "api.Dockerfile", env=env)
    r = git(proj, "commit", "-m", "add Dockerfiles", env=env, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Lint Dockerfiles" in out and "Passed" in out, out
    assert git(proj, "log", "--format=%s", env=env).stdout.split("\n")[0] == "add Dockerfiles"

    # a commit without Dockerfiles skips the hook
    (proj / "README.md").write_text("changed\n")
    git(proj, "add", "README.md", env=env)
    r = git(proj, "commit", "-m", "docs", env=env, check=False)
    assert r.returncode == 0 and "Skipped" in r.stdout + r.stderr, r.stdout + r.stderr

    # nothing global was written: the hook environment lives in PRE_COMMIT_HOME
    assert (tmp_path / "pre-commit-home").is_dir()
