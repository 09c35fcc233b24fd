"""Tests of the exact VOC evaluator (spyolo.eval.voc) and the COCO bridge.

Every rule of the protocol gets one hand-computed case; the expected AP is
worked out in the comments. Boxes are x1, y1, x2, y2 in VOC pixels with the
"+1" convention (a box 0..9 is 10 pixels wide).
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spyolo.eval.textfiles import evaluator_from_text, load_text_results
from spyolo.eval.voc import VOCEvaluator, area_ap, box_iou_voc, voc07_ap

FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "sfptt_voc07_test_results.tar.gz"
)


def _ev(classes: list[str] | None = None, **kw: object) -> VOCEvaluator:
    return VOCEvaluator(classes or ["a"], **kw)


def _no_nan(res: dict) -> None:
    values = [res["map"], res["map_voc07"], res["map_area"]]
    for key in ("ap", "ap_voc07", "ap_area"):
        values += list(res[key].values())
    assert all(math.isfinite(v) for v in values)


# --------------------------------------------------------------------------- IoU
def test_iou_exactly_half_is_a_match() -> None:
    # GT 0..9 x 0..9 -> 10*10 = 100 px. Det 0..9 x 0..19 -> 10*20 = 200 px.
    # Intersection 100, union 200 + 100 - 100 = 200 -> IoU = 0.5 exactly.
    gt = [[0, 0, 9, 9]]
    assert box_iou_voc(np.array([0, 0, 9, 19]), np.array(gt))[0] == 0.5
    ev = _ev()
    ev.add_ground_truth("img", gt, [0], [False])
    ev.add_detections("img", [[0, 0, 9, 19]], [0.9], [0])
    res = ev.compute()
    # IoU >= 0.5 (inclusive) -> TP; recall 1 at precision 1 -> AP 1 in both metrics
    assert res["tp"]["a"] == 1 and res["fp"]["a"] == 0
    assert res["map_voc07"] == 1.0 and res["map_area"] == 1.0

    # one more row: 0..9 x 0..20 -> 210 px, IoU = 100/210 < 0.5 -> FP, AP 0
    ev = _ev()
    ev.add_ground_truth("img", gt, [0], [False])
    ev.add_detections("img", [[0, 0, 9, 20]], [0.9], [0])
    res = ev.compute()
    assert res["fp"]["a"] == 1 and res["map_voc07"] == 0.0 and res["map_area"] == 0.0


def test_one_pixel_box_has_area_one() -> None:
    # x1 == x2, y1 == y2: a 1x1 box (area 1 with +1, zero without).
    # vs itself: 1/1 = 1; vs 5..6 x 5..5 (area 2): inter 1, union 2 -> 0.5;
    # vs 6..6 x 6..6: no overlap -> 0.
    iou = box_iou_voc(np.array([5, 5, 5, 5]), np.array([[5, 5, 5, 5], [5, 5, 6, 5], [6, 6, 6, 6]]))
    assert iou.tolist() == [1.0, 0.5, 0.0]
    ev = _ev()
    ev.add_ground_truth(0, [[5, 5, 5, 5]], [0], [False])
    ev.add_detections(0, [[5, 5, 5, 5]], [0.5], [0])
    res = ev.compute()
    assert res["tp"]["a"] == 1 and res["map_area"] == 1.0 and res["map_voc07"] == 1.0


# --------------------------------------------------------------- 11-point edges
def test_recall_exactly_point_three_misses_the_devkit_threshold() -> None:
    # 10 GT objects, 3 detections, all TP: recall 0.1, 0.2, 0.3 at precision 1.
    # The devkit thresholds are np.arange(0, 1.1, 0.1); the 4th is
    # 0.30000000000000004 > 3/10 == 0.3, so only t = 0, 0.1, 0.2 are reached:
    # AP07 = 3/11 = 0.2727 (exact decimal thresholds would give 4/11).
    # Area: recall steps 0.1 x 3 at precision 1 -> 0.3.
    assert np.arange(0.0, 1.1, 0.1)[3] > 3 / 10
    ev = _ev()
    for i in range(10):
        ev.add_ground_truth(i, [[0, 0, 9, 9]], [0], [False])
    for i in range(3):
        ev.add_detections(i, [[0, 0, 9, 9]], [0.9 - 0.1 * i], [0])
    res = ev.compute()
    assert res["curves"]["a"]["recall"][-1] == 0.3
    assert res["map_voc07"] == pytest.approx(3 / 11, abs=1e-12)
    assert res["map_area"] == pytest.approx(0.3, abs=1e-12)


def test_ap_functions_on_hand_curves() -> None:
    # recall [0.5, 0.5], precision [1, 0.5]: 11-pt -> t in {0..0.5} (6 values) at 1 -> 6/11;
    # area: envelope 1 up to recall 0.5, then 0 -> 0.5
    assert voc07_ap(np.array([0.5, 0.5]), np.array([1.0, 0.5])) == pytest.approx(6 / 11)
    assert area_ap(np.array([0.5, 0.5]), np.array([1.0, 0.5])) == pytest.approx(0.5)
    # empty curve -> 0 for both
    assert voc07_ap(np.zeros(0), np.zeros(0)) == 0.0
    assert area_ap(np.zeros(0), np.zeros(0)) == 0.0
    # envelope: recall [0.25, 0.5, 0.75], precision [0.5, 1/3, 0.75]
    # envelope -> [0.75, 0.75, 0.75]; area = 0.75 * 0.75 = 0.5625
    # 11-pt: t <= 0.7 (8 values: 0..0.7) max prec at rec >= t = 0.75; t >= 0.8 -> 0
    # -> 8 * 0.75 / 11 = 0.5455
    rec = np.array([0.25, 0.5, 0.75])
    prec = np.array([0.5, 1 / 3, 0.75])
    assert area_ap(rec, prec) == pytest.approx(0.5625)
    assert voc07_ap(rec, prec) == pytest.approx(8 * 0.75 / 11)


# ----------------------------------------------------------------- matching rules
def test_difficult_box_is_ignored_and_not_consumed() -> None:
    # GT: A (difficult) and B (normal) -> npos = 1.
    # d1 (0.9) on A -> ignored; d2 (0.8) on B -> TP; d3 (0.7) on A again -> ignored
    # (the difficult box is never "matched", and never makes an FP).
    # tp = [0,1,0], fp = [0,0,0] -> recall [0,1,1], precision [0,1,1] -> AP 1 both.
    # (had d1 counted as FP: precision 0.5 at recall 1 -> AP 0.5)
    ev = _ev()
    ev.add_ground_truth("i", [[0, 0, 9, 9], [20, 20, 29, 29]], [0, 0], [True, False])
    ev.add_detections("i", [[0, 0, 9, 9], [20, 20, 29, 29], [0, 0, 9, 9]],
                      [0.9, 0.8, 0.7], [0, 0, 0])
    res = ev.compute()
    assert res["npos"]["a"] == 1
    assert (res["tp"]["a"], res["fp"]["a"], res["ignored"]["a"]) == (1, 0, 2)
    assert res["map_voc07"] == 1.0 and res["map_area"] == 1.0


def test_duplicate_is_fp_even_with_another_free_box() -> None:
    # GT A = 0..9 x 0..9 and B = 0..9 x 0..11 (IoU(A, B) = 100/120).
    # d1 = d2 = A's box: best overlap is A (1.0 > 0.833) for both.
    # d1 -> TP (A matched); d2 -> best is still A, already matched -> FP,
    # although B is free with IoU 0.833 (no fall-back to the next-best box).
    # npos 2: recall [0.5, 0.5], precision [1, 0.5]
    # 11-pt: t = 0..0.5 (6 values) at 1 -> 6/11 = 0.5455; area: 0.5 * 1 = 0.5
    # (a fall-back would give recall [0.5, 1] at precision 1 -> AP 1)
    ev = _ev()
    ev.add_ground_truth("i", [[0, 0, 9, 9], [0, 0, 9, 11]], [0, 0], [False, False])
    ev.add_detections("i", [[0, 0, 9, 9], [0, 0, 9, 9]], [0.9, 0.8], [0, 0])
    res = ev.compute()
    assert (res["tp"]["a"], res["fp"]["a"]) == (1, 1)
    assert res["map_voc07"] == pytest.approx(6 / 11)
    assert res["map_area"] == pytest.approx(0.5)


def test_class_without_detections_and_class_without_gt() -> None:
    # a: 1 GT, 1 TP -> AP 1. b: 1 GT, no detection -> AP 0.
    # c: no GT, one detection -> excluded; d: only a difficult GT (npos 0) -> excluded.
    # mAP = (1 + 0) / 2 = 0.5 in both metrics, no NaN anywhere.
    ev = VOCEvaluator(["a", "b", "c", "d"])
    ev.add_ground_truth(1, [[0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49]], [0, 1, 3],
                        [False, False, True])
    ev.add_detections(1, [[0, 0, 9, 9], [60, 60, 69, 69]], [0.9, 0.4], [0, 2])
    res = ev.compute()
    assert res["ap_voc07"] == {"a": 1.0, "b": 0.0}
    assert res["ap_area"] == {"a": 1.0, "b": 0.0}
    assert res["classes_without_gt"] == ["c", "d"]
    assert res["map_voc07"] == 0.5 and res["map_area"] == 0.5
    assert res["fp"]["c"] == 1 and res["npos"]["d"] == 0
    assert set(res["curves"]) == {"a", "b"}
    _no_nan(res)


def test_detections_on_images_without_ground_truth_are_fp() -> None:
    # img "x" never had GT, img "y" had an empty GT list, img "g" has the only box.
    # sorted: x 0.9 FP, y 0.85 FP, g 0.8 TP -> precision 1/3 at recall 1:
    # 11-pt: 1/3 at every threshold -> 1/3; area: 1 * 1/3 = 1/3.
    ev = _ev()
    ev.add_ground_truth("g", [[0, 0, 9, 9]], [0], [False])
    ev.add_ground_truth("y", np.zeros((0, 4)), [], [])
    ev.add_detections("x", [[0, 0, 9, 9]], [0.9], [0])
    ev.add_detections("y", [[0, 0, 9, 9]], [0.85], [0])
    ev.add_detections("g", [[0, 0, 9, 9]], [0.8], [0])
    res = ev.compute()
    assert (res["tp"]["a"], res["fp"]["a"]) == (1, 2)
    assert res["num_detections_without_gt_image"] == 1
    assert res["map_voc07"] == pytest.approx(1 / 3)
    assert res["map_area"] == pytest.approx(1 / 3)


def test_tied_scores_keep_insertion_order() -> None:
    # Two detections with the same score 0.5: a miss (FP) added first, a hit added second.
    # Stable order FP, TP -> recall [0, 1], precision [0, 0.5] -> AP 0.5 (both metrics).
    # Reversed insertion TP, FP -> recall [1, 1], precision [1, 0.5] -> AP 1.
    def run(order: list[int]) -> dict:
        boxes = [[50, 50, 59, 59], [0, 0, 9, 9]]  # [miss, hit]
        ev = _ev()
        ev.add_ground_truth("i", [[0, 0, 9, 9]], [0], [False])
        for k in order:
            ev.add_detections("i", [boxes[k]], [0.5], [0])
        return ev.compute()

    res = run([0, 1])
    assert res["map_voc07"] == pytest.approx(0.5) and res["map_area"] == pytest.approx(0.5)
    res = run([1, 0])
    assert res["map_voc07"] == 1.0 and res["map_area"] == 1.0


def test_torch_inputs_match_numpy() -> None:
    gt_boxes = [[0, 0, 9, 9], [0, 0, 9, 11], [20, 20, 29, 29]]
    det_boxes = [[0, 0, 9, 9], [0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 45, 45]]
    scores = [0.9, 0.8, 0.7, 0.6]
    ev_np = _ev(["a", "b"])
    ev_np.add_ground_truth(0, np.array(gt_boxes), np.array([0, 0, 1]),
                           np.array([False, False, True]))
    ev_np.add_detections(0, np.array(det_boxes), np.array(scores), np.array([0, 0, 1, 1]))
    ev_t = _ev(["a", "b"])
    ev_t.add_ground_truth(0, torch.tensor(gt_boxes, dtype=torch.float32), torch.tensor([0, 0, 1]),
                          torch.tensor([False, False, True]))
    ev_t.add_detections(0, torch.tensor(det_boxes, dtype=torch.float32, requires_grad=True),
                        torch.tensor(scores), torch.tensor([0, 0, 1, 1]))
    ev_t.add_detections(1, torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    r_np, r_t = ev_np.compute(), ev_t.compute()
    # a: as in the duplicate test -> 6/11 and 0.5; b has only a difficult box -> excluded
    assert r_t["ap_voc07"] == r_np["ap_voc07"] == {"a": pytest.approx(6 / 11)}
    assert r_t["ap_area"] == r_np["ap_area"] == {"a": pytest.approx(0.5)}
    assert r_t["classes_without_gt"] == ["b"]


def test_metric_selects_map_and_both_are_returned() -> None:
    # duplicate case again: 11-pt 6/11, area 0.5
    def fill(ev: VOCEvaluator) -> dict:
        ev.add_ground_truth("i", [[0, 0, 9, 9], [0, 0, 9, 11]], [0, 0], [False, False])
        ev.add_detections("i", [[0, 0, 9, 9], [0, 0, 9, 9]], [0.9, 0.8], [0, 0])
        return ev.compute()

    r07 = fill(_ev(metric="voc07"))
    rarea = fill(_ev(metric="area"))
    assert r07["map"] == r07["map_voc07"] == pytest.approx(6 / 11)
    assert rarea["map"] == rarea["map_area"] == pytest.approx(0.5)
    assert r07["ap"] == r07["ap_voc07"] and rarea["ap"] == rarea["ap_area"]
    assert r07["map_area"] == rarea["map_area"] and r07["map_voc07"] == rarea["map_voc07"]


def test_accumulation_appends_and_reset_clears() -> None:
    # Two GT calls for image 0 append: npos 2. One TP -> recall 0.5 at precision 1:
    # 11-pt 6/11, area 0.5.
    ev = _ev()
    ev.add_ground_truth(0, [[0, 0, 9, 9]], [0], [False])
    ev.add_ground_truth(0, [[30, 30, 39, 39]], [0], [False])
    ev.add_detections(0, [[30, 30, 39, 39]], [0.3], [0])
    res = ev.compute()
    assert res["npos"]["a"] == 2 and res["num_images"] == 1
    assert res["map_voc07"] == pytest.approx(6 / 11) and res["map_area"] == pytest.approx(0.5)
    ev.reset()
    with pytest.raises(ValueError, match="no class has a non-difficult"):
        ev.compute()


def test_input_validation_errors() -> None:
    ev = _ev(["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        ev.add_ground_truth(0, [[0, 0, 9]], [0], [False])
    with pytest.raises(ValueError, match="outside"):
        ev.add_ground_truth(0, [[0, 0, 9, 9]], [2], [False])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ev.add_detections(0, [[0, 0, 9, 9], [1, 1, 5, 5]], [0.5], [0, 1])
    with pytest.raises(ValueError, match="x2 < x1"):
        ev.add_detections(0, [[9, 0, 0, 9]], [0.5], [0])
    with pytest.raises(ValueError, match="non-integral"):
        ev.add_detections(0, [[0, 0, 9, 9]], [0.5], [0.5])
    with pytest.raises(ValueError, match="non-finite"):
        ev.add_detections(0, [[0, 0, 9, 9]], [float("nan")], [0])
    with pytest.raises(ValueError, match="difficult"):
        ev.add_ground_truth(0, [[0, 0, 9, 9]], [0], [2])
    with pytest.raises(ValueError, match="metric"):
        VOCEvaluator(["a"], metric="coco")
    with pytest.raises(ValueError, match="duplicates"):
        VOCEvaluator(["a", "a"])


# ----------------------------------------- agreement with a literal devkit loop
def _devkit_reference(gts: dict, dets: list, cls: int, thr: float) -> tuple[float, float]:
    """Literal transcription of the devkit's per-detection loop (slow, obvious)."""
    recs = {}
    npos = 0
    for img, (boxes, labels, diff) in gts.items():
        keep = labels == cls
        recs[img] = {"bb": boxes[keep], "diff": diff[keep], "det": [False] * int(keep.sum())}
        npos += int((~diff[keep]).sum())
    mine = [d for d in dets if d[3] == cls]
    order = np.argsort(-np.array([d[1] for d in mine]), kind="stable")
    tp = np.zeros(len(mine))
    fp = np.zeros(len(mine))
    for k, j in enumerate(order):
        img, _, bb, _ = mine[j]
        r = recs.get(img)
        ovmax = -np.inf
        if r is not None and len(r["bb"]):
            g = r["bb"]
            iw = np.maximum(np.minimum(g[:, 2], bb[2]) - np.maximum(g[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(g[:, 3], bb[3]) - np.maximum(g[:, 1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (g[:, 2] - g[:, 0] + 1.0) * (g[:, 3] - g[:, 1] + 1.0) - inters)
            ov = inters / uni
            ovmax, jmax = ov.max(), int(ov.argmax())
        if ovmax >= thr:
            if not r["diff"][jmax]:
                if not r["det"][jmax]:
                    tp[k] = 1
                    r["det"][jmax] = True
                else:
                    fp[k] = 1
        else:
            fp[k] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap07 = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        ap07 += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) / 11.0
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(ap07), float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matching_equals_devkit_loop(seed: int) -> None:
    # GT boxes on a small grid (overlapping each other), detections = jittered
    # copies of GT boxes (IoU around the threshold, duplicates, hits on
    # difficult boxes, wrong classes) plus random boxes; scores rounded to one
    # decimal (many ties); three images have no GT. Same AP as the devkit loop.
    rng = np.random.default_rng(seed)
    ncls = 3
    ev = VOCEvaluator(["a", "b", "c"])
    gts: dict = {}
    dets: list = []
    totals = np.zeros(3, dtype=int)  # tp, fp, ignored over classes

    def rand_boxes(n: int) -> np.ndarray:
        xy = rng.integers(0, 20, size=(n, 2))
        wh = rng.integers(3, 15, size=(n, 2))
        return np.concatenate([xy, xy + wh], axis=1).astype(float)

    for img in range(30):
        n = int(rng.integers(0, 6))
        b, lab, dif = rand_boxes(n), rng.integers(0, ncls, n), rng.random(n) < 0.25
        if img < 27:
            gts[img] = (b, lab, dif)
            ev.add_ground_truth(img, b, lab, dif)
        copies = rng.integers(0, 4, size=n)
        src = np.repeat(np.arange(n), copies)
        jit = b[src] + rng.integers(-3, 4, size=(src.size, 4))
        jit[:, 2:] = np.maximum(jit[:, 2:], jit[:, :2])
        db = np.concatenate([jit, rand_boxes(int(rng.integers(0, 4)))])
        same = rng.random(src.size) < 0.85
        dl = np.concatenate([np.where(same, lab[src], rng.integers(0, ncls, src.size)),
                             rng.integers(0, ncls, db.shape[0] - src.size)]).astype(int)
        ds = np.round(rng.random(db.shape[0]), 1)
        ev.add_detections(img, db, ds, dl)
        dets += [(img, float(ds[k]), db[k], int(dl[k])) for k in range(db.shape[0])]
    res = ev.compute()
    for name in ev.class_names:
        totals += [res["tp"][name], res["fp"][name], res["ignored"][name]]
    assert np.all(totals > 0)  # the data exercise TP, FP and ignored detections
    for c, name in enumerate(ev.class_names):
        if name in res["classes_without_gt"]:
            continue
        ref07, ref_area = _devkit_reference(gts, dets, c, 0.5)
        # same matching; sums may differ in the last float bits (fsum vs running sum)
        assert res["ap_voc07"][name] == pytest.approx(ref07, abs=1e-12)
        assert res["ap_area"][name] == pytest.approx(ref_area, abs=1e-12)


# ------------------------------------------------------------------------- COCO
def test_coco_map_on_hand_cases() -> None:
    # GT 0..9 x 0..9 (COCO [0, 0, 10, 10]); det 0..9 x 0..15 -> IoU 100/160 = 0.625.
    # matched at IoU thresholds 0.50, 0.55, 0.60 (3 of 10) with precision 1 ->
    # AP@[.5:.95] = 0.3, AP@.5 = 1, AP@.75 = 0.
    # A difficult box (crowd in COCO) with a detection on it: ignored.
    ev = _ev()
    ev.add_ground_truth(0, [[0, 0, 9, 9], [50, 50, 69, 69]], [0, 0], [False, True])
    ev.add_detections(0, [[0, 0, 9, 15], [50, 50, 69, 69]], [0.9, 0.95], [0, 0])
    coco = ev.compute_coco()
    assert coco["map_coco"] == pytest.approx(0.3)
    assert coco["map50_coco"] == pytest.approx(1.0)
    assert coco["map75_coco"] == pytest.approx(0.0)
    assert coco["ap_coco"] == {"a": pytest.approx(0.3)}


def test_coco_map_without_detections_is_zero(capsys: pytest.CaptureFixture[str]) -> None:
    ev = _ev()
    ev.add_ground_truth(0, [[0, 0, 9, 9]], [0], [False])
    assert ev.compute_coco()["map_coco"] == 0.0
    ev.add_detections(0, [[0, 0, 9, 9]], [0.9], [0])
    assert ev.compute_coco()["map_coco"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


# ---------------------------------------------------------------- real fixture
@pytest.fixture(scope="module")
def fixture_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not FIXTURE.is_file():
        pytest.skip(f"fixture not present: {FIXTURE}")
    out = tmp_path_factory.mktemp("sfptt")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(out, filter="data")
    return out / "ground-truth", out / "detection-results"


def test_released_model_fixture(fixture_dirs: tuple[Path, Path]) -> None:
    gt_dir, det_dir = fixture_dirs
    data = load_text_results(gt_dir, det_dir)
    assert data.warnings == []
    res = evaluator_from_text(data).compute()
    assert sum(res["num_detections"].values()) == 236_863
    assert round(100 * res["map_voc07"], 2) == 52.85
    assert round(100 * res["map_area"], 2) == 53.13
    expected_area = {
        "aeroplane": 62.72, "bicycle": 67.43, "bird": 36.59, "boat": 35.25, "bottle": 25.73,
        "bus": 66.70, "car": 78.10, "cat": 60.12, "chair": 35.98, "cow": 43.33,
        "diningtable": 53.59, "dog": 47.97, "horse": 64.94, "motorbike": 68.94,
        "person": 71.01, "pottedplant": 23.37, "sheep": 47.40, "sofa": 49.80,
        "train": 73.10, "tvmonitor": 50.53,
    }
    assert {k: round(100 * v, 2) for k, v in res["ap_area"].items()} == expected_area


def test_map_of_images_gives_compute_on_all_images_and_scores_resamples() -> None:
    """The bootstrap's scorer: range(n) gives compute()'s values; a repeated image counts twice."""
    from spyolo.eval.voc import VOCEvaluator, map_of_images

    rng = np.random.default_rng(0)
    ev = VOCEvaluator(["a", "b"])
    for i in range(25):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 100, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1)
        ev.add_ground_truth(f"im{i}", gt, rng.integers(0, 2, n), rng.random(n) < 0.1)
        m = int(rng.integers(0, 5))
        xy = rng.uniform(0, 100, (m, 2))
        det = np.concatenate([np.concatenate([xy, xy + rng.uniform(5, 40, (m, 2))], 1),
                              gt + np.abs(rng.normal(0, 1, gt.shape)) * [-1, -1, 1, 1]])
        ev.add_detections(f"im{i}", det, rng.random(len(det)), rng.integers(0, 2, len(det)))
    res, records = ev.compute(), ev.records()
    assert map_of_images(records, range(25)) == (res["map_voc07"], res["map_area"])
    # an evaluator given every image twice (distinct ids) agrees with the doubled index list
    twice = VOCEvaluator(["a", "b"])
    gt, det = ev.ground_truth_arrays(), ev.detection_arrays()
    for copy in range(2):
        for i in range(25):
            g, d = gt["image"] == i, det["image"] == i
            twice.add_ground_truth((copy, i), gt["boxes"][g], gt["labels"][g], gt["difficult"][g])
            twice.add_detections((copy, i), det["boxes"][d], det["scores"][d], det["labels"][d])
    doubled = twice.compute()
    assert map_of_images(records, list(range(25)) * 2) == pytest.approx((doubled["map_voc07"], doubled["map_area"]))
