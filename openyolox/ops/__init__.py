"""Box operations and NMS shared by training, evaluation, inference and export."""
