"""Dataset checks: quick ones before every training run, full ones in ``openyolox check-data``.

- :mod:`.report`: :class:`Issue`, :class:`CheckReport`, :class:`DatasetReport` and the kinds below
- :mod:`.checks`: the checks (:func:`check_split`, :func:`check_split_full`, :func:`check_dataset`)
- :mod:`.boxes`: the vectorised box checks and statistics both of the others use
- :mod:`.clean`: a split without what the checks found (:func:`drop_bad_samples` for
  ``train --skip-bad``, :func:`write_clean_copy` for ``check-data --fix-out``)

Every problem is an :class:`Issue` naming the file (``path: kind: detail``). Its severity
follows from its kind (:data:`KINDS`): an *error* is something training would get wrong or
stop on; a *warning* is legal but probably not what was meant.

Errors
  load-failed         a split cannot be read at all (invalid json/yaml, missing split list...)
  bad-annotation      an entry the reader cannot parse (missing keys, wrong number of values,
                      non-numeric or non-normalised coordinates); it is skipped
  missing-annotation  VOC: an id in the split list without Annotations/<id>.xml
  missing-image       an annotated image whose file does not exist (COCO image entry, VOC xml,
                      YOLO image list entry)
  unreadable-image    the file exists but does not decode: empty, truncated (a JPEG whose pixel
                      data is cut: "N of H rows missing", rows some decoders fill with grey and
                      call success; a PNG without its end) [quick], or corrupt inside [full]
  size-mismatch       the decoded size (EXIF orientation applied: what viewers show) differs
                      from the size in the annotation [full]
  box-not-finite, box-no-area (zero or negative width/height), box-outside (extends past the
                      image by more than the tolerance; the detail says by how much and where)
  class-out-of-range  a class index outside the class list (YOLO class id)
  unknown-class       VOC: an object name not in the class list
  unknown-category    COCO: an annotation whose category_id is not in 'categories'
  unknown-image-id    COCO: an annotation whose image_id is not in 'images'
  duplicate-image-id  the same image id twice (COCO 'images', a VOC split list)
  label-without-image YOLO: a label file whose image does not exist [full]

Warnings
  duplicate-box       the same box with the same class twice in one image
  duplicate-image-file two image entries pointing at the same file
  no-label-file       YOLO: an image without a label file (a background image, which is valid) [full]
  image-without-annotation VOC: an image in JPEGImages/ without an xml [full]
  empty-split         a split without images
  image-truncated-trailer a JPEG that lost only its end marker: every pixel is there, so it is
                      used (with an ImageRepairedWarning); --fix-out writes it complete [quick]

[full]: only found by the full check, which decodes every image. The quick check
(:func:`check_split`, run by the trainer on every start) reads the last bytes of each image
file (:func:`openyolox.data.image_io.probe_image`) and no image data unless those bytes are
wrong ([quick]: found by both), and is vectorised over all boxes: about 20 us per image on a
local disk, so ~2 s on COCO train2017 (118k images, 860k boxes).
"""
from openyolox.data.checks.checks import (bad_box_mask, check_dataset, check_images, check_split, check_split_full,
                                          layout_issues)
from openyolox.data.checks.clean import (CleanStats, check_output_dir, clean_split, drop_bad_samples,
                                         write_clean_copy)
from openyolox.data.checks.report import (EDGE_TOLERANCE, IMAGE_KINDS, KINDS, CheckReport, DatasetReport, Issue,
                                          make_issue)

__all__ = ["bad_box_mask", "check_dataset", "check_images", "check_split", "check_split_full", "layout_issues",
           "CleanStats", "check_output_dir", "clean_split", "drop_bad_samples", "write_clean_copy",
           "EDGE_TOLERANCE", "IMAGE_KINDS", "KINDS", "CheckReport", "DatasetReport", "Issue", "make_issue"]
