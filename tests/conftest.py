import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


def cli_runner():
    """click's CliRunner with stderr kept apart from stdout, on every click version."""
    from click.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


# --- local registry (tests/registry.py): session-scoped, stopped and its temp dir removed at the end
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def local_registry():
    """Debian's docker-registry on 127.0.0.1:<free port>, anonymous access."""
    from registry import LocalRegistry
    registry = LocalRegistry().start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def auth_registry():
    """docker-registry with htpasswd basic auth; ``.users`` holds the accepted user/password."""
    from registry import LocalRegistry
    registry = LocalRegistry(users={"imagelint": "test-password"}).start()
    try:
        yield registry
    finally:
        registry.stop()


# --- Docker engine and fixture images (tests/images.py): built once per run, removed at the end
def engine_required() -> bool:
    """False only when IMAGELINT_TEST_ENGINE=0 and not under CI=true (then engine tests skip)."""
    return os.environ.get("CI") == "true" or os.environ.get("IMAGELINT_TEST_ENGINE") != "0"


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client that answered a ping. Fails when the engine is missing (always under
    CI=true); skips only with IMAGELINT_TEST_ENGINE=0 outside CI."""
    from images import EngineUnavailable, engine_client
    if not engine_required():
        pytest.skip("IMAGELINT_TEST_ENGINE=0: tests that need the Docker engine are skipped")
    try:
        client = engine_client()
    except EngineUnavailable as exc:
        pytest.fail(f"{exc} (start dockerd, or set IMAGELINT_TEST_ENGINE=0 outside CI to skip engine tests)",
                    pytrace=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def fixture_images(docker_client):
    """tests.images.ImageBuilder: ``fixture_images.build('busybox-waste')`` → tag (cached per run;
    every image it built is removed at the end of the session)."""
    from images import EngineUnavailable, ImageBuilder
    builder = ImageBuilder(docker_client)
    try:
        yield builder
    except EngineUnavailable as exc:  # pragma: no cover - raised inside tests, reported there
        pytest.fail(str(exc), pytrace=False)
    finally:
        failed = builder.cleanup()
        if failed:
            sys.stderr.write("imagelint tests: could not remove fixture images: " + "; ".join(failed) + "\n")
