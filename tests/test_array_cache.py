"""keraszoo.data.array_cache: computed once, used while intact and meant for the key, recomputed (said in one
line) when stale or damaged, never used silently."""

import json

import numpy as np

from keraszoo.data.array_cache import cached_arrays


def test_a_cache_is_used_only_while_it_is_intact_and_for_its_key(tmp_path, capsys):
    calls = []

    def compute(value=1.0):
        calls.append(value)
        return {"tokens": np.full((4, 3), value, np.float16), "labels": np.arange(4, dtype=np.int32)}

    key = {"weights": "abc", "image_size": 112, "frozen_blocks": 10, "split": "train[:4]"}
    first = cached_arrays(tmp_path, "entry", key, compute)
    again = cached_arrays(tmp_path, "entry", key, lambda: compute(2.0))
    assert calls == [1.0] and np.array_equal(again["tokens"], first["tokens"]) and again["tokens"].dtype == np.float16
    assert json.loads((tmp_path / "entry.json").read_text())["arrays"]["tokens"] == [[4, 3], "float16"]
    capsys.readouterr()

    data = bytearray((tmp_path / "entry.npz").read_bytes())
    data[-40] ^= 0xFF  # one flipped byte in the stored arrays
    (tmp_path / "entry.npz").write_bytes(bytes(data))
    damaged = cached_arrays(tmp_path, "entry", key, lambda: compute(3.0))
    (line,) = capsys.readouterr().out.splitlines()[:1]
    assert "is damaged (its bytes do not match their checksum): computing it again." in line
    assert calls == [1.0, 3.0] and float(damaged["tokens"][0, 0]) == 3.0

    stale = cached_arrays(tmp_path, "entry", {**key, "frozen_blocks": 11}, lambda: compute(4.0))
    assert "is stale (computed for" in capsys.readouterr().out and float(stale["tokens"][0, 0]) == 4.0

    (tmp_path / "entry.json").unlink()  # a write cut short before its description
    cut = cached_arrays(tmp_path, "entry", key, lambda: compute(5.0))
    assert "is damaged (its description is missing" in capsys.readouterr().out and float(cut["tokens"][0, 0]) == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json", "entry.npz"]  # no partial file left
