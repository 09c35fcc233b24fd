#!/usr/bin/env python3
"""Reference detections of a Darknet YOLOv4-tiny from OpenCV's independent Darknet reader.

    python benchmarks/darknet_reference.py --cfg yolov4-tiny.cfg --weights yolov4-tiny.weights \\
        --names coco.names bus.jpg zidane.jpg > reference.json

Runs in a side environment with ``opencv-python-headless`` 4.x and numpy only (OpenCV 5 dropped
``cv2.dnn.readNetFromDarknet``; spyolo does not depend on it and this script does not import
spyolo). The protocol is Darknet's detector at a 416x416 stretch: ``blobFromImage`` (RGB / 255,
bilinear resize, no crop), the two ``[yolo]`` outputs, score = objectness x class probability
for the best class, score >= ``--conf``, per-class NMS at ``--nms`` (``cv2.dnn.NMSBoxes``), boxes
in original-image pixels ``(x1, y1, x2, y2)``. It also prints the raw outputs of the two head
convolutions (``conv_29`` / ``conv_36``) at a few positions, and the input blob's checksum.
``tests/test_darknet.py`` keeps the numbers this gave for the original COCO weights.
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np


def detect(net, image: np.ndarray, size: int, conf: float, nms: float) -> tuple[list[dict], dict]:
    blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (size, size), swapRB=True, crop=False)
    net.setInput(blob)
    names = net.getUnconnectedOutLayersNames()
    outs = net.forward(list(names) + ["conv_29", "conv_36"])
    rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outs[: len(names)]], axis=0)
    height, width = image.shape[:2]
    classes = rows[:, 5:].argmax(axis=1)
    scores = rows[np.arange(len(rows)), 5 + classes]
    keep = scores >= conf
    rows, classes, scores = rows[keep], classes[keep], scores[keep]
    boxes = np.stack([(rows[:, 0] - rows[:, 2] / 2) * width, (rows[:, 1] - rows[:, 3] / 2) * height,
                      (rows[:, 0] + rows[:, 2] / 2) * width, (rows[:, 1] + rows[:, 3] / 2) * height], axis=1)
    detections = []
    for cls in np.unique(classes):
        idx = np.flatnonzero(classes == cls)
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes[idx]]
        kept = cv2.dnn.NMSBoxes(xywh, scores[idx].astype(float).tolist(), conf, nms)
        for k in np.asarray(kept).reshape(-1):
            i = idx[int(k)]
            detections.append({"class": int(cls), "score": round(float(scores[i]), 5),
                               "box": [round(float(v), 2) for v in boxes[i]]})
    detections.sort(key=lambda d: -d["score"])
    raw = {"conv_29": outs[-2], "conv_36": outs[-1]}
    probes = {name: {"shape": list(a.shape),
                     "sample": [round(float(v), 4) for v in a.reshape(-1)[:: max(1, a.size // 16)][:16]]}
              for name, a in raw.items()}
    probes["blob_sum"] = round(float(blob.sum()), 3)
    return detections, probes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--names")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--nms", type=float, default=0.45)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    net = cv2.dnn.readNetFromDarknet(args.cfg, args.weights)
    names = open(args.names).read().split("\n") if args.names else None
    result = {"opencv": cv2.__version__, "size": args.size, "conf": args.conf, "nms": args.nms, "images": {}}
    for path in args.images:
        image = cv2.imread(path)
        if image is None:
            print(f"error: {path}: cannot read the image", file=sys.stderr)
            return 2
        detections, probes = detect(net, image, args.size, args.conf, args.nms)
        if names:
            for d in detections:
                d["name"] = names[d["class"]]
        result["images"][path.rsplit("/", 1)[-1]] = {"detections": detections, "raw": probes}
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
