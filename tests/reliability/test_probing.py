"""The probe worker harness itself: a crash and a hang of a probe fail it, and the next probe runs."""

from __future__ import annotations

import pytest
from probing import ProbeFailure, Prober

# A worker that answers with the number of requests it has served, dies of SIGSEGV on "crash"
# and hangs on "hang".
FAULTY = """
import ctypes, pickle, struct, sys, time
served = 0
while True:
    header = sys.stdin.buffer.read(4)
    if len(header) < 4:
        break
    name, args = pickle.loads(sys.stdin.buffer.read(struct.unpack("<I", header)[0]))
    served += 1
    if args[0] == "crash":
        sys.stderr.write("about to crash\\n")
        sys.stderr.flush()
        ctypes.string_at(0)
    if args[0] == "hang":
        time.sleep(60)
    reply = pickle.dumps(("ok", served))
    sys.stdout.buffer.write(struct.pack("<I", len(reply)) + reply)
    sys.stdout.buffer.flush()
"""


def test_a_crash_and_a_hang_fail_the_probe(tmp_path):
    script = tmp_path / "faulty_worker.py"
    script.write_text(FAULTY)
    prober = Prober(script)
    try:
        assert prober("probe", "fine") == ("ok", 1)
        assert prober("probe", "fine") == ("ok", 2)
        with pytest.raises(ProbeFailure, match=r"(?s)crash: probe\('crash',\) killed the worker \(SIGSEGV\).*about to"):
            prober("probe", "crash")
        assert prober("probe", "fine") == ("ok", 1)  # a fresh worker
        with pytest.raises(ProbeFailure, match=r"hang: probe\('hang',\) did not answer within 2 s"):
            prober("probe", "hang", timeout=2)
        assert prober("probe", "fine") == ("ok", 1)
    finally:
        prober.close()
