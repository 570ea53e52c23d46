"""Multi-object tracking: detections per frame -> tracks with stable ids (ByteTrack).

- kalman.py:    constant-velocity Kalman filter on (cx, cy, aspect, h), batched over tracks
- matching.py:  IoU cost, score fusion, class gating, thresholded linear assignment (scipy)
- bytetrack.py: ByteTracker (``openyolox.Tracker``) and Tracks, one frame's result
- mot_io.py:    MOTChallenge txt read/write, tracks.json
- draw.py:      boxes coloured by track id, "id class" labels, trails of past centres
- synthetic.py: synthetic sequences with ground truth, and noisy detections made from it

Arrays in, arrays out: nothing here needs torch. Metrics live in openyolox/evaluation/mot.py.
"""
_LAZY = {"ByteTracker": "openyolox.tracking.bytetrack", "Tracker": "openyolox.tracking.bytetrack",
         "Tracks": "openyolox.tracking.bytetrack"}


def __getattr__(name):  # lazy: reading a MOT file should not need scipy
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, "ByteTracker" if name == "Tracker" else name)
    raise AttributeError(f"module 'openyolox.tracking' has no attribute '{name}'")


__all__ = ["ByteTracker", "Tracker", "Tracks"]
