"""The reliability suite's fixtures: one probe worker for the session, and the probe tally.

The tally (probes run, rejected with a named error, accepted, per area) is printed at the end of
the run; these are the figures issue 13 asks for.
"""

from __future__ import annotations

import pytest
from probing import TALLY, Prober


@pytest.fixture(scope="session")
def prober():
    worker = Prober()
    yield worker
    worker.close()


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    terminalreporter.section("reliability probes")
    for area, counts in sorted(TALLY.items()):
        terminalreporter.write_line(
            f"{area:32s} probes {counts['probes']:6d}  rejected with a named error {counts['rejected']:6d}  "
            f"accepted {counts['accepted']:6d}"
        )
