"""Cameras: frame sources (sources.py), the face tracker with per-track decisions (tracker.py), the camera
loop that runs the engine on frames (loop.py) and the camera's priority over API requests (priority.py)."""
