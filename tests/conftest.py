import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Inner sessions get an ini of their own (no outer addopts), syrupy colours off, and an
    environment without the outer CI's switches (``CI`` makes the plugin strict)."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n")
    for name in ("CI", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    return pytester
