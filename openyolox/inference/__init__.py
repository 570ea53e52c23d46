"""Inference: letterboxed input -> model -> decoded outputs -> detections in image pixels."""
