"""The check document's contract: every number a check records is named by the vocabulary that
decides how it is compared, and validation accepts what ``run`` observes and nothing else."""

import copy

import numpy as np
import pytest

from pytest_weightshape import document
from pytest_weightshape.divergence import output_divergence
from pytest_weightshape.run import Observer
from pytest_weightshape.spec import parse_marker
from pytest_weightshape.stats import fingerprint, summarize

from ..models import Dense


@pytest.fixture(scope="module")
def check_doc():
    spec = parse_marker((), {"units": [10, 5]})
    return Observer(spec, Dense, (8, 16)).observe()


def test_every_statistic_recorded_is_named_and_so_compared_by_its_kind():
    """A statistic missing from the vocabulary would be compared exactly (a float compared
    to the last bit fails on benign drift): every key ``stats`` and ``divergence`` produce is
    a float statistic or an exact count."""
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    produced = set(summarize(x))
    assert produced <= document.ALL_STATS, produced - document.ALL_STATS
    assert set(document.COUNT_STATS) <= produced
    measures = output_divergence(x, x * 2, summarize(x), summarize(x * 2), -1)
    exact = {"shape_change", "cka_n"}  # text, and the sample count CKA was computed on
    assert set(measures) - exact <= document.FLOAT_STATS, set(measures) - exact
    assert {f"q{round(q * 100):02d}" for q in document.QUANTILES} == set(document.QUANTILE_KEYS)


def test_the_kinds_do_not_overlap():
    kinds = [
        document.VALUE_STATS,
        document.FRACTION_STATS,
        document.COUNT_STATS,
        document.DIVERGENCE_VALUE,
        document.DIVERGENCE_RATIO,
        document.DIVERGENCE_UNIT,
    ]
    names = [name for kind in kinds for name in kind]
    assert len(names) == len(set(names))


def test_an_observed_document_is_valid(check_doc):
    assert check_doc["schema_version"] == document.SCHEMA_VERSION
    assert document.check_problem(check_doc) is None


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.pop("seed"), "seed must be an integer"),
        (lambda d: d.update(weights="random"), "weights must be 'framework' or 'portable'"),
        (lambda d: d.update(variants={}), "variants must be a non-empty object"),
        (lambda d: d["variants"]["units=5"].update(base=True), "exactly one variant"),
        (
            lambda d: d["variants"]["units=5"]["divergence"]["parameters"].update(added="w"),
            "divergence.parameters.added must be a list",
        ),
        (
            lambda d: d["variants"]["units=10"]["outputs"]["output"]["stats"].update(nan_count=-1),
            "nan_count must be a non-negative integer",
        ),
    ],
)
def test_a_malformed_document_names_what_is_wrong(check_doc, edit, problem):
    broken = copy.deepcopy(check_doc)
    edit(broken)
    found = document.check_problem(broken)
    assert found is not None and problem in found


def test_digests_compare_only_when_made_the_same_way():
    a = fingerprint(np.arange(10, dtype=np.float32))["digest"]
    b = fingerprint(np.arange(10, dtype=np.float32) + 1)["digest"]
    assert a.startswith(document.DIGEST_PREFIX)
    assert document.same_digest(a, a) is True
    assert document.same_digest(a, b) is False
    assert document.same_digest(a, "0123456789") is None  # an older version's digest
    assert document.same_digest(a, None) is None
