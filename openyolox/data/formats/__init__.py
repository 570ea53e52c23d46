"""Dataset readers: each turns one on-disk layout into a :class:`DatasetSplit`.

- :mod:`.coco`: COCO json (a root with ``annotations/``, or one json file)
- :mod:`.voc`: Pascal VOC xml (a VOC root or a VOCdevkit)
- :mod:`.yolo`: YOLO txt labels described by a ``data.yaml``
- :mod:`.synthetic`: the built-in shapes dataset, generated on first use as a COCO layout

Most code should call :func:`openyolox.data.layouts.load_split`, which detects the layout.
"""
from openyolox.data.formats.coco import coco_dict, load_coco_json, load_coco_root
from openyolox.data.formats.synthetic import ensure_builtin, generate_builtin
from openyolox.data.formats.voc import VOC_CLASSES, load_voc, load_vocdevkit
from openyolox.data.formats.yolo import load_yolo

__all__ = ["coco_dict", "load_coco_json", "load_coco_root", "ensure_builtin", "generate_builtin",
           "VOC_CLASSES", "load_voc", "load_vocdevkit", "load_yolo"]
