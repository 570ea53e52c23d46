"""Training: SimOTA label assignment, the YOLOX loss, and the training loop."""
