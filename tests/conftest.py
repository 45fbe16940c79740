"""Suite-wide settings: the hypothesis profiles of the property-based tests (tests/test_fuzz_*.py),
and what a skip for a missing optional package says (tests/extras.py).

HYPOTHESIS_PROFILE=default (the default): 40 examples per property, so the whole fuzz suite
stays well under a minute on 2 cores. HYPOTHESIS_PROFILE=ci: 250 examples per property, used
by the sanitizer job (.ci/sanitize.sh). "long": 1000, to hunt. No deadline: a first call into
BLAS, or a run under AddressSanitizer, is slow for reasons that are not a bug.
"""
import os
import re

import pytest

import extras

try:
    from hypothesis import HealthCheck, settings
except ImportError:   # the `test` extra is not installed: pytest alone still runs the rest
    settings = None

if settings is not None:
    _COMMON = dict(deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
    settings.register_profile("default", max_examples=40, **_COMMON)
    settings.register_profile("ci", max_examples=250, **_COMMON)
    settings.register_profile("long", max_examples=1000, **_COMMON)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# pytest.importorskip's own reason for a module that is not installed
_COULD_NOT_IMPORT = re.compile(r"^(?:Skipped: )?could not import '([\w.]+)': No module named")


def _name_the_extra(report):
    """A skip from pytest.importorskip of an optional package (tests/extras.py) says which
    extra installs it; under CI it is a failure instead."""
    if not report.skipped or not isinstance(report.longrepr, tuple) or len(report.longrepr) != 3:
        return
    path, line, message = report.longrepr
    match = _COULD_NOT_IMPORT.match(str(message))
    if not match or extras.extra_of(match.group(1)) is None:
        return
    module = match.group(1)
    if extras.in_ci():
        report.outcome = "failed"
        report.longrepr = f"{path}:{line}: {extras.ci_failure(module)}"
    else:
        report.longrepr = (path, line, extras.reason(module))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _name_the_extra(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a test module that skips as a whole (a module-level importorskip)."""
    outcome = yield
    _name_the_extra(outcome.get_result())


def pytest_collection_modifyitems(config, items):
    """Under the sanitizers (RNNX_SANITIZE=1, set by .ci/sanitize.sh), a test marked xfail is a
    known finding that is not fixed yet: it would abort the run with a report that is already
    known, so it is skipped there. Without the xfail mark it runs like any other test."""
    if os.environ.get("RNNX_SANITIZE") != "1" or os.environ.get("RNNX_FUZZ_TALLY"):
        return   # (the survey, tools/fuzz_survey.py, runs them all, each call in its own child)
    skip = pytest.mark.skip(reason="a known finding (xfail) that would abort the sanitizer run")
    for item in items:
        if item.get_closest_marker("xfail") is not None:
            item.add_marker(skip)


@pytest.fixture
def isa_and_threads():
    """Restores the kernels' instruction set and rnnx's thread count that a test changes."""
    from rnnx import _core
    isa, threads = _core.get_isa(), _core.get_num_threads()
    yield
    _core.set_isa(isa)
    _core.set_num_threads(threads)
