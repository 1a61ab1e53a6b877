"""A corpus in gzip that is cut short or fails its CRC is an error naming the file, in both
counters: counting it as a shorter corpus would build a different model without a word."""

import gzip

import pytest

from speechdecode.errors import InputFileError
from speechdecode.lm import count_files
from speechdecode.testing.corpora import kjv_sentences


@pytest.fixture(scope="module")
def packed() -> bytes:
    return gzip.compress(("\n".join(kjv_sentences()[:2000]) + "\n").encode())


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("damage", ["cut in the data", "cut in the trailer", "crc", "length"])
def test_damaged_gzip_corpora_are_refused(tmp_path, packed, backend, damage):
    data = bytearray(packed)
    if damage == "cut in the data":
        data = data[: len(data) // 2]
    elif damage == "cut in the trailer":
        data = data[:-3]
    else:
        data[-8 if damage == "crc" else -2] ^= 0x01
    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"corpus.txt.gz.*(gzip|truncated|corrupt|CRC|end of)") as info:
        count_files(path, 3, backend=backend)
    assert str(path) in str(info.value)
    path.write_bytes(packed)
    assert count_files(path, 3, backend=backend).order == 3
