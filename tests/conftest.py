import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Inner sessions get an ini of their own (no outer addopts), syrupy colours off, and an
    environment without the outer run's switches: ``CI`` makes the plugin strict, and an
    outer xdist worker's variables would make syrupy in the inner session act as a worker."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n")
    for name in (
        "CI",
        "GITHUB_STEP_SUMMARY",
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
    ):
        monkeypatch.delenv(name, raising=False)
    return pytester
