import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """Inner sessions get an ini of their own (no outer addopts), syrupy colours off."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\n")
    return pytester
