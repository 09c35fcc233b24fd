"""Event cameras: the readers (Gen1 .dat / _bbox.npy, EVT 2.0 / 3.0 .raw), event frames, the event
dataset and its synthetic generator, the Gen1 protocol, and the event paths of model, training and
evaluation. Real Prophesee samples are checked when ../shared/realdata/events is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spyolo.errors import EventFileError
from spyolo.events.arrays import EVENT_DTYPE, SensorSize, make_events
from spyolo.events.boxes import GEN1_BOX_DTYPE, read_boxes, write_boxes
from spyolo.events.dat import DatFile, read_dat, write_dat
from spyolo.events.frames import FrameGeometry, bin_events
from spyolo.events.protocol import Gen1Protocol
from spyolo.events.raw import RawRecording, decode_evt2, decode_evt3

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "events"
SENSOR = SensorSize(64, 48)


def _events(n: int = 500, seed: int = 0, sensor: SensorSize = SENSOR, t_max: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(np.sort(rng.integers(0, t_max, n)), rng.integers(0, sensor.width, n),
                       rng.integers(0, sensor.height, n), rng.integers(0, 2, n))


# ----------------------------------------------------------------------------- Gen1 .dat

def test_dat_round_trip_and_windows(tmp_path):
    ev = _events()
    path = write_dat(tmp_path / "a_td.dat", ev, SENSOR)
    f = DatFile(path)
    assert f.sensor == SENSOR and len(f) == len(ev) and f.event_type == 0
    assert np.array_equal(read_dat(path), ev)
    t0, t1 = 20_000, 45_000
    mask = (ev["t"] >= t0) & (ev["t"] < t1)
    assert np.array_equal(f.window(t0, t1), ev[mask])
    assert len(f.window(200_000, 300_000)) == 0
    f.verify()
    raw = path.read_bytes()
    assert raw.startswith(b"% Data file containing Event2D events.\n% Version 2\n")
    head = raw.index(b"% Height 48\n") + len(b"% Height 48\n")
    assert raw[head:head + 2] == bytes([0, 8])
    words = np.frombuffer(raw[head + 2:], dtype="<u4").reshape(-1, 2)
    assert np.array_equal(words[:, 1] & 0x3FFF, ev["x"]) and np.array_equal((words[:, 1] >> 14) & 0x3FFF, ev["y"])
    assert np.array_equal(words[:, 1] >> 28, ev["p"])


def test_dat_without_size_in_header_takes_the_given_sensor(tmp_path):
    ev = _events(20)
    words = np.empty(len(ev), dtype=[("t", "<u4"), ("a", "<u4")])
    words["t"] = ev["t"]
    words["a"] = ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14) | (ev["p"].astype(np.uint32) << 28)
    path = tmp_path / "gen1_td.dat"
    path.write_bytes(b"% Data file containing Event2D events.\n% Version 2\n% Date 2017-03-30\n" + bytes([0, 8])
                     + words.tobytes())
    assert DatFile(path).sensor is None
    f = DatFile(path, SensorSize(304, 240))
    assert f.sensor == SensorSize(304, 240) and np.array_equal(f.read(), ev)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-3], "truncated"),
    (lambda b: b"\x00\x01" + b, "no '%' header"),
    (lambda b: b.replace(bytes([0, 8]), bytes([0, 16]), 1), "event size byte is 16"),
    (lambda b: b[: b.index(b"% Height 48\n") + 12], "ends after its header"),
])
def test_bad_dat_files_are_one_clear_error(tmp_path, damage, message):
    path = write_dat(tmp_path / "x_td.dat", _events(50), SENSOR)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(EventFileError, match=message) as info:
        DatFile(path).read()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_events_out_of_order_are_named(tmp_path):
    ev = _events(50)
    path = write_dat(tmp_path / "x_td.dat", ev, SENSOR)
    raw = bytearray(path.read_bytes())
    start = len(raw) - 8 * len(ev)
    raw[start + 8 * 30: start + 8 * 30 + 4] = np.uint32(10 ** 9).tobytes()  # event 30 jumps ahead of 31
    path.write_bytes(bytes(raw))
    f = DatFile(path)
    with pytest.raises(EventFileError, match="out of time order: event 31"):
        f.read()
    with pytest.raises(EventFileError, match="out of time order"):
        f.verify()
    with pytest.raises(ValueError, match="sorted"):
        write_dat(tmp_path / "y_td.dat", ev[::-1].copy(), SENSOR)


# ------------------------------------------------------------------------- EVT 2.0 / 3.0

def test_evt2_words_decode_by_hand():
    high = (0x8 << 28) | 0x123  # time bits 33..6 = 0x123
    words = [(0x1 << 28) | (5 << 22) | (10 << 11) | 7,  # before any TIME_HIGH: dropped
             high,
             (0x1 << 28) | (5 << 22) | (10 << 11) | 7,
             (0x0 << 28) | (63 << 22) | (639 << 11) | 479,
             (0xA << 28) | 1,  # a trigger: no CD event
             (0x8 << 28) | 0x124,
             (0x1 << 28) | (0 << 22) | (1 << 11) | 2]
    ev = decode_evt2(np.array(words, dtype="<u4").tobytes())
    assert ev.tolist() == [((0x123 << 6) | 5, 10, 7, 1), ((0x123 << 6) | 63, 639, 479, 0), (0x124 << 6, 1, 2, 1)]


def test_evt3_words_decode_by_hand():
    w = [
        (0x8 << 12) | 0xFFF,  # TIME_HIGH
        (0x6 << 12) | 0x010,  # TIME_LOW
        (0x0 << 12) | 33,  # ADDR_Y = 33
        (0x2 << 12) | (1 << 11) | 100,  # one ON event at x=100
        (0x3 << 12) | (0 << 11) | 200,  # vector base x=200, OFF
        (0x4 << 12) | 0b100000000101,  # VECT_12: x=200, 202, 211
        (0x5 << 12) | 0b10000001,  # VECT_8: base now 212 -> x=212, 219
        (0x8 << 12) | 0x001,  # TIME_HIGH smaller: the 24-bit counter wrapped
        (0x6 << 12) | 0x002,
        (0x2 << 12) | 5,
    ]
    ev = decode_evt3(np.array(w, dtype="<u2").tobytes())
    t0 = (0xFFF << 12) | 0x010
    t1 = (1 << 24) + (0x001 << 12) + 0x002
    assert ev.tolist() == [(t0, 100, 33, 1), (t0, 200, 33, 0), (t0, 202, 33, 0), (t0, 211, 33, 0),
                           (t0, 212, 33, 0), (t0, 219, 33, 0), (t1, 5, 33, 0)]
    # the expelliarmus rule also counts a decrease of TIME_LOW (0x010 -> 0x002) as a wrap of it
    alt = decode_evt3(np.array(w, dtype="<u2").tobytes(), time_rule="expelliarmus")
    assert alt["t"].tolist() == [t0] * 6 + [t1 + 4096]


def test_raw_header_and_errors(tmp_path):
    path = tmp_path / "a.raw"
    path.write_bytes(b"% evt 2.0\n% format EVT2;height=48;width=64\n% end\n" + np.array(
        [(0x8 << 28) | 1, (0x1 << 28) | (3 << 11) | 4], "<u4").tobytes())
    rec = RawRecording(path)
    assert rec.encoding == "evt2" and rec.sensor == SensorSize(64, 48)
    assert rec.read().tolist() == [(64, 3, 4, 1)]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(EventFileError, match="truncated"):
        RawRecording(path)
    path.write_bytes(b"% evt 4.0\n" + bytes(8))
    with pytest.raises(EventFileError, match="spyolo decodes EVT 2.0 and EVT 3.0"):
        RawRecording(path)


@pytest.mark.skipif(not (REAL / "evt3_sample.npy").is_file(), reason="needs ../shared/realdata/events")
def test_real_evt3_sample_decoded_exactly():
    ref = np.load(REAL / "evt3_sample.npy")
    rec = RawRecording(REAL / "evt3_sample.raw", time_rule="expelliarmus")
    assert rec.sensor == SensorSize(1280, 720) and rec.encoding == "evt3"
    ev = rec.read()
    assert ev.dtype == EVENT_DTYPE and len(ev) == len(ref) == 219_596
    assert np.array_equal(ev, ref)  # every event, with the rule of the reader that wrote the reference
    spec = RawRecording(REAL / "evt3_sample.raw").read()  # the format's own time rule
    assert np.array_equal(spec[["x", "y", "p"]], ref[["x", "y", "p"]])
    shift = ref["t"] - spec["t"]
    assert np.all(shift % 4096 == 0) and np.all(np.diff(shift) >= 0) and np.all(np.diff(spec["t"]) >= 0)
    assert int(spec["t"][-1] - spec["t"][0]) == 8801 and int(ref["t"][-1] - ref["t"][0]) == 53857


@pytest.mark.skipif(not (REAL / "evt2_sample.raw").is_file(), reason="needs ../shared/realdata/events")
def test_real_evt2_sample():
    rec = RawRecording(REAL / "evt2_sample.raw")
    ev = rec.read()
    assert rec.sensor == SensorSize(640, 480) and len(ev) == 539_481
    assert (int(ev["t"][0]), int(ev["t"][-1])) == (1_317_888, 1_367_888)
    try:
        from expelliarmus import Wizard
    except ImportError:
        return
    assert np.array_equal(ev, Wizard(encoding="evt2").read(str(REAL / "evt2_sample.raw")))


# ---------------------------------------------------------------------------- box labels

def test_boxes_round_trip_clip_and_errors(tmp_path):
    t = np.array([100, 100, 200])
    boxes = np.array([[1, 2, 11, 22], [-5, 30, 20, 60], [50, 40, 70, 47]], np.float32)  # 2nd, 3rd reach off it
    path = write_boxes(tmp_path / "a_bbox.npy", t, boxes, [0, 1, 1])
    assert np.load(path).dtype == GEN1_BOX_DTYPE
    lab = read_boxes(path, SENSOR)
    assert lab.clipped == 2 and lab.times().tolist() == [100, 200]
    assert lab.at(200)[0].tolist() == [[50, 40, 64, 47]]
    b, c = lab.at(100)
    assert b.tolist() == [[1, 2, 11, 22], [0, 30, 20, 48]] and c.tolist() == [0, 1]
    rows = np.load(path)
    renamed = rows.astype([("t" if n == "ts" else n, rows.dtype[n]) for n in rows.dtype.names])
    np.save(tmp_path / "b_bbox.npy", renamed)
    assert read_boxes(tmp_path / "b_bbox.npy", SENSOR).t.tolist() == [100, 100, 200]

    def bad(mutate, message):
        r = np.load(path).copy()
        mutate(r)
        np.save(tmp_path / "bad_bbox.npy", r)
        with pytest.raises(EventFileError, match=message):
            read_boxes(tmp_path / "bad_bbox.npy", SENSOR)

    bad(lambda r: r.__setitem__("x", [1, 70, 50]), "box 1 .* entirely outside the 64x48 sensor")
    bad(lambda r: r.__setitem__("ts", [300, 100, 200]), "box 1 .* out of order")
    bad(lambda r: r.__setitem__("w", [0, 1, 1]), "box 0 .* positive")
    np.save(tmp_path / "bad_bbox.npy", np.zeros(3, dtype=[("ts", "<u8"), ("x", "<f4")]))
    with pytest.raises(EventFileError, match="no 'y' field"):
        read_boxes(tmp_path / "bad_bbox.npy", SENSOR)


# ------------------------------------------------------------------------------- frames

def test_bin_events_counts_binary_flip_and_scale():
    ev = make_events(np.array([0, 9, 10, 24, 25, 39, 40, 99]), np.array([1, 1, 2, 3, 4, 5, 6, 7]),
                     np.array([0, 0, 1, 2, 3, 4, 5, 6]), np.array([1, 1, 0, 1, 0, 1, 1, 0]))
    geo = FrameGeometry(SensorSize(8, 8), 32)
    f = bin_events(ev, 40, 40, 4, geo)  # window [0, 40): bins of 10 us; t=40 and 99 are outside
    assert f.shape == (4, 2, 32, 32) and f.sum() == 6
    assert f[0, 1, 0, 1] == 2 and f[1, 0, 1, 2] == 1 and f[2, 1, 2, 3] == 1 and f[2, 0, 3, 4] == 1
    assert f[3, 1, 4, 5] == 1
    assert bin_events(ev, 40, 40, 4, geo, "binary")[0, 1, 0, 1] == 1
    flipped = bin_events(ev, 40, 40, 4, geo, flip=True)
    assert flipped[0, 1, 0, 8 - 1 - 1] == 2
    big = FrameGeometry(SensorSize(128, 64), 32, "scale")
    assert big.size == (32, 16) and big.letterbox == (0.25, 0, 0)
    ev2 = make_events(np.array([5, 5]), np.array([127, 3]), np.array([63, 3]), np.array([1, 1]))
    g = bin_events(ev2, 10, 10, 1, big)
    assert g[0, 1, 15, 31] == 1 and g[0, 1, 0, 0] == 1
    with pytest.raises(ValueError, match="does not fit"):
        FrameGeometry(SensorSize(304, 240), 256)


def test_gen1_protocol():
    p = Gen1Protocol()
    keep = p.keeps(np.array([[0, 0, 30, 30], [0, 0, 9, 40], [0, 0, 20, 20], [0, 0, 25, 12]]))
    assert keep.tolist() == [True, False, False, False]  # diag 42; side 9; diag 28; diag 27.7 < 30
    assert not p.keeps_time(500_000) and p.keeps_time(500_001)
