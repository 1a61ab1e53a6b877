"""Pickling NgramModel: the file is reopened, never copied, and a changed file is refused."""

import multiprocessing
import os
import pickle
import shutil

import pytest

from speechdecode.errors import InputFileError
from speechdecode.lm.model import NgramModel

HERE = os.path.dirname(__file__)
KENLM_DATA = os.path.join(HERE, "..", "data", "kenlm")
LMPLZ_DATA = os.path.join(HERE, "..", "data", "lmplz")
SENTENCES = ["in the beginning", "and god said", "zebra the lord", ""]


@pytest.fixture(params=["kjv400.o4.prune123.trie-q8b8a22.bin", "kjv400.o3.prune11.probing.bin", "arpa"])
def model_file(request, tmp_path):
    name = request.param
    source = os.path.join(LMPLZ_DATA, "kjv400.o3.prune11.arpa.gz") if name == "arpa" else os.path.join(KENLM_DATA, name)
    target = tmp_path / os.path.basename(source)
    shutil.copy(source, target)
    return str(target)


def test_round_trip_is_small_and_scores_alike(model_file):
    model = NgramModel.load(model_file)
    blob = pickle.dumps(model)
    assert len(blob) < 400  # the path and the file's identity, not the tables
    again = pickle.loads(blob)
    assert again.path == model.path and again.kenlm_type == model.kenlm_type
    assert [again.score(s) for s in SENTENCES] == [model.score(s) for s in SENTENCES]


def test_changed_content_same_size_and_mtime_is_refused(model_file):
    model = NgramModel.load(model_file)
    blob = pickle.dumps(model)
    st = os.stat(model_file)
    data = bytearray(_read(model_file))
    data[-2] ^= 0x01  # same size
    with open(model_file, "wb") as f:
        f.write(bytes(data))
    os.utime(model_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # same modification time
    with pytest.raises(InputFileError, match="content changed") as info:
        pickle.loads(blob)
    assert model_file in str(info.value)


def test_changed_size_is_refused_and_so_is_pickling_after_a_change(model_file):
    model = NgramModel.load(model_file)
    blob = pickle.dumps(model)
    with open(model_file, "ab") as f:
        f.write(b"\n")
    with pytest.raises(InputFileError, match="changed since the model was pickled"):
        pickle.loads(blob)
    with pytest.raises(InputFileError, match="changed on disk since this model loaded it"):
        pickle.dumps(model)
    os.remove(model_file)
    with pytest.raises(InputFileError, match="gone"):
        pickle.loads(blob)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _score_in_worker(args):
    model, sentence = args
    return model.score(sentence)


def test_spawn_pool(model_file):
    model = NgramModel.load(model_file)
    expect = [model.score(s) for s in SENTENCES]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_score_in_worker, [(model, s) for s in SENTENCES]) == expect
